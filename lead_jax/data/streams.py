"""Training and evaluation streams over a `ClipTable`, with a checkpointable position.

A stream turns (seed, epoch, step) into a batch through `sampling.epoch_plan`, so its position is
two integers: `state() -> {"epoch", "step"}` and `restore(state)` resume exactly. The frames are
gathered by a backend: NumPy here (optionally in a bounded background thread), or tf.data in
`data_pipeline/stream.py`; both consume the same plans and yield the same batches.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lead_jax.data.sampling import (ClipTable, Plan, SamplingConfig, epoch_plan, eval_plan,
                                    gather_batch)
from lead_jax.errors import ConfigError, InputError

Batch = dict[str, np.ndarray]
# (epoch, step) -> iterator of local batches starting at that position
BatchSource = Callable[[int, int], Iterator[Batch]]


def train_plans(table: ClipTable, cfg: SamplingConfig, seed: int, shard: int, batch_size: int,
                epoch: int, step: int) -> Iterator[Plan]:
  """Endless per-batch plans from (epoch, step); each epoch drops its last partial batch."""
  while True:
    plan = epoch_plan(table, cfg, seed, epoch, shard)
    steps = len(plan) // batch_size
    if steps == 0:
      raise InputError(f"the shard has {len(plan)} sampleable clips, fewer than the per-process "
                       f"batch size {batch_size} (clips need >= {cfg.min_len} frames)")
    for s in range(step, steps):
      yield plan.take(slice(s * batch_size, (s + 1) * batch_size))
    epoch, step = epoch + 1, 0


def plan_fields(plan: Plan, text_emb: np.ndarray) -> Batch:
  """The per-example fields that come from the plan, not the frames."""
  return {"text_emb": text_emb[plan.caption], "caption_index": plan.caption.astype(np.int32)}


def numpy_train_source(table: ClipTable, text_emb: np.ndarray, cfg: SamplingConfig, seed: int,
                       shard: int, batch_size: int) -> BatchSource:
  def source(epoch: int, step: int) -> Iterator[Batch]:
    for plan in train_plans(table, cfg, seed, shard, batch_size, epoch, step):
      yield {**gather_batch(table, plan, cfg.max_len), **plan_fields(plan, text_emb)}
  return source


class _Prefetcher:
  """Runs an iterator in a daemon thread, at most `size` items ahead."""

  def __init__(self, it: Iterator[Batch], size: int):
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(it,), daemon=True)
    self._thread.start()

  def _run(self, it):
    try:
      for item in it:
        while not self._stop.is_set():
          try:
            self._queue.put(("item", item), timeout=0.1)
            break
          except queue.Full:
            continue
        if self._stop.is_set():
          return
    except BaseException as e:  # surfaced in the consumer's thread
      self._queue.put(("error", e))

  def __next__(self) -> Batch:
    kind, value = self._queue.get()
    if kind == "error":
      raise value
    return value

  def close(self):
    self._stop.set()
    self._thread.join(timeout=5)


def to_global_batch(batch: Batch, mesh: Mesh, sharding: NamedSharding | None = None) -> dict:
  """Process-local batch -> global `jax.Array`s sharded on the leading (batch) axis.

  Numeric NumPy arrays become global arrays (`jax.make_array_from_process_local_data`), arrays that
  are already global are moved to `sharding`; string/object arrays (ids, captions) stay
  process-local NumPy arrays (`numeric_fields` drops them for a jitted step). `sharding` defaults
  to splitting the batch over all mesh axes.
  """
  sharding = sharding or NamedSharding(mesh, PartitionSpec(mesh.axis_names))
  out = {}
  for k, v in batch.items():
    if isinstance(v, jax.Array):
      out[k] = jax.device_put(v, sharding)
      continue
    v = np.asarray(v)
    out[k] = v if v.dtype.kind in "OUS" else jax.make_array_from_process_local_data(sharding, v)
  return out


def numeric_fields(batch: dict) -> dict:
  """The array fields of a batch (what a jitted step takes): strings and ids dropped."""
  return {k: v for k, v in batch.items()
          if isinstance(v, jax.Array) or np.asarray(v).dtype.kind in "biuf"}


class TrainStream:
  """Endless training batches: `next(stream)`, `state()`, `restore(state)`.

  Each batch: `motion [B, max_len, D] float32` (normalised, zero-padded), `mask [B, max_len] bool`,
  `length [B] int32` (multiples of `unit_length` in [min_len, max_len]), `text_emb [B, E] float32`,
  `caption_index [B] int32`. With a mesh, B is the global batch and the arrays are global
  `jax.Array`s; without, NumPy arrays of the process's batch.
  """

  def __init__(self, source: BatchSource, *, table: ClipTable, caption_texts: list[str],
               null_text_emb: np.ndarray, batch_size: int, steps_per_epoch: int,
               prefetch: int = 2, mesh: Mesh | None = None,
               sharding: NamedSharding | None = None, backend: str = "numpy"):
    self._it: Any = None
    self._source = source
    self.table = table
    self.caption_texts = caption_texts
    self.null_text_emb = null_text_emb  # [E] embedding of "" for classifier-free guidance
    self.batch_size = batch_size  # per process
    self.steps_per_epoch = steps_per_epoch
    self.prefetch = prefetch
    self.mesh, self.sharding = mesh, sharding
    self.backend = backend
    self._epoch, self._step = 0, 0

  def _open(self):
    it = self._source(self._epoch, self._step)
    self._it = _Prefetcher(it, self.prefetch) if self.prefetch > 0 and self.backend == "numpy" \
        else it

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    if self._it is None:
      self._open()
    batch = next(self._it)
    self._step += 1
    if self._step >= self.steps_per_epoch:
      self._epoch, self._step = self._epoch + 1, 0
    return to_global_batch(batch, self.mesh, self.sharding) if self.mesh is not None else batch

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
    """Stops the prefetch thread (a later `next` reopens at `state()`)."""
    if isinstance(self._it, _Prefetcher):
      self._it.close()
    self._it = None

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


def numpy_eval_batches(table: ClipTable, text_emb: np.ndarray, null_text_emb: np.ndarray,
                       cfg: SamplingConfig, seed: int, batch_size: int,
                       num_batches: int) -> Iterator[Batch]:
  plan, valid = eval_layout(table, cfg, seed, batch_size, num_batches)
  for b in range(num_batches):
    sl = slice(b * batch_size, (b + 1) * batch_size)
    p, v = plan.take(sl), valid[sl]
    batch = gather_batch(table, p, cfg.max_len)  # padding rows: start 0, zero-masked below
    batch["motion"] *= v[:, None, None]
    yield {**batch, **eval_fields(table, p, v, text_emb, null_text_emb)}


class EvalStream:
  """One exact pass over a split: `num_batches` batches on every process, padding rows invalid.

  Batch fields as `TrainStream` plus `valid [B] bool`, `id`, `caption`, `tokens` (`word/POS ...`)
  string arrays (process-local). Padding rows: zero motion, the first `min_len` frames unmasked,
  `length = min_len`, the empty caption's embedding, `caption_index = -1`.
  """

  def __init__(self, make_iter: Callable[[], Iterator[Batch]], *, num_batches: int,
               num_examples: int, table: ClipTable, mesh: Mesh | None = None,
               sharding: NamedSharding | None = None):
    self._make_iter = make_iter
    self.num_batches = num_batches
    self.num_examples = num_examples  # valid rows on this process
    self.table = table
    self.mesh, self.sharding = mesh, sharding

  def __len__(self) -> int:
    return self.num_batches

  def __iter__(self) -> Iterator[dict]:
    for batch in self._make_iter():
      yield to_global_batch(batch, self.mesh, self.sharding) if self.mesh is not None else batch


def check_batch_size(global_batch: int, process_count: int, mesh: Mesh | None) -> int:
  """The per-process batch size; raises ConfigError when the global one does not divide."""
  if global_batch < 1 or global_batch % process_count:
    raise ConfigError(f"data.batch_size={global_batch} must be a positive multiple of the "
                      f"process count {process_count}")
  if mesh is not None and global_batch % mesh.size:
    raise ConfigError(f"data.batch_size={global_batch} must be a multiple of the mesh's "
                      f"{mesh.size} devices")
  return global_batch // process_count
