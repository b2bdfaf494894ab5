"""`config.data`, read and validated once: `data_options(config) -> DataOptions`.

The defaults live in the config (`configs/train_common.py:data_config`); this module reads every
field and raises `ConfigError` naming a missing or bad one. Fields:
  dir             dataset folder in the HumanML3D layout (for `deepmimic`: where the import goes;
                  "" = ~/.cache/lead_jax/deepmimic)
  builder         'humanml3d' | 'kit_ml' | 'motion_folder' | 'deepmimic'
  backend         'numpy' (TF-free, `lead_jax.data`) | 'tf' (TFDS builder + tf.data,
                  `lead_jax_data_pipeline`; chosen by `lead_jax.train.inputs`)
  tfds_dir        where TFDS writes prepared records (backend 'tf'); None: TFDS's own default
  split           training split; eval_split: the evaluation split
  min_len         shortest crop / shortest usable caption segment, frames
  max_len         longest crop = static padded length Tmax, frames
  unit_length     crop lengths are multiples of this
  fps             frame rate for caption start/end seconds; None: the dataset kind's (20, KIT 12.5)
  max_clip_len    drop clips at least this long (MLD: 200); None crops them instead
  batch_size      GLOBAL batch size (split evenly over processes, then over their shards)
  shards          the split is read as this many disjoint id-sorted shards, each with its own
                  seeded plans and batch_size / shards rows of every batch (0 = one per process);
                  a multiple of the process count. The global batches depend on it, not on the
                  process count: a run on 1 process with shards=N repeats an N-process run
  shuffle_buffer  0: full permutation each epoch; N: tf.data-style buffer-N shuffle
  prefetch        batches prepared ahead, bounded (0: none)
  seed            sampling seed; None: the run's `config.seed`. eval_seed: the evaluation crops'
  text_cache_dir  folder for the pooled text-embedding cache; None: memory only
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lead_jax.data.datasets import get_kind
from lead_jax.data.sampling import SamplingConfig
from lead_jax.errors import ConfigError

BACKENDS = ("numpy", "tf")


@dataclasses.dataclass(frozen=True)
class DataOptions:
  """The validated `config.data` (see the module docstring); `sampling` holds the crop rules."""
  dir: str | None
  builder: str
  backend: str
  tfds_dir: str | None
  split: str
  eval_split: str
  batch_size: int
  shards: int
  prefetch: int
  seed: int
  eval_seed: int
  text_cache_dir: str | None
  sampling: SamplingConfig


def _read(section: Any, name: str, where: str) -> Any:
  try:
    return section[name]
  except (KeyError, TypeError):
    raise ConfigError(f"{where}.{name} is missing (every field is listed in "
                      "configs/train_common.py:data_config)") from None


def data_options(config: Any) -> DataOptions:
  """The validated `config.data` (raises ConfigError naming a missing or bad field)."""
  data = _read(config, "data", "config")
  field = lambda name: _read(data, name, "config.data")
  kind = get_kind(field("builder"))
  backend = field("backend")
  if backend not in BACKENDS:
    raise ConfigError(f"config.data.backend must be one of {BACKENDS}, found {backend!r}")
  seed = field("seed")
  if seed is None:
    seed = _read(config, "seed", "config")
  fps = field("fps")
  opts = DataOptions(
      dir=field("dir"), builder=kind.name, backend=backend, tfds_dir=field("tfds_dir"),
      split=field("split"), eval_split=field("eval_split"), batch_size=int(field("batch_size")),
      shards=int(field("shards")), prefetch=int(field("prefetch")), seed=int(seed),
      eval_seed=int(field("eval_seed")),
      text_cache_dir=field("text_cache_dir"),
      sampling=SamplingConfig(
          min_len=int(field("min_len")), max_len=int(field("max_len")),
          unit_length=int(field("unit_length")), fps=float(kind.fps if fps is None else fps),
          max_clip_len=field("max_clip_len"), shuffle_buffer=int(field("shuffle_buffer"))))
  if opts.shards < 0:
    raise ConfigError(f"config.data.shards must be >= 0 (0 = one per process), found {opts.shards}")
  if opts.prefetch < 0:
    raise ConfigError(f"config.data.prefetch must be >= 0, found {opts.prefetch}")
  return opts
