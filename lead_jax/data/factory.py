"""`config.data` -> a training or evaluation stream of this process over a `StreamBackend`.

The backend is an argument (default: the TF-free `NUMPY_BACKEND`); `lead_jax.train.inputs` picks
it from `config.data.backend`, so this package never imports the TensorFlow side.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

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


def make_train_stream(config: Any, text_encoder: Any, process_index: int | None = None,
                      process_count: int | None = None, *,
                      backend: StreamBackend = NUMPY_BACKEND) -> TrainStream:
  """Endless, seeded training stream of this process's shard of `data.split`.

  `text_encoder`: frozen, `encode(list[str]) -> [N, E]`, `embed_dim`, `name` (embeddings cached in
  `data.text_cache_dir`). Process index/count default to JAX's.
  """
  opts = _options(config, backend)
  pi, pc = _processes(process_index, process_count)
  local_batch = check_batch_size(opts.batch_size, pc)
  table, _ = backend.load_shard(opts, opts.split, pi, pc)
  cfg = opts.sampling
  eligible = int(np.sum(table.clip_ok))
  if eligible < local_batch:
    raise ConfigError(f"split {opts.split!r} shard {pi}/{pc} has {eligible} usable clips "
                      f"(>= {cfg.min_len} frames), fewer than the per-process batch {local_batch}")
  text_emb, null_emb = _text_tables(table, text_encoder, opts.text_cache_dir)
  source = backend.train_source(table, text_emb, cfg, opts.seed, pi, local_batch, opts.prefetch)
  return TrainStream(source, table=table, null_text_emb=null_emb, batch_size=local_batch,
                     steps_per_epoch=eligible // local_batch)


def make_eval_stream(config: Any, text_encoder: Any, process_index: int | None = None,
                     process_count: int | None = None, split: str | None = None, *,
                     backend: StreamBackend = NUMPY_BACKEND) -> EvalStream:
  """One exact pass over `split` (default `data.eval_split`); the same batch count everywhere."""
  opts = _options(config, backend)
  split = split or opts.eval_split
  pi, pc = _processes(process_index, process_count)
  local_batch = check_batch_size(opts.batch_size, pc)
  table, total = backend.load_shard(opts, split, pi, pc)
  text_emb, null_emb = _text_tables(table, text_encoder, opts.text_cache_dir)
  cfg = opts.sampling
  max_shard = -(-total // pc)
  num_batches = max(1, -(-max_shard // local_batch))
  make_iter = lambda: backend.eval_batches(table, text_emb, null_emb, cfg, opts.eval_seed,
                                           local_batch, num_batches)
  return EvalStream(make_iter, num_batches=num_batches, num_examples=int(np.sum(table.clip_ok)),
                    table=table)
