"""Process-local batches -> global `jax.Array`s on a mesh (the only place batches meet devices)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lead_jax.errors import ConfigError


def _batch_shards(sharding: NamedSharding) -> int:
  """How many pieces `sharding` cuts the leading (batch) axis into."""
  spec = tuple(sharding.spec)
  axes = spec[0] if spec else None
  if axes is None:
    return 1
  axes = (axes,) if isinstance(axes, str) else tuple(axes)
  return math.prod(sharding.mesh.shape[a] for a in axes)


def to_global_batch(batch: Mapping[str, Any], mesh: Mesh,
                    sharding: NamedSharding | None = None) -> dict[str, Any]:
  """Process-local batch -> global `jax.Array`s sharded on the leading (batch) axis.

  Numeric NumPy arrays `[B_local, ...]` become global arrays `[B_local * process_count, ...]`
  (`jax.make_array_from_process_local_data`), arrays that are already global are moved to
  `sharding`; string/object arrays (ids, captions) stay process-local NumPy arrays
  (`numeric_fields` drops them for a jitted step). `sharding` defaults to splitting the batch over
  all mesh axes. Raises ConfigError when the global batch does not split over those devices.
  """
  sharding = sharding or NamedSharding(mesh, PartitionSpec(mesh.axis_names))
  shards = _batch_shards(sharding)
  out = {}
  for k, v in batch.items():
    if isinstance(v, jax.Array):
      out[k] = jax.device_put(v, sharding)
      continue
    v = np.asarray(v)
    if v.dtype.kind in "OUS":
      out[k] = v
      continue
    rows = v.shape[0] * jax.process_count()
    if rows % shards:
      raise ConfigError(f"batch field {k!r}: a global batch of {rows} does not split over the "
                        f"{shards} devices of the mesh's batch axes (data.batch_size must be a "
                        f"multiple of {shards})")
    out[k] = jax.make_array_from_process_local_data(sharding, v)
  return out


def numeric_fields(batch: Mapping[str, Any]) -> dict[str, Any]:
  """The array fields of a batch (what a jitted step takes): strings and ids dropped."""
  return {k: v for k, v in batch.items()
          if isinstance(v, jax.Array) or np.asarray(v).dtype.kind in "biuf"}
