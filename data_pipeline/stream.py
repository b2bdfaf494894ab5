"""The tf.data backend of `lead_jax.data`: TFDS records in, the shared sampling plans applied.

`lead_jax.data.make_train_stream(config, ...)` with `data.backend = 'tf'` lands here. The split is
prepared once by the TFDS builder (`data.tfds_dir`), this process's shard is read with
`tfds.split_for_jax_process` into a `ClipTable`, and batches are gathered by tf.data from the same
per-epoch plans (`lead_jax.data.sampling`) the NumPy backend uses, with bounded `prefetch`.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from lead_jax.data import layout
from lead_jax.data.datasets import get_kind
from lead_jax.data.sampling import ClipTable, SamplingConfig, build_table
from lead_jax.data.streams import BatchSource, eval_fields, eval_layout, train_plans
from lead_jax.errors import ConfigError


def make_builder(builder: str, data_dir: str | os.PathLike | None,
                 tfds_dir: str | os.PathLike | None) -> tuple[tfds.core.DatasetBuilder, Any]:
  """(prepared TFDS builder, the source folder it reads)."""
  get_kind(builder)
  tfds_dir = os.fspath(tfds_dir) if tfds_dir else None
  if builder in ("humanml3d", "kit_ml"):
    if not data_dir:
      raise ConfigError(f"data.dir must name the {builder} folder (the TFDS manual directory)")
    if builder == "humanml3d":
      from data_pipeline.humanml3d import Humanml3d as cls  # pylint: disable=import-outside-toplevel
    else:
      from data_pipeline.kit_ml import KitMl as cls  # pylint: disable=import-outside-toplevel
    b = cls(data_dir=tfds_dir)
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data_dir))
    return b, layout.check_layout(data_dir)
  from data_pipeline import motion_folder  # pylint: disable=import-outside-toplevel
  cls = motion_folder.MotionFolder if builder == "motion_folder" else motion_folder.Deepmimic
  b = cls(source_dir=data_dir, data_dir=tfds_dir)
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


def load_shard_table(opts: dict, split: str, process_index: int, process_count: int
                     ) -> tuple[ClipTable, int]:
  """(table of `tfds.split_for_jax_process`'s shard for this process, clips in the split)."""
  b, root = make_builder(opts["builder"], opts["dir"], opts["tfds_dir"])
  if split not in b.info.splits:
    raise ConfigError(f"split {split!r} not in {opts['builder']} (has {list(b.info.splits)})")
  shard = tfds.split_for_jax_process(split, process_index=process_index,
                                     process_count=process_count)
  dim = b.info.features["motion"].shape[-1]
  mean, std = layout.load_stats(root, dim)
  table = build_table(read_clips(b, shard), mean, std, opts["sampling"])
  return table, b.info.splits[split].num_examples


def _gather_fn(frames: tf.Tensor, max_len: int):
  """`sampling.gather_batch` in TensorFlow: padding positions gather the table's last, zero row."""
  steps = tf.range(max_len, dtype=tf.int64)
  pad_row = tf.constant(frames.shape[0] - 1, tf.int64)

  def gather(start, length):
    mask = steps[None, :] < length[:, None]
    index = tf.where(mask, start[:, None] + steps[None, :], pad_row)
    motion = tf.gather(frames, index)
    return {"motion": motion, "mask": mask, "length": tf.cast(length, tf.int32)}
  return gather


def tf_train_source(table: ClipTable, text_emb: np.ndarray, cfg: SamplingConfig, seed: int,
                    shard: int, batch_size: int, prefetch: int) -> BatchSource:
  frames = tf.constant(table.frames)
  text = tf.constant(text_emb)
  gather = _gather_fn(frames, cfg.max_len)
  spec = tf.TensorSpec([batch_size], tf.int64)

  def batch_fn(start, length, caption):
    out = gather(start, length)
    out["text_emb"] = tf.gather(text, caption)
    out["caption_index"] = tf.cast(caption, tf.int32)
    return out

  def source(epoch: int, step: int) -> Iterator[dict]:
    plans = lambda: ((p.start, p.length, p.caption) for p in
                     train_plans(table, cfg, seed, shard, batch_size, epoch, step))
    ds = tf.data.Dataset.from_generator(plans, output_signature=(spec, spec, spec))
    ds = ds.map(batch_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if prefetch:
      ds = ds.prefetch(prefetch)
    return ds.as_numpy_iterator()
  return source


def tf_eval_batches(table: ClipTable, text_emb: np.ndarray, null_text_emb: np.ndarray,
                    cfg: SamplingConfig, seed: int, batch_size: int,
                    num_batches: int) -> Iterator[dict]:
  plan, valid = eval_layout(table, cfg, seed, batch_size, num_batches)
  gather = _gather_fn(tf.constant(table.frames), cfg.max_len)
  ds = tf.data.Dataset.from_tensor_slices((plan.start, plan.length, valid)).batch(batch_size)
  ds = ds.map(lambda s, l, v: {**gather(s, l), "v": v})
  for b, batch in enumerate(tfds.as_numpy(ds)):
    sl = slice(b * batch_size, (b + 1) * batch_size)
    v = batch.pop("v")
    batch["motion"] = batch["motion"] * v[:, None, None]
    yield {**batch, **eval_fields(table, plan.take(sl), valid[sl], text_emb, null_text_emb)}
