"""`config.data` -> a training or evaluation stream of this process over a `StreamBackend`.

The backend is an argument (default: the TF-free `NUMPY_BACKEND`); `lead_jax.train.inputs` picks
it from `config.data.backend`, so this package never imports the TensorFlow side.

Shards: the split is cut into `data.shards` disjoint id-sorted shards (0 = one per process), each
process reads an equal contiguous run of them (`shard_range`), and each shard contributes
`batch_size / shards` rows of every global batch with its own seeded plans. So the global batches
are a function of the config alone: 2 processes of 1 device and 1 process with `data.shards=2`
see the same ones. Every shard runs the same whole number of steps per epoch (the smallest
shard's, agreed across processes: `steps_per_epoch`), so one stream position fits every process.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from lead_jax.data.numpy_backend import NUMPY_BACKEND
from lead_jax.data.options import DataOptions, data_options
from lead_jax.data.sampling import ClipTable
from lead_jax.data.streams import EvalStream, StreamBackend, TrainStream, check_batch_size
from lead_jax.data.text_cache import EMPTY_CAPTION, TextEmbeddingCache
from lead_jax.errors import ConfigError


def _options(config: Any, backend: StreamBackend) -> DataOptions:
  opts = data_options(config)
  if opts.backend != backend.name:
    raise ConfigError(f"config.data.backend={opts.backend!r} but the stream was asked of the "
                      f"{backend.name!r} backend; make streams with lead_jax.train.inputs, which "
                      "picks the backend the config names")
  return opts


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  pi = jax.process_index() if process_index is None else int(process_index)
  pc = jax.process_count() if process_count is None else int(process_count)
  if pc < 1 or not 0 <= pi < pc:
    raise ConfigError(f"process_index {pi} must be in [0, process_count={pc})")
  return pi, pc


def _text_tables(table: ClipTable, text_encoder: Any, cache_dir: str | os.PathLike | None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(`[C, E]` embeddings of the table's captions, `[E]` the empty caption's)."""
  cache = TextEmbeddingCache(text_encoder, cache_dir)
  emb = cache.embed(table.caption_texts + [EMPTY_CAPTION])
  return emb[:-1], emb[-1]


@dataclasses.dataclass(frozen=True)
class Shard:
  """One shard of a split read by this process: `index` among `count`, its table and captions."""
  index: int
  count: int
  table: ClipTable
  text_emb: np.ndarray  # [C, E] embeddings of table.captions
  null_text_emb: np.ndarray  # [E] the empty caption's


@dataclasses.dataclass(frozen=True)
class ShardSet:
  """The shards of `split` this process reads (`data.shards` over the processes) and their rows of
  every batch: `batch_size` per process = `shard_batch` x `len(shards)`."""
  opts: DataOptions
  split: str
  shards: list[Shard]
  total: int  # clips in the whole split
  process_index: int
  process_count: int
  batch_size: int
  shard_batch: int


def shard_range(opts: DataOptions, process_index: int, process_count: int) -> tuple[range, int]:
  """(indices of the shards process `process_index` reads, shard count): `data.shards` (0 = one
  per process) cut into equal contiguous runs, one per process."""
  count = opts.shards or process_count
  if count % process_count:
    raise ConfigError(f"config.data.shards={opts.shards} must be a multiple of the process count "
                      f"{process_count} (0 = one shard per process)")
  per = count // process_count
  return range(process_index * per, (process_index + 1) * per), count


def load_shards(config: Any, text_encoder: Any, split: str, process_index: int | None = None,
                process_count: int | None = None, *,
                backend: StreamBackend = NUMPY_BACKEND) -> ShardSet:
  """Reads this process's shards of `split` and embeds their captions (`text_encoder`: frozen,
  `encode(list[str]) -> [N, E]`, `embed_dim`, `name`; cached in `data.text_cache_dir`)."""
  opts = _options(config, backend)
  pi, pc = _processes(process_index, process_count)
  local_batch = check_batch_size(opts.batch_size, pc)
  indices, count = shard_range(opts, pi, pc)
  if opts.batch_size % count:
    raise ConfigError(f"data.batch_size={opts.batch_size} must be a multiple of the shard count "
                      f"{count} (config.data.shards)")
  shards, total = [], 0
  for i in indices:
    table, total = backend.load_shard(opts, split, i, count)
    text_emb, null_emb = _text_tables(table, text_encoder, opts.text_cache_dir)
    shards.append(Shard(i, count, table, text_emb, null_emb))
  return ShardSet(opts, split, shards, total, pi, pc, local_batch, opts.batch_size // count)


def agree_min(value: int, process_count: int) -> int:
  """The minimum of `value` over the run's processes (a host all-gather when `process_count` is
  JAX's and above 1; otherwise `value`: one process, or processes simulated in one)."""
  if process_count > 1 and process_count == jax.process_count():
    return int(np.min(multihost_utils.process_allgather(np.asarray(value, np.int64))))
  return int(value)


def steps_per_epoch(shard_set: ShardSet) -> int:
  """Whole batches per epoch common to every shard of the run (the smallest shard's), so every
  process is at the same position; ConfigError when a shard cannot fill one batch."""
  steps = []
  for shard in shard_set.shards:
    eligible = int(np.sum(shard.table.clip_ok))
    if eligible < shard_set.shard_batch:
      who = ("per-process" if len(shard_set.shards) == 1 else "per-shard")
      cfg = shard_set.opts.sampling
      raise ConfigError(f"split {shard_set.split!r} shard {shard.index}/{shard.count} has "
                        f"{eligible} usable clips (>= {cfg.min_len} frames), fewer than the {who} "
                        f"batch {shard_set.shard_batch}")
    steps.append(eligible // shard_set.shard_batch)
  return agree_min(min(steps), shard_set.process_count)


def make_train_stream(config: Any, text_encoder: Any, process_index: int | None = None,
                      process_count: int | None = None, *,
                      backend: StreamBackend = NUMPY_BACKEND) -> TrainStream:
  """Endless, seeded training stream of this process's shards of `data.split`.

  `text_encoder`: frozen, `encode(list[str]) -> [N, E]`, `embed_dim`, `name` (embeddings cached in
  `data.text_cache_dir`). Process index/count default to JAX's.
  """
  shard_set = load_shards(config, text_encoder, data_options(config).split, process_index,
                          process_count, backend=backend)
  opts, steps = shard_set.opts, steps_per_epoch(shard_set)
  sources = [backend.train_source(s.table, s.text_emb, opts.sampling, opts.seed, s.index,
                                  shard_set.shard_batch, steps, opts.prefetch)
             for s in shard_set.shards]
  return TrainStream(sources, tables=[s.table for s in shard_set.shards],
                     null_text_emb=shard_set.shards[0].null_text_emb,
                     batch_size=shard_set.batch_size, steps_per_epoch=steps)


def eval_batch_count(shard_set: ShardSet) -> int:
  """Batches of one pass, the same on every process: the largest shard in `shard_batch` rows."""
  largest_shard = -(-shard_set.total // shard_set.shards[0].count)
  return max(1, -(-largest_shard // shard_set.shard_batch))


def make_eval_stream(config: Any, text_encoder: Any, process_index: int | None = None,
                     process_count: int | None = None, split: str | None = None, *,
                     backend: StreamBackend = NUMPY_BACKEND) -> EvalStream:
  """One exact pass over `split` (default `data.eval_split`); the same batch count everywhere."""
  split = split or data_options(config).eval_split
  shard_set = load_shards(config, text_encoder, split, process_index, process_count,
                          backend=backend)
  opts, num_batches = shard_set.opts, eval_batch_count(shard_set)
  make_iters = lambda: [backend.eval_batches(s.table, s.text_emb, s.null_text_emb, opts.sampling,
                                             opts.eval_seed, shard_set.shard_batch, num_batches)
                        for s in shard_set.shards]
  return EvalStream(make_iters, num_batches=num_batches,
                    num_examples=sum(int(np.sum(s.table.clip_ok)) for s in shard_set.shards),
                    tables=[s.table for s in shard_set.shards])
