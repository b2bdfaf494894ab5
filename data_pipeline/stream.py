"""The tf.data backend of `lead_jax.data` (`data.backend = 'tf'`): `TF_BACKEND`.

`lead_jax.train.inputs` passes `TF_BACKEND` to `lead_jax.data.make_train_stream` /
`make_eval_stream`. The split is prepared once by the TFDS builder (`data.tfds_dir`) and this
process's `tfds.split_for_jax_process` shard is read into a `ClipTable` (normalised frames, caption
segments). The per-epoch plans of `lead_jax.data.sampling` (the same ones the NumPy backend uses)
are arrays, fed with `from_tensor_slices`, batched, and the frames gathered by tf.data with bounded
`prefetch`: the batches equal the NumPy backend's, and a stream resumes at any (epoch, step).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from lead_jax.data import layout
from lead_jax.data.datasets import get_kind
from lead_jax.data.options import DataOptions
from lead_jax.data.sampling import ClipTable, SamplingConfig, build_table
from lead_jax.data.streams import (Batch, BatchSource, StreamBackend, epoch_rows, eval_fields,
                                   eval_layout)
from lead_jax.errors import ConfigError

from .humanml3d import Humanml3d
from .kit_ml import KitMl
from .motion_folder import Deepmimic, MotionFolder

MANUAL_BUILDERS = {"humanml3d": Humanml3d, "kit_ml": KitMl}
FOLDER_BUILDERS = {"motion_folder": MotionFolder, "deepmimic": Deepmimic}


def make_builder(builder: str, data_dir: str | os.PathLike | None,
                 tfds_dir: str | os.PathLike | None
                 ) -> tuple[tfds.core.DatasetBuilder, os.PathLike]:
  """(prepared TFDS builder, the source folder it reads)."""
  get_kind(builder)
  tfds_dir = os.fspath(tfds_dir) if tfds_dir else None
  if builder in MANUAL_BUILDERS:
    if not data_dir:
      raise ConfigError(f"data.dir must name the {builder} folder (the TFDS manual directory)")
    b = MANUAL_BUILDERS[builder](data_dir=tfds_dir)
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data_dir))
    return b, layout.check_layout(data_dir)
  b = FOLDER_BUILDERS[builder](source_dir=data_dir or None, data_dir=tfds_dir)
  b.download_and_prepare()
  return b, b.source_dir


def record_to_clip(record: dict) -> layout.Clip:
  """A TFDS example (NumPy form) back to a `Clip`."""
  caps = record["captions"]
  # nested sequences come back ragged (a tf.RaggedTensor) unless every caption has the same length
  as_lists = lambda x: x.to_list() if hasattr(x, "to_list") else [list(row) for row in x]
  tokens, pos = as_lists(caps["tokens"]), as_lists(caps["pos"])
  captions = tuple(
      layout.Caption(caps["caption"][i].decode(), tuple(t.decode() for t in tokens[i]),
                     tuple(p.decode() for p in pos[i]), float(caps["start"][i]),
                     float(caps["end"][i]))
      for i in range(len(caps["caption"])))
  return layout.Clip(record["id"].decode(), np.asarray(record["motion"], np.float32), captions)


def read_clips(b: tfds.core.DatasetBuilder, split: str) -> list[layout.Clip]:
  ds = b.as_dataset(split=split, shuffle_files=False)
  return [record_to_clip(r) for r in tfds.as_numpy(ds)]


def load_shard(opts: DataOptions, split: str, shard: int, shard_count: int
               ) -> tuple[ClipTable, int]:
  """(table of `tfds.split_for_jax_process`'s shard `shard` of `shard_count`, clips in the
  split)."""
  b, root = make_builder(opts.builder, opts.dir, opts.tfds_dir)
  if split not in b.info.splits:
    raise ConfigError(f"split {split!r} not in {opts.builder} (has {list(b.info.splits)})")
  shard_split = tfds.split_for_jax_process(split, process_index=shard, process_count=shard_count)
  dim = b.info.features["motion"].shape[-1]
  mean, std = layout.load_stats(root, dim)
  table = build_table(read_clips(b, shard_split), mean, std, opts.sampling)
  return table, b.info.splits[split].num_examples


def _gather_fn(frames: tf.Tensor, max_len: int):
  """`sampling.gather_batch` in TensorFlow: padding positions gather the table's last, zero row."""
  steps = tf.range(max_len, dtype=tf.int64)
  pad_row = tf.constant(frames.shape[0] - 1, tf.int64)

  def gather(start, length):
    mask = steps[None, :] < length[:, None]
    index = tf.where(mask, start[:, None] + steps[None, :], pad_row)
    return {"motion": tf.gather(frames, index), "mask": mask,
            "length": tf.cast(length, tf.int32)}
  return gather


def tf_train_source(table: ClipTable, text_emb: np.ndarray, cfg: SamplingConfig, seed: int,
                    shard: int, batch_size: int, steps: int, prefetch: int) -> BatchSource:
  """Each epoch: its plan rows (from `step * batch_size` on) -> `from_tensor_slices` -> whole
  batches -> frames and text embeddings gathered in tf.data -> NumPy."""
  frames = tf.constant(table.frames)
  text = tf.constant(text_emb)
  gather = _gather_fn(frames, cfg.max_len)

  def batch_fn(start, length, caption):
    return {**gather(start, length), "text_emb": tf.gather(text, caption),
            "caption_index": tf.cast(caption, tf.int32)}

  def epoch_dataset(epoch: int, step: int) -> tf.data.Dataset:
    plan = epoch_rows(table, cfg, seed, shard, batch_size, epoch, steps)
    rows = slice(step * batch_size, None)
    ds = tf.data.Dataset.from_tensor_slices((plan.start[rows], plan.length[rows],
                                             plan.caption[rows]))
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(batch_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(prefetch) if prefetch else ds

  def source(epoch: int, step: int) -> Iterator[Batch]:
    while True:
      yield from epoch_dataset(epoch, step).as_numpy_iterator()
      epoch, step = epoch + 1, 0
  return source


def tf_eval_batches(table: ClipTable, text_emb: np.ndarray, null_text_emb: np.ndarray,
                    cfg: SamplingConfig, seed: int, batch_size: int,
                    num_batches: int) -> Iterator[Batch]:
  """The padded eval plan -> `from_tensor_slices` -> frames gathered in tf.data (padding rows
  zeroed); the per-row strings and embeddings from `streams.eval_fields`."""
  plan, valid = eval_layout(table, cfg, seed, batch_size, num_batches)
  gather = _gather_fn(tf.constant(table.frames), cfg.max_len)

  def batch_fn(start, length, v):
    out = gather(start, length)
    out["motion"] = out["motion"] * tf.cast(v, tf.float32)[:, None, None]
    return out

  ds = tf.data.Dataset.from_tensor_slices((plan.start, plan.length, valid)).batch(batch_size)
  for b, batch in enumerate(ds.map(batch_fn).as_numpy_iterator()):
    sl = slice(b * batch_size, (b + 1) * batch_size)
    yield {**batch, **eval_fields(table, plan.take(sl), valid[sl], text_emb, null_text_emb)}


TF_BACKEND = StreamBackend("tf", load_shard, tf_train_source, tf_eval_batches)
