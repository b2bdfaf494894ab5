"""Numerics shared by the text towers: activations and masked multi-head dot-product attention."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lead_jax.errors import ConfigError
from lead_jax.models import packing as packing_lib
from lead_jax.models.layers import gelu_exact


def quick_gelu(x: jax.Array) -> jax.Array:
  """CLIP's sigmoid approximation of GELU: `x * sigmoid(1.702 x)`."""
  return x * jax.nn.sigmoid(1.702 * x)


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "quick_gelu": quick_gelu,
    "gelu": gelu_exact,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """The activation called `name` in a Hugging Face config (`hidden_act`)."""
  if name not in _ACTIVATIONS:
    raise ConfigError(f"hidden_act {name!r} is not supported; expected one of {sorted(_ACTIVATIONS)}")
  return _ACTIVATIONS[name]


def multi_head_attention(query: jax.Array, key: jax.Array, value: jax.Array, num_heads: int,
                         attend: jax.Array) -> jax.Array:
  """Scaled dot-product attention over heads.

  Args:
    query: `[B, Lq, D]` projections (D divisible by `num_heads`); key, value: `[B, Lk, D]`.
    num_heads: number of heads H.
    attend: bool `[B, Lq, Lk]` or broadcastable (`[1, Lq, Lk]`, `[B, 1, Lk]`): True where query i
      may attend to key j.

  Returns:
    `[B, Lq, D]` attention outputs (heads concatenated), computed in float32.
  """
  batch, length, width = query.shape
  head_dim = width // num_heads
  # Head-major [B, H, L, c] operands: XLA:CPU's batched matmuls are much slower on [B, L, H, c].
  split = lambda x: x.reshape(batch, x.shape[1], num_heads, head_dim).transpose(0, 2, 1, 3)
  q, k, v = split(query), split(key), split(value)
  logits = jnp.einsum("bhqc,bhkc->bhqk", q, k) / jnp.sqrt(jnp.float32(head_dim))
  # The mask as an additive bias built at `attend`'s (broadcast) shape, not a select over the logits.
  bias = jnp.where(attend, 0.0, jnp.finfo(logits.dtype).min).astype(logits.dtype)
  weights = jax.nn.softmax(logits + bias[:, None], axis=-1)
  out = jnp.einsum("bhqk,bhkc->bqhc", weights, v)
  return out.reshape(batch, length, width)


def packed_attention(query: jax.Array, key: jax.Array, value: jax.Array, num_heads: int,
                     attend: jax.Array, layout: packing_lib.Packing | packing_lib.PrefixPacking
                     ) -> jax.Array:
  """`multi_head_attention` of a packing layout's compact tokens: projections `[F, D]` -> `[F, D]`,
  attending in the layout's rows under `attend [R, C, C]`."""
  rows = lambda x: packing_lib.to_rows(x, layout)
  out = multi_head_attention(rows(query), rows(key), rows(value), num_heads, attend)
  return packing_lib.to_tokens(out, layout)
