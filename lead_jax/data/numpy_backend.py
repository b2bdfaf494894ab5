"""The TF-free backend (`data.backend = 'numpy'`): files read with NumPy, batches gathered with
`sampling.gather_batch`, optionally prepared ahead by grain in one bounded background thread.

A shard is a contiguous part of the split's present ids sorted by id
(`datasets.load_shard_table`).
"""

from __future__ import annotations

import functools
import sys
from typing import Iterator

import grain
import numpy as np

from lead_jax.data import datasets
from lead_jax.data.options import DataOptions
from lead_jax.data.sampling import ClipTable, Plan, SamplingConfig, gather_batch
from lead_jax.data.streams import (Batch, BatchSource, StreamBackend, epoch_rows, eval_fields,
                                   eval_layout, plan_fields)


def load_shard(opts: DataOptions, split: str, shard: int, shard_count: int
               ) -> tuple[ClipTable, int]:
  """(table of shard `shard` of `shard_count` of `split`, clips in the whole split)."""
  root = datasets.dataset_root(opts.builder, opts.dir)
  table, _, _, total = datasets.load_shard_table(opts.builder, root, split, opts.sampling,
                                                 shard, shard_count)
  return table, total


def numpy_train_source(table: ClipTable, text_emb: np.ndarray, cfg: SamplingConfig, seed: int,
                       shard: int, batch_size: int, steps: int, prefetch: int) -> BatchSource:
  """Batch `k` of the stream is step `k % steps` of epoch `k // steps` (`streams.epoch_rows`),
  gathered with NumPy; grain runs them in one worker thread, at most `prefetch` batches ahead
  (0: in the caller's thread), and stops it when the iterator is closed."""
  @functools.lru_cache(maxsize=2)  # the worker may be one epoch ahead of the consumer
  def rows(epoch: int) -> Plan:
    return epoch_rows(table, cfg, seed, shard, batch_size, epoch, steps)

  def batch(index: int) -> Batch:
    epoch, step = divmod(int(index), steps)
    plan = rows(epoch).take(slice(step * batch_size, (step + 1) * batch_size))
    return {**gather_batch(table, plan, cfg.max_len), **plan_fields(plan, text_emb)}

  def source(epoch: int, step: int) -> Iterator[Batch]:
    batches = grain.MapDataset.range(epoch * steps + step, sys.maxsize).map(batch)
    options = grain.ReadOptions(num_threads=1 if prefetch else 0, prefetch_buffer_size=prefetch)
    return iter(batches.to_iter_dataset(options))
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
