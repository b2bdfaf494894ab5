"""The sampling rules shared by the tf.data and NumPy streams.

A split (one process's shard of it) is held as a `ClipTable`: every clip's normalised frames
concatenated into one `[N_frames, D]` array, plus per-clip offsets and per-caption segments. An epoch
is a `Plan`: for every example, in shuffled order, the chosen caption and the frame window to cut.
Plans depend only on lengths, caption segments and the seed, never on the motion values, so both
streams draw the same windows and differ only in how they gather frames (`gather_batch` here,
`tf.gather` in `lead_jax_data_pipeline.stream`).

Rules (HumanML3D / MLD, reference.md §7.5):
  * caption: uniform among the clip's captions whose segment is at least `min_len` frames;
  * segment: `[int(start * fps), int(end * fps))`, or the whole clip for `0.0#0.0`;
  * crop length: `units = min(segment, max_len) // unit`; with probability 1/3 (MLD's `coin2 ==
    'double'`) one unit fewer, unless that falls below `min_len`; `length = units * unit`;
  * crop start: uniform in `[0, segment - length]` within the segment;
  * clips (or segments) shorter than `min_len` are never sampled; `max_clip_len` (MLD: 200) drops
    clips at least that long, `None` crops long clips to a random `max_len` window instead.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from lead_jax.data.layout import Caption, Clip, segment_frames
from lead_jax.errors import ConfigError, InputError


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """Crop and filtering rules; lengths in frames."""
  min_len: int = 40
  max_len: int = 196
  unit_length: int = 4
  fps: float = 20.0
  max_clip_len: int | None = None
  shuffle_buffer: int = 0  # 0: full permutation per epoch

  def __post_init__(self):
    u = self.unit_length
    if u < 1:
      raise ConfigError(f"data.unit_length must be >= 1, found {u}")
    if self.min_len < u or self.min_len % u:
      raise ConfigError(f"data.min_len must be a positive multiple of data.unit_length={u}, "
                        f"found {self.min_len}")
    if self.max_len < self.min_len or self.max_len % u:
      raise ConfigError(f"data.max_len must be a multiple of data.unit_length={u} and >= "
                        f"data.min_len={self.min_len}, found {self.max_len}")
    if self.fps <= 0:
      raise ConfigError(f"data.fps must be > 0, found {self.fps}")
    if self.shuffle_buffer < 0:
      raise ConfigError(f"data.shuffle_buffer must be >= 0, found {self.shuffle_buffer}")


@dataclasses.dataclass
class ClipTable:
  """One shard of a split in memory, normalised; index `i` is the i-th clip sorted by id.

  frames: `[N_frames + 1, D] float32` normalised frames of all clips, concatenated, then one zero
    row that padding positions gather (so a padded batch is one gather, no masking pass).
  offsets, lengths: `[N] int64` where each clip starts in `frames`, and its length.
  caption_offsets: `[N + 1]` clip i owns captions `caption_offsets[i]:caption_offsets[i+1]`.
  seg_begin, seg_end: `[C] int64` each caption's frame window within its clip.
  caption_ok: `[C] bool` the caption's segment is long enough to be sampled.
  captions: `C` `Caption`s; ids: `N` clip ids.
  """
  ids: list[str]
  frames: np.ndarray
  offsets: np.ndarray
  lengths: np.ndarray
  caption_offsets: np.ndarray
  captions: list[Caption]
  seg_begin: np.ndarray
  seg_end: np.ndarray
  caption_ok: np.ndarray

  @property
  def num_clips(self) -> int:
    return len(self.ids)

  @property
  def dim(self) -> int:
    return int(self.frames.shape[1])

  @property
  def clip_ok(self) -> np.ndarray:
    """`[N] bool` clips with at least one sampleable caption."""
    cum = np.concatenate([[0], np.cumsum(self.caption_ok.astype(np.int64))])
    counts = cum[self.caption_offsets[1:]] - cum[self.caption_offsets[:-1]]
    return counts > 0

  @property
  def caption_texts(self) -> list[str]:
    return [c.text for c in self.captions]


def build_table(clips: Iterable[Clip], mean: np.ndarray, std: np.ndarray,
                cfg: SamplingConfig) -> ClipTable:
  """Normalises `(x - mean) / std` and indexes clips sorted by id; applies `max_clip_len`."""
  mean = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)
  clips = sorted(clips, key=lambda c: c.id)
  if cfg.max_clip_len is not None:
    clips = [c for c in clips if c.length < cfg.max_clip_len]
  ids, chunks, lengths, cap_counts, captions, begins, ends = [], [], [], [], [], [], []
  for c in clips:
    if c.motion.shape[1] != mean.shape[0]:
      raise InputError(f"clip {c.id}: features have {c.motion.shape[1]} dims, the statistics "
                       f"(Mean.npy/Std.npy) {mean.shape[0]}")
    ids.append(c.id)
    chunks.append((np.asarray(c.motion, np.float32) - mean) / std)
    lengths.append(c.length)
    cap_counts.append(len(c.captions))
    for cap in c.captions:
      b, e = segment_frames(cap, c.length, cfg.fps)
      captions.append(cap)
      begins.append(b)
      ends.append(e)
  dim = mean.shape[0]
  lengths = np.asarray(lengths, np.int64)
  seg_begin, seg_end = np.asarray(begins, np.int64), np.asarray(ends, np.int64)
  return ClipTable(
      ids=ids,
      frames=np.concatenate(chunks + [np.zeros((1, dim), np.float32)]),
      offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
      lengths=lengths,
      caption_offsets=np.concatenate([[0], np.cumsum(cap_counts)]).astype(np.int64),
      captions=captions, seg_begin=seg_begin, seg_end=seg_end,
      caption_ok=(seg_end - seg_begin) >= cfg.min_len)


@dataclasses.dataclass(frozen=True)
class Plan:
  """What to cut for each example of an epoch, `[M]` each, in stream order."""
  clip: np.ndarray  # index into the table
  caption: np.ndarray  # index into table.captions
  start: np.ndarray  # absolute frame in table.frames
  length: np.ndarray  # frames, a multiple of unit_length in [min_len, max_len]

  def __len__(self) -> int:
    return int(self.clip.shape[0])

  def take(self, index: np.ndarray | slice) -> "Plan":
    return Plan(self.clip[index], self.caption[index], self.start[index], self.length[index])


def buffer_shuffle(order: np.ndarray, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
  """The order tf.data's `shuffle(buffer_size)` semantics give (fill, then emit a random slot)."""
  if buffer_size <= 1:
    return order.copy()
  out = np.empty_like(order)
  buf = list(order[:buffer_size])
  draws = rng.random(len(order))
  k = 0
  for x in order[buffer_size:]:
    j = int(draws[k] * len(buf))
    out[k] = buf[j]
    buf[j] = x
    k += 1
  while buf:
    j = int(draws[k] * len(buf))
    out[k] = buf.pop(j)
    k += 1
  return out


def choose_windows(table: ClipTable, clips: np.ndarray, cfg: SamplingConfig,
                   rng: np.random.Generator) -> Plan:
  """Draws a caption and a crop for each clip in `clips` (all must have a sampleable caption)."""
  clips = np.asarray(clips, np.int64)
  m = clips.shape[0]
  u_caption, u_coin, u_start = rng.random(m), rng.random(m), rng.random(m)
  caption = np.empty(m, np.int64)
  for k, i in enumerate(clips):  # tiny per-clip loop: a handful of captions each
    lo, hi = table.caption_offsets[i], table.caption_offsets[i + 1]
    ok = np.flatnonzero(table.caption_ok[lo:hi]) + lo
    caption[k] = ok[min(int(u_caption[k] * len(ok)), len(ok) - 1)]
  seg_len = table.seg_end[caption] - table.seg_begin[caption]
  u = cfg.unit_length
  units = np.minimum(seg_len, cfg.max_len) // u
  double = (u_coin < 1.0 / 3.0) & ((units - 1) * u >= cfg.min_len)
  length = (units - double) * u
  slack = seg_len - length
  start = table.offsets[clips] + table.seg_begin[caption] + np.minimum(
      (u_start * (slack + 1)).astype(np.int64), slack)
  return Plan(clips, caption, start, length.astype(np.int64))


def epoch_rng(seed: int, shard: int, epoch: int) -> np.random.Generator:
  """The generator of one epoch of one shard: its order, then its caption and crop draws."""
  return np.random.default_rng([seed, shard, epoch])


def epoch_order(table: ClipTable, cfg: SamplingConfig, rng: np.random.Generator) -> np.ndarray:
  """The sampleable clips (table indices) in an epoch's shuffled order (first draws of `rng`)."""
  eligible = np.flatnonzero(table.clip_ok)
  if cfg.shuffle_buffer and cfg.shuffle_buffer < len(eligible):
    return buffer_shuffle(eligible, cfg.shuffle_buffer, rng)
  return rng.permutation(eligible)


def epoch_plan(table: ClipTable, cfg: SamplingConfig, seed: int, epoch: int,
               shard: int = 0) -> Plan:
  """The shuffled examples of one epoch, a pure function of (seed, shard, epoch)."""
  rng = epoch_rng(seed, shard, epoch)
  return choose_windows(table, epoch_order(table, cfg, rng), cfg, rng)


def eval_plan(table: ClipTable, cfg: SamplingConfig, seed: int) -> Plan:
  """Every sampleable clip once, in id order, with seeded caption and crop choices."""
  rng = np.random.default_rng([seed, 0x5EED])
  return choose_windows(table, np.flatnonzero(table.clip_ok), cfg, rng)


def window_indices(start: np.ndarray, length: np.ndarray, max_len: int, pad_row: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(`[B, max_len]` frame indices, `pad_row` where padded; `[B, max_len]` mask)."""
  steps = np.arange(max_len, dtype=np.int64)
  mask = steps[None, :] < length[:, None]
  return np.where(mask, start[:, None] + steps[None, :], pad_row), mask


def gather_batch(table: ClipTable, plan: Plan, max_len: int) -> dict[str, np.ndarray]:
  """`motion [B, max_len, D]` (normalised, zero-padded), `mask [B, max_len]`, `length [B]`."""
  index, mask = window_indices(plan.start, plan.length, max_len, len(table.frames) - 1)
  motion = np.take(table.frames, index, axis=0)  # padding gathers the zero row
  return {"motion": motion, "mask": mask, "length": plan.length.astype(np.int32)}


def shard_bounds(n: int, shard: int, shard_count: int) -> tuple[int, int]:
  """Contiguous, near-equal shard `[begin, end)` of `n` items (sizes differ by at most one)."""
  if not 0 <= shard < shard_count:
    raise ConfigError(f"shard index must be in [0, {shard_count}), found {shard}")
  base, extra = divmod(n, shard_count)
  begin = shard * base + min(shard, extra)
  return begin, begin + base + (shard < extra)


def shard_ids(ids: Sequence[str], shard: int, shard_count: int) -> list[str]:
  """Shard `shard` of `shard_count` of the ids, taken from the id-sorted list."""
  ids = sorted(ids)
  b, e = shard_bounds(len(ids), shard, shard_count)
  return ids[b:e]
