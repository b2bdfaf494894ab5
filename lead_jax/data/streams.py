"""Training and evaluation streams over a `ClipTable`, with a checkpointable position.

A stream turns (seed, epoch, step) into a batch through `sampling.epoch_plan`, so its position is
two integers: `state() -> {"epoch", "step"}` and `restore(state)` resume exactly. A process reads
one or more shards of the split (`data.shards`, see `factory.py`); its batch is their batches
concatenated in shard order, and every shard of the run has the same number of steps per epoch. A `StreamBackend`
reads the shard and gathers the frames: `numpy_backend.NUMPY_BACKEND` (TF-free) or the tf.data one
(`lead_jax_data_pipeline.stream.TF_BACKEND`, chosen by `lead_jax.train.inputs`); both consume the
same plans and yield the same batches. Streams yield process-local NumPy batches and know nothing
of devices: the train loop makes global arrays with `global_batch.to_global_batch`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from lead_jax.data.options import DataOptions
from lead_jax.data.sampling import ClipTable, Plan, SamplingConfig, epoch_plan, eval_plan
from lead_jax.errors import ConfigError, InputError

Batch = dict[str, np.ndarray]
# (epoch, step) -> iterator of local batches starting at that position (closed with `close()`
# when it has one)
BatchSource = Callable[[int, int], Iterator[Batch]]


@dataclasses.dataclass(frozen=True)
class StreamBackend:
  """Who reads a split's shard and gathers its batches (`name` is its `config.data.backend`).

  load_shard(opts, split, shard, shard_count) -> (ClipTable of the shard, clips in split)
  train_source(table, text_emb [C, E], cfg, seed, shard, batch_size, steps, prefetch) -> BatchSource
      (`steps` batches of `batch_size` per epoch: `epoch_rows`)
  eval_batches(table, text_emb [C, E], null_text_emb [E], cfg, seed, batch_size, num_batches)
      -> iterator of `num_batches` eval batches (fields of `EvalStream`)
  """
  name: str
  load_shard: Callable[[DataOptions, str, int, int], tuple[ClipTable, int]]
  train_source: Callable[[ClipTable, np.ndarray, SamplingConfig, int, int, int, int, int],
                         BatchSource]
  eval_batches: Callable[[ClipTable, np.ndarray, np.ndarray, SamplingConfig, int, int, int],
                         Iterator[Batch]]


def epoch_rows(table: ClipTable, cfg: SamplingConfig, seed: int, shard: int, batch_size: int,
               epoch: int, steps: int | None = None) -> Plan:
  """An epoch's plan cut to `steps` whole batches (default: as many as the shard fills; the rest
  of the epoch dropped)."""
  plan = epoch_plan(table, cfg, seed, epoch, shard)
  steps = len(plan) // batch_size if steps is None else steps
  if steps == 0 or steps * batch_size > len(plan):
    raise InputError(f"the shard has {len(plan)} sampleable clips, fewer than {max(steps, 1)} "
                     f"batches of {batch_size} (clips need >= {cfg.min_len} frames)")
  return plan.take(slice(0, steps * batch_size))


def plan_fields(plan: Plan, text_emb: np.ndarray) -> Batch:
  """The per-example fields that come from the plan, not the frames."""
  return {"text_emb": text_emb[plan.caption], "caption_index": plan.caption.astype(np.int32)}


def concat_batches(parts: Sequence[Batch]) -> Batch:
  """The shards' batches of one step joined along the batch axis, in shard order."""
  if len(parts) == 1:
    return parts[0]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class TrainStream:
  """Endless training batches of this process: `next(stream)`, `state()`, `restore(state)`.

  Each batch (NumPy, B = the per-process batch, the concatenation of its shards' batches):
  `motion [B, max_len, D] float32` (normalised, zero-padded), `mask [B, max_len] bool`,
  `length [B] int32` (multiples of `unit_length` in [min_len, max_len]), `text_emb [B, E] float32`,
  `caption_index [B] int32` (into its shard's table). Other sources (the latent cache,
  `lead_jax.train.latents`) yield other fields through the same position logic.
  """

  def __init__(self, sources: BatchSource | Sequence[BatchSource], *,
               tables: ClipTable | Sequence[ClipTable], null_text_emb: np.ndarray,
               batch_size: int, steps_per_epoch: int):
    self._its: list[Any] | None = None
    self._sources = [sources] if callable(sources) else list(sources)
    self.tables = [tables] if isinstance(tables, ClipTable) else list(tables)
    self.null_text_emb = null_text_emb  # [E] embedding of "" for classifier-free guidance
    self.batch_size = batch_size  # per process
    self.steps_per_epoch = steps_per_epoch
    self._epoch, self._step = 0, 0

  @property
  def table(self) -> ClipTable:
    """The table of this process's one shard (`tables` when it reads several)."""
    if len(self.tables) != 1:
      raise ConfigError(f"this stream reads {len(self.tables)} shards: use stream.tables")
    return self.tables[0]

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    if self._its is None:
      self._its = [source(self._epoch, self._step) for source in self._sources]
    batch = concat_batches([next(it) for it in self._its])
    self._step += 1
    if self._step >= self.steps_per_epoch:
      self._epoch, self._step = self._epoch + 1, 0
    return batch

  def state(self) -> dict[str, int]:
    """Position of the next batch: `{"epoch": int, "step": int}` (a JSON/orbax-friendly dict)."""
    return {"epoch": self._epoch, "step": self._step}

  def restore(self, state: dict[str, int]) -> None:
    epoch, step = int(state["epoch"]), int(state["step"])
    if epoch < 0 or not 0 <= step < self.steps_per_epoch:
      raise InputError(f"stream state {state}: expected epoch >= 0 and 0 <= step < "
                       f"{self.steps_per_epoch}")
    self.close()
    self._epoch, self._step = epoch, step

  def close(self) -> None:
    """Stops the sources (their prefetching); a later `next` reopens at `state()`."""
    for it in self._its or ():
      if hasattr(it, "close"):
        it.close()
    self._its = None

  def __del__(self):
    self.close()


def eval_layout(table: ClipTable, cfg: SamplingConfig, seed: int, batch_size: int,
                num_batches: int) -> tuple[Plan, np.ndarray]:
  """The padded eval plan (`num_batches * batch_size` rows) and its `valid` mask."""
  plan = eval_plan(table, cfg, seed)
  total = num_batches * batch_size
  if len(plan) > total:
    raise InputError(f"evaluation shard has {len(plan)} clips, more than {num_batches} batches "
                     f"of {batch_size}")
  pad = total - len(plan)
  filler = Plan(np.full(pad, -1, np.int64), np.full(pad, -1, np.int64), np.zeros(pad, np.int64),
                np.full(pad, cfg.min_len, np.int64))
  padded = Plan(*(np.concatenate([getattr(plan, f), getattr(filler, f)])
                  for f in ("clip", "caption", "start", "length")))
  valid = np.arange(total) < len(plan)
  return padded, valid


def eval_fields(table: ClipTable, plan: Plan, valid: np.ndarray, text_emb: np.ndarray,
                null_text_emb: np.ndarray) -> Batch:
  """Per-example eval fields not taken from frames (padding rows: `valid` False, empty strings)."""
  cap = np.where(valid, plan.caption, 0)
  emb = text_emb[cap] if len(text_emb) else np.zeros((len(cap), null_text_emb.shape[0]),
                                                      np.float32)
  fields = {
      "text_emb": np.where(valid[:, None], emb, null_text_emb[None]).astype(np.float32),
      "caption_index": np.where(valid, plan.caption, -1).astype(np.int32),
      "valid": valid,
      "id": np.array([table.ids[c] if v else "" for c, v in zip(plan.clip, valid)], dtype=object),
      "caption": np.array([table.captions[c].text if v else "" for c, v in
                           zip(plan.caption, valid)], dtype=object),
      "tokens": np.array([table.captions[c].tokens_string if v else "" for c, v in
                          zip(plan.caption, valid)], dtype=object),
  }
  return fields


class EvalStream:
  """One exact pass over a split: `num_batches` batches on every process, padding rows invalid.

  Batch fields as `TrainStream` plus `valid [B] bool`, `id`, `caption`, `tokens` (`word/POS ...`)
  string arrays. Padding rows: zero motion, the first `min_len` frames unmasked,
  `length = min_len`, the empty caption's embedding, `caption_index = -1`. `make_iters()` gives one
  iterator per shard of this process; their batches are concatenated.
  """

  def __init__(self, make_iters: Callable[[], Sequence[Iterator[Batch]]], *, num_batches: int,
               num_examples: int, tables: Sequence[ClipTable]):
    self._make_iters = make_iters
    self.num_batches = num_batches
    self.num_examples = num_examples  # valid rows on this process
    self.tables = list(tables)

  @property
  def table(self) -> ClipTable:
    """The table of this process's one shard (`tables` when it reads several)."""
    if len(self.tables) != 1:
      raise ConfigError(f"this stream reads {len(self.tables)} shards: use stream.tables")
    return self.tables[0]

  def __len__(self) -> int:
    return self.num_batches

  def __iter__(self) -> Iterator[Batch]:
    return (concat_batches(parts) for parts in zip(*self._make_iters()))


def check_batch_size(global_batch: int, process_count: int) -> int:
  """The per-process batch size; raises ConfigError when the global one does not divide."""
  if global_batch < 1 or global_batch % process_count:
    raise ConfigError(f"data.batch_size={global_batch} must be a positive multiple of the "
                      f"process count {process_count}")
  return global_batch // process_count
