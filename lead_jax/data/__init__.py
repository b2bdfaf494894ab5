"""Input pipeline: datasets in the HumanML3D layout -> static-shape batches.

Entry points for the trainers:

  stream = make_train_stream(config, text_encoder, mesh, process_index, process_count)
  batch = next(stream)              # dict of global jax.Arrays (NumPy arrays when mesh is None)
  ckpt = stream.state(); stream.restore(ckpt)
  for batch in make_eval_stream(config, text_encoder, mesh, split="test"): ...

`config.data` fields (defaults in brackets):
  dir             dataset folder in the HumanML3D layout (for `deepmimic`: where the import goes
                  [~/.cache/lead_jax/deepmimic])
  builder         'humanml3d' | 'kit_ml' | 'motion_folder' | 'deepmimic'
  backend         'numpy' (TF-free) | 'tf' (TFDS builder + tf.data) ['numpy']
  tfds_dir        where TFDS writes prepared records (backend 'tf') [~/tensorflow_datasets]
  split           training split ['train']; eval_split ['test']
  min_len         shortest crop / shortest usable caption segment, frames [40]
  max_len         longest crop = static padded length Tmax, frames [196]
  unit_length     crop lengths are multiples of this [4]
  fps             frame rate for caption start/end seconds [20; 12.5 for kit_ml]
  max_clip_len    drop clips at least this long (MLD: 200); None crops them instead [None]
  batch_size      GLOBAL batch size (split evenly over processes) [64]
  shuffle_buffer  0: full permutation each epoch; N: tf.data-style buffer-N shuffle [0]
  prefetch        batches prepared ahead, bounded [2]
  seed            sampling seed [config.seed or 0]; eval_seed [0]
  text_cache_dir  folder for the pooled text-embedding cache; None: memory only [None]

Batches: `motion [B, max_len, D] float32` normalised with the dataset Mean/Std and zero-padded,
`mask [B, max_len] bool`, `length [B] int32`, `text_emb [B, E] float32` (cached, frozen encoder),
`caption_index [B] int32`; eval adds `valid [B] bool` and `id`/`caption`/`tokens` strings.
`stream.null_text_emb [E]` is the empty caption's embedding for classifier-free guidance dropout.

Sampling rules (one implementation, `sampling.py`, used by both backends): one caption per example
chosen uniformly, its segment cut, then a crop to a multiple of `unit_length` in [min_len, max_len]
with MLD's coin2 rule and a uniform offset. Both backends yield identical batches for one process;
with several processes each reads a disjoint shard, but the NumPy backend shards the id-sorted
list contiguously while the TF backend takes `tfds.split_for_jax_process` shards of TFDS's stored
order, so the examples a given process sees differ between backends (each covers the split).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lead_jax.data.datasets import dataset_root, get_kind, load_shard_table
from lead_jax.data.layout import Caption, Clip
from lead_jax.data.sampling import ClipTable, SamplingConfig, build_table
from lead_jax.data.streams import (EvalStream, TrainStream, check_batch_size, numpy_eval_batches,
                                   numeric_fields, numpy_train_source, to_global_batch)
from lead_jax.data.text_cache import EMPTY_CAPTION, TextEmbeddingCache
from lead_jax.errors import ConfigError

__all__ = [
    "Caption", "Clip", "ClipTable", "EvalStream", "SamplingConfig", "TextEmbeddingCache",
    "TrainStream", "data_options", "make_eval_stream", "make_train_stream", "numeric_fields",
    "to_global_batch",
]


def _get(data: Any, name: str, default: Any) -> Any:
  value = data.get(name, default) if hasattr(data, "get") else getattr(data, name, default)
  return default if value is None and default is not None else value


def data_options(config: Any) -> dict[str, Any]:
  """`config.data` with defaults filled in, validated (raises ConfigError)."""
  data = config.data if hasattr(config, "data") else config
  builder = _get(data, "builder", None)
  if builder is None:
    raise ConfigError("data.builder is required ('humanml3d', 'kit_ml', 'motion_folder', "
                      "'deepmimic')")
  kind = get_kind(builder)
  seed = _get(data, "seed", None)
  if seed is None:
    seed = _get(config, "seed", 0) if hasattr(config, "data") else 0
  opts = {
      "dir": _get(data, "dir", None),
      "builder": builder,
      "backend": _get(data, "backend", "numpy"),
      "tfds_dir": _get(data, "tfds_dir", None),
      "split": _get(data, "split", "train"),
      "eval_split": _get(data, "eval_split", "test"),
      "batch_size": int(_get(data, "batch_size", 64)),
      "prefetch": int(_get(data, "prefetch", 2)),
      "seed": int(seed),
      "eval_seed": int(_get(data, "eval_seed", 0)),
      "text_cache_dir": _get(data, "text_cache_dir", None),
      "sampling": SamplingConfig(
          min_len=int(_get(data, "min_len", 40)), max_len=int(_get(data, "max_len", 196)),
          unit_length=int(_get(data, "unit_length", 4)),
          fps=float(_get(data, "fps", kind.fps)),
          max_clip_len=_get(data, "max_clip_len", None),
          shuffle_buffer=int(_get(data, "shuffle_buffer", 0))),
  }
  if opts["backend"] not in ("numpy", "tf"):
    raise ConfigError(f"data.backend must be 'numpy' or 'tf', found {opts['backend']!r}")
  if opts["prefetch"] < 0:
    raise ConfigError(f"data.prefetch must be >= 0, found {opts['prefetch']}")
  return opts


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  import jax  # pylint: disable=import-outside-toplevel
  pi = jax.process_index() if process_index is None else int(process_index)
  pc = jax.process_count() if process_count is None else int(process_count)
  if pc < 1 or not 0 <= pi < pc:
    raise ConfigError(f"process_index {pi} must be in [0, process_count={pc})")
  return pi, pc


def _load(opts: dict, split: str, pi: int, pc: int) -> tuple[ClipTable, int]:
  """(this process's table, clips in the whole split) through the chosen backend."""
  if opts["backend"] == "tf":
    from data_pipeline import stream as tf_stream  # pylint: disable=import-outside-toplevel
    return tf_stream.load_shard_table(opts, split, pi, pc)
  root = dataset_root(opts["builder"], opts["dir"])
  table, _, _, total = load_shard_table(opts["builder"], root, split, opts["sampling"], pi, pc)
  return table, total


def _text_tables(table: ClipTable, text_encoder: Any, cache_dir: str | os.PathLike | None
                 ) -> tuple[np.ndarray, np.ndarray]:
  cache = TextEmbeddingCache(text_encoder, cache_dir)
  emb = cache.embed(table.caption_texts + [EMPTY_CAPTION])
  return emb[:-1], emb[-1]


def make_train_stream(config: Any, text_encoder: Any, mesh=None, process_index: int | None = None,
                      process_count: int | None = None, sharding=None) -> TrainStream:
  """Endless, seeded training stream of this process's shard (see the module docstring)."""
  opts = data_options(config)
  pi, pc = _processes(process_index, process_count)
  local_batch = check_batch_size(opts["batch_size"], pc, mesh)
  table, _ = _load(opts, opts["split"], pi, pc)
  cfg = opts["sampling"]
  eligible = int(np.sum(table.clip_ok))
  if eligible < local_batch:
    raise ConfigError(f"split {opts['split']!r} shard {pi}/{pc} has {eligible} usable clips "
                      f"(>= {cfg.min_len} frames), fewer than the per-process batch {local_batch}")
  text_emb, null_emb = _text_tables(table, text_encoder, opts["text_cache_dir"])
  if opts["backend"] == "tf":
    from data_pipeline import stream as tf_stream  # pylint: disable=import-outside-toplevel
    source = tf_stream.tf_train_source(table, text_emb, cfg, opts["seed"], pi, local_batch,
                                       opts["prefetch"])
  else:
    source = numpy_train_source(table, text_emb, cfg, opts["seed"], pi, local_batch)
  return TrainStream(source, table=table, caption_texts=table.caption_texts,
                     null_text_emb=null_emb, batch_size=local_batch,
                     steps_per_epoch=eligible // local_batch, prefetch=opts["prefetch"],
                     mesh=mesh, sharding=sharding, backend=opts["backend"])


def make_eval_stream(config: Any, text_encoder: Any, mesh=None, process_index: int | None = None,
                     process_count: int | None = None, split: str | None = None,
                     sharding=None) -> EvalStream:
  """One exact pass over `split` (default `data.eval_split`); the same batch count everywhere."""
  opts = data_options(config)
  split = split or opts["eval_split"]
  pi, pc = _processes(process_index, process_count)
  local_batch = check_batch_size(opts["batch_size"], pc, mesh)
  table, total = _load(opts, split, pi, pc)
  text_emb, null_emb = _text_tables(table, text_encoder, opts["text_cache_dir"])
  cfg = opts["sampling"]
  max_shard = -(-total // pc)
  num_batches = max(1, -(-max_shard // local_batch))
  if opts["backend"] == "tf":
    from data_pipeline import stream as tf_stream  # pylint: disable=import-outside-toplevel
    make_iter = lambda: tf_stream.tf_eval_batches(table, text_emb, null_emb, cfg,
                                                  opts["eval_seed"], local_batch, num_batches)
  else:
    make_iter = lambda: numpy_eval_batches(table, text_emb, null_emb, cfg, opts["eval_seed"],
                                           local_batch, num_batches)
  return EvalStream(make_iter, num_batches=num_batches, num_examples=int(np.sum(table.clip_ok)),
                    table=table, mesh=mesh, sharding=sharding)
