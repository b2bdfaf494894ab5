"""Input pipeline (TF-free): datasets in the HumanML3D layout -> static-shape NumPy batches.

  stream = make_train_stream(config, text_encoder)   # this process's shard, NumPy backend
  batch = next(stream)                               # dict of process-local NumPy arrays
  ckpt = stream.state(); stream.restore(ckpt)
  for batch in make_eval_stream(config, text_encoder, split="test"): ...
  arrays = to_global_batch(numeric_fields(batch), mesh)   # global jax.Arrays for a jitted step

`config.data` fields and their meaning: `options.py` (defaults: `configs/train_common.py`).
`data.backend = 'tf'` streams come from `lead_jax.train.inputs`, which passes the tf.data backend
(`lead_jax_data_pipeline.stream.TF_BACKEND`) to these same makers: this package never imports
TensorFlow or `lead_jax_data_pipeline`.

Batches: `motion [B, max_len, D] float32` normalised with the dataset Mean/Std and zero-padded,
`mask [B, max_len] bool`, `length [B] int32`, `text_emb [B, E] float32` (cached, frozen encoder),
`caption_index [B] int32`; eval adds `valid [B] bool` and `id`/`caption`/`tokens` strings.
`stream.null_text_emb [E]` is the empty caption's embedding for classifier-free guidance dropout.

Sampling rules (one implementation, `sampling.py`, used by both backends): one caption per example
chosen uniformly, its segment cut, then a crop to a multiple of `unit_length` in [min_len, max_len]
with MLD's coin2 rule and a uniform offset. Both backends yield identical batches for one process;
with several shards (`data.shards`, default one per process) each is disjoint, but the NumPy
backend shards the id-sorted list contiguously while the TF backend takes
`tfds.split_for_jax_process` shards of TFDS's stored order, so the examples a given shard holds
differ between backends (each covers the split). A process's batch is its shards' batches
concatenated, so the global batches depend on `data.shards`, not on the process count
(`factory.py`).

Latent cache (`latent_bank.py`): the crops of the latent stages' cache and batches of their cached
posteriors (`latent_mu`, `latent_logvar`); the encoding and storage are `lead_jax.train.latents`.
"""

from lead_jax.data import latent_bank, text_cache
from lead_jax.data.factory import (Shard, ShardSet, eval_batch_count, load_shards,
                                   make_eval_stream, make_train_stream, steps_per_epoch)
from lead_jax.data.global_batch import numeric_fields, to_global_batch
from lead_jax.data.layout import Caption, Clip
from lead_jax.data.numpy_backend import NUMPY_BACKEND
from lead_jax.data.options import DataOptions, data_options
from lead_jax.data.sampling import ClipTable, SamplingConfig
from lead_jax.data.streams import EvalStream, StreamBackend, TrainStream
from lead_jax.data.text_cache import TextEmbeddingCache

__all__ = [
    "Caption", "Clip", "ClipTable", "DataOptions", "EvalStream", "NUMPY_BACKEND",
    "SamplingConfig", "Shard", "ShardSet", "StreamBackend", "TextEmbeddingCache", "TrainStream",
    "data_options", "eval_batch_count", "latent_bank", "load_shards", "make_eval_stream",
    "make_train_stream", "numeric_fields", "steps_per_epoch", "text_cache", "to_global_batch",
]
