"""Matmul precision for inference: float32 (MLD's numerics) or bfloat16 matmuls with float32 accumulation.

Every matmul in `lead_jax.models.layers` casts its operands to the dtype of its weight and
accumulates in float32, so precision is chosen by the parameters alone:

  fast = cast_matmul_weights(params, "bfloat16")   # kernels -> bfloat16, everything else float32
  vae.apply({"params": fast}, z, mask, method=MotionVAE.decode)          # output float32

Only the matmul kernels change dtype: biases, LayerNorm scales, position tables and tokens stay
float32, so LayerNorm, softmax, GELU, residual sums and the sampler's arithmetic run in float32.
bfloat16 x bfloat16 -> float32 is what GPU tensor cores, TPU MXUs and x86 AMX units execute natively;
on a 2-core AMX CPU (Xeon) it makes MLD-size sampling ~2x faster, on a 2-core AVX2-only CPU (AMD
EPYC, no bfloat16 units) ~0.7x, slower (`benchmarks/sampling.py`).

`compiler_options(dtype)` gives per-program XLA options for the generation program. On CPU with
float32, XLA's YNNPACK library fusions (jaxlib 0.10) fuse LayerNorm + FFN + GELU into library calls
that run the VAE decoder ~1.5x slower than XLA's own loop fusions; turning them off for that program
only (`jax.jit(..., compiler_options=...)`) is faster and leaves other programs alone. With bfloat16
the library fusions are what reach the AMX kernels, so they stay on.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import traverse_util

from lead_jax.errors import ConfigError

MATMUL_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
KERNEL_NAMES = ("kernel",)  # parameter names that are matmul weights ([in, out] or DenseGeneral)

_YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"


def check_matmul_dtype(name: str) -> str:
  """`name` if it is a supported matmul dtype ('float32' | 'bfloat16'), else a `ConfigError`."""
  if name not in MATMUL_DTYPES:
    raise ConfigError(f"matmul dtype {name!r} is not supported; expected one of {list(MATMUL_DTYPES)}")
  return name


def cast_matmul_weights(params: Any, dtype: str) -> Any:
  """`params` with every matmul kernel (leaves named 'kernel') cast to `dtype`; other leaves as is.

  Works on any Flax parameter tree (nested dicts); 'float32' returns the tree unchanged.
  """
  target = MATMUL_DTYPES[check_matmul_dtype(dtype)]
  if target == jnp.float32:
    return params
  flat = traverse_util.flatten_dict(params)
  return traverse_util.unflatten_dict({
      path: (leaf.astype(target) if path[-1] in KERNEL_NAMES else leaf)
      for path, leaf in flat.items()})


def compiler_options(dtype: str, backend: str | None = None) -> dict[str, str] | None:
  """XLA options for a generation program computing with `dtype` matmuls on `backend`
  (default: JAX's default backend); None where the defaults are best or the option is unknown."""
  check_matmul_dtype(dtype)
  backend = backend or jax.default_backend()
  if backend != "cpu" or dtype != "float32" or not _option_supported(_YNN_OPTION, ""):
    return None
  return {_YNN_OPTION: ""}


@functools.lru_cache(maxsize=None)
def _option_supported(option: str, value: str) -> bool:
  """Whether this jaxlib's CPU compiler accepts `option=value` (checked once on a tiny program)."""
  try:
    jax.jit(lambda x: x + 1, compiler_options={option: value}).lower(
        jax.ShapeDtypeStruct((), jnp.float32)).compile()
  except Exception:  # pylint: disable=broad-except  # unknown option / value in another jaxlib
    return False
  return True
