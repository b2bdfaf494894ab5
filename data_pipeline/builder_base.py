"""What the motion dataset builders share: features, splits and examples from the layout.

Each example: `id` (text), `motion [T, D] float32`, `length` (int32, T) and `captions`, a sequence of
`{caption, tokens [n], pos [n], start, end}` (`start`/`end` in seconds; 0, 0 = the whole clip).
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from lead_jax.data import layout
from lead_jax.errors import MissingFileError


def motion_features(dim: int) -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "id": tfds.features.Text(),
      "motion": tfds.features.Tensor(shape=(None, dim), dtype=np.float32),
      "length": tfds.features.Scalar(dtype=np.int32),
      "captions": tfds.features.Sequence({
          "caption": tfds.features.Text(),
          "tokens": tfds.features.Sequence(tfds.features.Text()),
          "pos": tfds.features.Sequence(tfds.features.Text()),
          "start": tfds.features.Scalar(dtype=np.float32),
          "end": tfds.features.Scalar(dtype=np.float32),
      }),
  })


def clip_example(clip: layout.Clip) -> dict:
  return {
      "id": clip.id,
      "motion": clip.motion,
      "length": np.int32(clip.length),
      "captions": [{"caption": c.text, "tokens": list(c.tokens), "pos": list(c.pos),
                    "start": np.float32(c.start), "end": np.float32(c.end)}
                   for c in clip.captions],
  }


class MotionLayoutBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Reads a HumanML3D-layout folder; subclasses say where it is and the feature size."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  FEATURE_DIM: int | None = None
  FPS: float = 20.0
  HOMEPAGE = "https://github.com/EricGuo5513/HumanML3D"
  CITATION = ""

  def _feature_dim(self) -> int:
    return int(self.FEATURE_DIM)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=(self.__doc__ or "").strip(),
        features=motion_features(self._feature_dim()),
        homepage=self.HOMEPAGE, citation=self.CITATION,
        metadata=tfds.core.MetadataDict(fps=self.FPS))

  def _source_root(self, dl_manager) -> pathlib.Path:
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    root = layout.check_layout(self._source_root(dl_manager))
    return {split: self._generate_examples(root, split) for split in layout.SPLITS}

  def _generate_examples(self, root: pathlib.Path, split: str) -> Iterator[tuple[str, dict]]:
    for clip in layout.iter_clips(root, split, self._feature_dim()):
      yield clip.id, clip_example(clip)


class ManualLayoutBuilder(MotionLayoutBuilder, skip_registration=True):
  """A dataset that cannot be redistributed: the user points `manual_dir` at their copy."""

  def _source_root(self, dl_manager) -> pathlib.Path:
    try:
      manual = pathlib.Path(os.fspath(dl_manager.manual_dir))
    except AssertionError as e:  # TFDS: manual directory absent, empty or not enabled
      raise MissingFileError(f"{self.name}: {e}") from e
    try:
      return layout.check_layout(manual)
    except MissingFileError as e:
      raise MissingFileError(f"{self.name}: {e}. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}") from e
