"""The evaluation items of MLD's test protocol, and their random draws per replication.

MLD evaluates on `Text2MotionDatasetV2` (`mld/data/humanml/data/dataset.py`), whose items are not
the clips of the split but (read from its `__init__` and `__getitem__`):

  * a clip of the split file is dropped when its length is outside [min_len, max_clip_len)
    (40 and 200 frames on HumanML3D; KIT: 24 and 200) - its sub-segment captions with it;
  * each caption with a sub-segment (`start`, `end` not both 0; NaN reads as 0) is an item of its
    own holding frames [int(start * 20), int(end * 20)) - MLD multiplies by 20 on KIT too - kept
    when that segment's length is in [min_len, max_clip_len);
  * the clip's whole-clip captions make one item of the whole clip, or none when it has none;
  * items are ordered by length (a stable sort: split-file order, a clip's segment items before
    its whole-clip item).

Each replication then draws, for every item: one of its captions uniformly; MLD's coin among
(single, single, double) for the crop length - the item's length rounded down to a multiple of
`unit_length`, one unit shorter on "double"; and a uniform start. The draws are seeded
(`numpy.random.Generator`), not MLD's global Python/NumPy generators, so runs repeat exactly.

  items = mld_items(root, "test")
  batches = ItemBatches(items, clips, mean, std, text_cache, batch_size=32)   # protocol.BatchesFn
  for batch in batches(seed): ...   # motion [B, 196, D] normalised, mask, length, caption, ...
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from lead_jax.data import layout
from lead_jax.data.text_cache import EmbeddingCache
from lead_jax.errors import InputError

# MLD's constants (Text2MotionDatasetV2 and its HumanML3D / KIT configs).
SEGMENT_FPS = 20.0          # `motion[int(f_tag * 20):int(to_tag * 20)]`, for KIT too
MAX_CLIP_LEN = 200          # clips and segments must be shorter
MIN_LEN = {"humanml3d": 40, "kit_ml": 24}
UNIT_LENGTH = 4
COIN = ("single", "single", "double")


@dataclasses.dataclass(frozen=True)
class Item:
  """A clip's frames `[start, end)` and the captions that describe them."""
  clip_id: str
  start: int
  end: int
  captions: tuple[layout.Caption, ...]

  @property
  def length(self) -> int:
    return self.end - self.start

  @property
  def name(self) -> str:
    """The clip id for a whole-clip item, `id[start:end]` for a sub-segment."""
    whole = all(c.start == 0.0 and c.end == 0.0 for c in self.captions)
    return self.clip_id if whole else f"{self.clip_id}[{self.start}:{self.end}]"


def clip_items(clip_id: str, num_frames: int, captions: Sequence[layout.Caption], min_len: int,
               max_clip_len: int = MAX_CLIP_LEN) -> list[Item]:
  """One clip's items in MLD's order (its segment items, then its whole-clip item)."""
  if not min_len <= num_frames < max_clip_len:
    return []
  items, whole = [], []
  for caption in captions:
    if caption.start == 0.0 and caption.end == 0.0:
      whole.append(caption)
      continue
    start = int(caption.start * SEGMENT_FPS)
    end = min(int(caption.end * SEGMENT_FPS), num_frames)
    if min_len <= end - start < max_clip_len:
      items.append(Item(clip_id, start, end, (caption,)))
  if whole:
    items.append(Item(clip_id, 0, num_frames, tuple(whole)))
  return items


def mld_items(root: str | os.PathLike, split: str = "test", min_len: int = 40,
              max_clip_len: int = MAX_CLIP_LEN) -> list[Item]:
  """The items of `split` in the dataset folder `root` (see the module docstring)."""
  items: list[Item] = []
  for clip in layout.iter_clips(root, split):
    items += clip_items(clip.id, clip.length, clip.captions, min_len, max_clip_len)
  if not items:
    raise InputError(f"{root}: split {split!r} has no evaluation item (clips and caption segments "
                     f"must have between {min_len} and {max_clip_len - 1} frames)")
  order = np.argsort([item.length for item in items], kind="stable")
  return [items[i] for i in order]


def item_table(items: Sequence[Item]) -> list[dict[str, Any]]:
  """The item list as written next to the results: one row per item and caption."""
  return [{"item": i, "name": item.name, "clip": item.clip_id, "caption": c.text,
           "start": item.start, "end": item.end}
          for i, item in enumerate(items) for c in item.captions]


@dataclasses.dataclass(frozen=True)
class Draws:
  """One replication's draws: per item its caption, crop start (clip frame) and crop length."""
  caption: np.ndarray   # [N] index into the item's captions
  start: np.ndarray     # [N] first frame of the crop, within the clip
  length: np.ndarray    # [N] frames, a multiple of unit_length


def draw(items: Sequence[Item], rng: np.random.Generator, unit_length: int = UNIT_LENGTH
         ) -> Draws:
  """MLD's `__getitem__` for every item: caption, coin2 crop length, uniform crop start."""
  n = len(items)
  caption = np.asarray([rng.integers(len(item.captions)) for item in items], np.int64)
  double = np.asarray([COIN[i] == "double" for i in rng.integers(len(COIN), size=n)])
  units = np.asarray([item.length // unit_length for item in items], np.int64) - double
  length = np.maximum(units, 1) * unit_length
  offset = np.asarray([rng.integers(item.length - l + 1) for item, l in zip(items, length)])
  start = np.asarray([item.start for item in items], np.int64) + offset
  return Draws(caption, start, length)


class ItemBatches:
  """A protocol `BatchesFn` over MLD's items: `batches(seed)` yields one replication's batches.

  Batch fields (as the data layer's evaluation batches): `motion [B, max_frames, D]` normalised
  and zero past each length, `mask`, `length [B]`, `valid [B]`, `caption`, `tokens` (`word/POS`),
  `id` (item names) and `text_emb [B, E]` (the conditioning encoder's pooled caption embeddings,
  from `text_cache`, each caption encoded once across replications and runs).
  """

  def __init__(self, items: Sequence[Item], motions: Mapping[str, np.ndarray], mean: np.ndarray,
               std: np.ndarray, text_cache: EmbeddingCache, batch_size: int = 32,
               max_frames: int = 196, unit_length: int = UNIT_LENGTH):
    self.items = list(items)
    longest = max(item.length for item in self.items)
    if longest // unit_length * unit_length > max_frames:
      raise InputError(f"an item has {longest} frames; crops longer than max_frames={max_frames} "
                       "cannot be evaluated")
    self.motions = {k: ((np.asarray(v, np.float32) - mean) / std).astype(np.float32)
                    for k, v in motions.items()}
    self.text_cache = text_cache
    self.batch_size, self.max_frames, self.unit_length = batch_size, max_frames, unit_length

  def __len__(self) -> int:
    return len(self.items)

  def __call__(self, seed: int) -> Iterator[dict[str, Any]]:
    draws = draw(self.items, np.random.default_rng(seed), self.unit_length)
    captions = [item.captions[c] for item, c in zip(self.items, draws.caption)]
    text_emb = self.text_cache.embed([c.text for c in captions])
    dim = next(iter(self.motions.values())).shape[1]
    for begin in range(0, len(self.items), self.batch_size):
      rows = range(begin, min(begin + self.batch_size, len(self.items)))
      motion = np.zeros((len(rows), self.max_frames, dim), np.float32)
      for b, i in enumerate(rows):
        start, length = int(draws.start[i]), int(draws.length[i])
        motion[b, :length] = self.motions[self.items[i].clip_id][start:start + length]
      lengths = draws.length[begin:begin + len(rows)]
      yield {"motion": motion, "mask": np.arange(self.max_frames)[None] < lengths[:, None],
             "length": lengths.astype(np.int32), "valid": np.ones(len(rows), bool),
             "caption": np.array([captions[i].text for i in rows], dtype=object),
             "tokens": np.array([captions[i].tokens_string for i in rows], dtype=object),
             "id": np.array([self.items[i].name for i in rows], dtype=object),
             "text_emb": text_emb[begin:begin + len(rows)]}


def load_item_motions(root: str | os.PathLike, items: Sequence[Item], dim: int | None = None
                      ) -> dict[str, np.ndarray]:
  """The features `[T, D]` of every clip the items use."""
  return {cid: layout.load_clip(root, cid, dim).motion
          for cid in dict.fromkeys(item.clip_id for item in items)}
