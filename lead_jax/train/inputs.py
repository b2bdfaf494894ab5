"""A run's input streams: `config.data.backend` picks who reads and gathers the batches.

  'numpy'  `lead_jax.data.NUMPY_BACKEND` (TF-free)
  'tf'     `lead_jax_data_pipeline.stream.TF_BACKEND` (TFDS-prepared records, tf.data gathering),
           imported here, only when asked for: TensorFlow is a heavy optional dependency.

Both yield the same process-local NumPy batches (see `lead_jax.data`); the train loop makes them
global arrays with `lead_jax.data.to_global_batch`.

  train, evaluation = make_streams(config, text_encoder, with_eval=True)
  test = make_eval_stream(config, text_encoder, split="test")
"""

from __future__ import annotations

from typing import Any

from lead_jax import data
from lead_jax.errors import ConfigError


def stream_backend(config: Any) -> data.StreamBackend:
  """The backend `config.data.backend` names (ConfigError for another value)."""
  if data.data_options(config).backend == "numpy":
    return data.NUMPY_BACKEND
  try:
    from lead_jax_data_pipeline import stream  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ConfigError(f"config.data.backend='tf' needs TensorFlow and TFDS (pip install "
                           f"'lead-jax[tf]'): {e}") from e
  return stream.TF_BACKEND


def make_train_stream(config: Any, text_encoder: Any, process_index: int | None = None,
                      process_count: int | None = None) -> data.TrainStream:
  """`lead_jax.data.make_train_stream` over the backend the config names."""
  return data.make_train_stream(config, text_encoder, process_index, process_count,
                                backend=stream_backend(config))


def make_eval_stream(config: Any, text_encoder: Any, split: str | None = None,
                     process_index: int | None = None,
                     process_count: int | None = None) -> data.EvalStream:
  """`lead_jax.data.make_eval_stream` of `split` (default `data.eval_split`) over the backend the
  config names."""
  return data.make_eval_stream(config, text_encoder, process_index, process_count, split,
                               backend=stream_backend(config))


def make_streams(config: Any, text_encoder: Any, *, with_eval: bool
                 ) -> tuple[data.TrainStream, data.EvalStream | None]:
  """(training stream, evaluation stream of `data.eval_split` or None), process-local batches."""
  train = make_train_stream(config, text_encoder)
  evaluation = make_eval_stream(config, text_encoder) if with_eval else None
  return train, evaluation
