"""TFDS builders for data you made: `motion_folder` (any `lead-jax import` output) and `deepmimic`.

  from lead_jax_data_pipeline.motion_folder import Deepmimic, MotionFolder
  builder = MotionFolder(source_dir="data/bandai", data_dir=tfds_dir)
  builder.download_and_prepare()     # no manual steps: the folder is read where it is
  builder = Deepmimic(data_dir=tfds_dir)   # imports the pybullet clips on first use
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from lead_jax.data import datasets, layout
from lead_jax.errors import ConfigError

from .builder_base import MotionLayoutBuilder


def _folder_config(root: pathlib.Path) -> tfds.core.BuilderConfig:
  """One TFDS config per source folder, so two folders never share prepared records."""
  digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
  stem = re.sub(r"[^a-z0-9_]+", "_", root.resolve().name.lower()).strip("_") or "folder"
  return tfds.core.BuilderConfig(name=f"{stem}_{digest}", description=f"clips of {root}")


class MotionFolder(MotionLayoutBuilder):
  """A folder in the HumanML3D layout written by `lead-jax import` (feature size from Mean.npy)."""

  HOMEPAGE = "https://github.com/lead-jax"

  def __init__(self, *, source_dir: str | os.PathLike | None = None, **kwargs):
    if source_dir is None:
      raise ConfigError(f"{type(self).__name__}: source_dir (the imported folder) is required")
    self.source_dir = layout.check_layout(source_dir)
    kwargs.setdefault("config", _folder_config(self.source_dir))
    super().__init__(**kwargs)

  def _feature_dim(self) -> int:
    return int(np.load(self.source_dir / "Mean.npy").shape[0])

  def _source_root(self, dl_manager) -> pathlib.Path:
    return self.source_dir


class Deepmimic(MotionFolder):
  """The embedded default dataset: the DeepMimic humanoid clips shipped with pybullet."""

  HOMEPAGE = "https://github.com/xbpeng/DeepMimic"

  def __init__(self, *, source_dir: str | os.PathLike | None = None, **kwargs):
    super().__init__(source_dir=datasets.ensure_deepmimic(source_dir), **kwargs)
