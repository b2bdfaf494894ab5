"""The TF-free backend (`data.backend = 'numpy'`): files read with NumPy, batches gathered with
`sampling.gather_batch`, optionally prepared ahead in one bounded background thread.

The shard is this process's contiguous part of the split's present ids sorted by id
(`datasets.load_shard_table`).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np

from lead_jax.data import datasets
from lead_jax.data.options import DataOptions
from lead_jax.data.sampling import ClipTable, SamplingConfig, gather_batch
from lead_jax.data.streams import (Batch, BatchSource, StreamBackend, eval_fields, eval_layout,
                                   plan_fields, train_plans)


def load_shard(opts: DataOptions, split: str, process_index: int, process_count: int
               ) -> tuple[ClipTable, int]:
  """(table of this process's shard of `split`, clips in the whole split)."""
  root = datasets.dataset_root(opts.builder, opts.dir)
  table, _, _, total = datasets.load_shard_table(opts.builder, root, split, opts.sampling,
                                                 process_index, process_count)
  return table, total


class Prefetcher:
  """Runs an iterator in a daemon thread, at most `size` items ahead; `close()` stops it."""

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

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    kind, value = self._queue.get()
    if kind == "error":
      raise value
    return value

  def close(self):
    self._stop.set()
    self._thread.join(timeout=5)


def numpy_train_source(table: ClipTable, text_emb: np.ndarray, cfg: SamplingConfig, seed: int,
                       shard: int, batch_size: int, prefetch: int) -> BatchSource:
  """Batches of `train_plans` gathered with NumPy; `prefetch > 0` runs them in a `Prefetcher`."""
  def batches(epoch: int, step: int) -> Iterator[Batch]:
    for plan in train_plans(table, cfg, seed, shard, batch_size, epoch, step):
      yield {**gather_batch(table, plan, cfg.max_len), **plan_fields(plan, text_emb)}

  def source(epoch: int, step: int) -> Iterator[Batch]:
    it = batches(epoch, step)
    return Prefetcher(it, prefetch) if prefetch > 0 else it
  return source


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


NUMPY_BACKEND = StreamBackend("numpy", load_shard, numpy_train_source, numpy_eval_batches)
