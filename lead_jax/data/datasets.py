"""The dataset kinds the streams know, and reading a split's shard without TensorFlow.

Kinds (`data.builder`):
  humanml3d      the HumanML3D folder a user downloaded (263 features, 20 fps)
  kit_ml         the KIT-ML folder (251 features, 12.5 fps)
  motion_folder  any folder written by `lead-jax import` (feature size from Mean.npy, 20 fps)
  deepmimic      the embedded default: the DeepMimic clips of the pybullet wheel, imported into
                 `data.dir` (`lead_jax.io.importer.import_deepmimic_dataset`, what `lead-jax import
                 deepmimic --out <data.dir>` runs) the first time it is needed
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from lead_jax.data import layout
from lead_jax.data.sampling import ClipTable, SamplingConfig, build_table, shard_ids
from lead_jax.errors import ConfigError, MissingFileError
from lead_jax.io.importer import import_deepmimic_dataset


@dataclasses.dataclass(frozen=True)
class DatasetKind:
  name: str
  dim: int | None  # None: read from Mean.npy
  fps: float


KINDS = {
    "humanml3d": DatasetKind("humanml3d", 263, 20.0),
    "kit_ml": DatasetKind("kit_ml", 251, 12.5),
    "motion_folder": DatasetKind("motion_folder", None, 20.0),
    "deepmimic": DatasetKind("deepmimic", None, 20.0),
}
DEFAULT_DEEPMIMIC_DIR = pathlib.Path(os.path.expanduser("~/.cache/lead_jax/deepmimic"))


def get_kind(name: str) -> DatasetKind:
  if name not in KINDS:
    raise ConfigError(f"data.builder must be one of {sorted(KINDS)}, found {name!r}")
  return KINDS[name]


def ensure_deepmimic(out_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The imported DeepMimic dataset folder, importing it first if it is not complete."""
  out = pathlib.Path(out_dir) if out_dir else DEFAULT_DEEPMIMIC_DIR
  try:
    return layout.check_layout(out)
  except MissingFileError:
    pass
  report = import_deepmimic_dataset(out, progress=True)
  if not report["kept"]:
    raise MissingFileError(f"cannot build the DeepMimic dataset at {out}: no clip was imported "
                           f"({report['failures'] or report['skipped']})")
  return layout.check_layout(out)


def dataset_root(builder: str, data_dir: str | os.PathLike | None) -> pathlib.Path:
  """The HumanML3D-layout folder of a dataset kind (imports DeepMimic when needed)."""
  get_kind(builder)
  if builder == "deepmimic":
    return ensure_deepmimic(data_dir)
  if not data_dir:
    raise ConfigError(f"data.dir must name the {builder} folder")
  return layout.check_layout(data_dir)


def feature_dim(builder: str, root: str | os.PathLike) -> int:
  kind = get_kind(builder)
  if kind.dim is not None:
    return kind.dim
  return int(np.load(pathlib.Path(root) / "Mean.npy").shape[0])


def load_shard_table(builder: str, root: str | os.PathLike, split: str, cfg: SamplingConfig,
                     shard: int = 0, shard_count: int = 1
                     ) -> tuple[ClipTable, np.ndarray, np.ndarray, int]:
  """(table of shard `shard` of `shard_count`, Mean, Std, number of clips in the whole split).

  The shard is a contiguous part of the split's present ids sorted by id.
  """
  dim = feature_dim(builder, root)
  mean, std = layout.load_stats(root, dim)
  present, _ = layout.available_ids(root, split)
  if not present:
    list(layout.iter_clips(root, split, dim))  # raises, naming the missing files
  ids = shard_ids(present, shard, shard_count)
  clips = [layout.load_clip(root, i, dim) for i in ids]
  return build_table(clips, mean, std, cfg), mean, std, len(present)
