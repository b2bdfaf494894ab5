"""Transformer building blocks with MLD's (PyTorch) numerics, in Flax Linen.

Everything here is batch-first (`[B, T, d]`), whereas MLD's PyTorch code is sequence-first.

Layers are post-norm (`x = LN(x + Drop(sublayer(x)))`) with exact (erf) GELU and LayerNorm eps 1e-5,
as `mld/models/operator/cross_attention.py`. Attention follows `torch.nn.MultiheadAttention`: scale
`1/sqrt(d/H)`, dropout on the attention probabilities; its packed `in_proj_weight` is stored here
as three `DenseGeneral` kernels `query/key/value` of shape `[d, H, d/H]` and `out_proj` as `out`
with kernel `[H, d/H, d]` (see `lead_jax/convert/mld_ckpt.py`).

Masks: every `mask` argument here is `[B, T]` with **True = valid token (attend to it)**, or a
pairwise `[B, Tq, Tk]` with True = query i may attend to key j (packed sequences:
`lead_jax.models.packing.attention_mask`). PyTorch's `key_padding_mask` is the opposite (True =
ignore): MLD's `src_key_padding_mask=~aug_mask` is our `mask=aug_mask`. Masked keys get `finfo.min`
added to their logits, so padded tokens have exactly zero weight and valid tokens' outputs do not
depend on padded content.

Initialisation matches MLD's: inside the skip stacks every >1-dim weight is xavier-uniform (packed
in-projection counted as one `[3d, d]` matrix), attention biases are zero, other Linear biases are
PyTorch's default `U(+-1/sqrt(fan_in))`, LayerNorm is ones/zeros; `LearnedPositionEmbedding` is
`U(0, 1)`. `torch_linear_init` gives PyTorch's default Linear init for layers outside the stacks.

Dropout is active when `deterministic=False` and then needs the `'dropout'` PRNG stream.

Precision follows the parameters: every matmul casts its operands to the dtype of the weights it
uses and accumulates (and returns) float32 (`matmul`). With float32 parameters that is plain float32;
with bfloat16 kernels (`lead_jax.models.cast_matmul_weights`) the matmuls run bfloat16 x bfloat16 ->
float32 while LayerNorm, softmax, GELU, residuals and the sampler's arithmetic stay float32.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from lead_jax.errors import InputError
from lead_jax.models import packing as packing_lib

Array = jax.Array
Initializer = Callable[..., Array]

LAYER_NORM_EPS = 1e-5

# xavier_uniform on the packed (3d, d) in-projection: variance 2 / (d + 3d) = 0.5 / d.
# (DenseGeneral initialises its kernel in the flattened 2-D shape, then reshapes.)
_in_proj_init = nn.initializers.variance_scaling(0.5, "fan_avg", "uniform")
_out_proj_init = nn.initializers.xavier_uniform()
_xavier = nn.initializers.xavier_uniform()
# PyTorch nn.Linear default weight init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).
torch_linear_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def accumulation_dtype(dtype: Any) -> Any:
  """The result dtype of a matmul whose operands are `dtype`: float32 for bfloat16/float16/float32,
  float64 for float64."""
  return jnp.promote_types(dtype, jnp.float32)


def matmul(spec: str, *operands: Array, dtype: Any) -> Array:
  """`jnp.einsum(spec, *operands)` with the operands cast to `dtype` (the weights' dtype) and the
  products accumulated and returned in `accumulation_dtype(dtype)`.

  With bfloat16 this is the mixed-precision matmul that XLA:CPU runs on AMX/oneDNN-class kernels and
  GPUs/TPUs on their matrix units; with float32 it is an ordinary float32 einsum.
  """
  return jnp.einsum(spec, *(x.astype(dtype) for x in operands),
                    preferred_element_type=accumulation_dtype(dtype))


def torch_bias_init(fan_in: int) -> Initializer:
  """PyTorch nn.Linear default bias init `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`."""
  bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class _DenseTorchBias(nn.Module):
  """Linear layer `[..., in] -> [..., features]` with PyTorch's default bias init."""
  features: int
  use_bias: bool
  kernel_init: Initializer

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
    y = matmul("...i,io->...o", x, kernel, dtype=kernel.dtype)
    if self.use_bias:
      y = y + self.param("bias", torch_bias_init(x.shape[-1]), (self.features,), jnp.float32)
    return y


def dense(features: int, name: str | None = None, *, xavier: bool = False, use_bias: bool = True):
  """A Linear layer with PyTorch's bias init; kernel xavier-uniform (skip stacks) or PyTorch default."""
  return _DenseTorchBias(features, use_bias, _xavier if xavier else torch_linear_kernel_init, name=name)


def gelu_exact(x: Array) -> Array:
  """Exact GELU `x/2 (1 + erf(x/sqrt 2))`, PyTorch's formula. `jax.nn.gelu(approximate=False)`
  uses `erfc`, which XLA:CPU evaluates about 2x slower; the two agree to ~1e-7 in float32."""
  return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(1.0 / math.sqrt(2.0), x.dtype)))


def layer_norm(name: str | None = None) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=LAYER_NORM_EPS, name=name)


def _flat_init(init: Initializer, fan_axes: int) -> Initializer:
  """`init` applied to the 2-D `[prod(shape[:fan_axes]), prod(shape[fan_axes:])]` view, reshaped:
  `nn.DenseGeneral`'s kernel initialisation (same values for the same key)."""

  def wrapped(key, shape, dtype=jnp.float32):
    flat = (math.prod(shape[:fan_axes]), math.prod(shape[fan_axes:]))
    return jnp.reshape(init(key, flat, dtype), shape)

  return wrapped


class _ProjectionParams(nn.Module):
  """The `kernel`/`bias` of a `nn.DenseGeneral` (same names, shapes and init), returned unapplied so
  the attention can lay out its matmuls itself. `kernel_shape` splits into `fan_axes` input axes and
  output axes; `bias` has the output axes' shape."""
  kernel_shape: tuple[int, ...]
  fan_axes: int
  kernel_init: Initializer

  @nn.compact
  def __call__(self) -> tuple[Array, Array]:
    kernel = self.param("kernel", _flat_init(self.kernel_init, self.fan_axes), self.kernel_shape,
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, self.kernel_shape[self.fan_axes:], jnp.float32)
    return kernel, bias


class MultiHeadAttention(nn.Module):
  """`torch.nn.MultiheadAttention` semantics: `[B, Tq, d]` x `[B, Tk, d]` -> `[B, Tq, d]`.

  Computed head-major (`[B, H, T, d/H]`), which XLA:CPU's batched matmuls handle far better than
  `[B, T, H, d/H]` operands. Self-attention (`memory is query`) projects q, k and v with one
  `[d, 3d]` matmul; masked keys get `finfo.min` added to their logits. With a single memory token
  (the VAE decoder's latent) the softmax over one key is exactly 1 whether or not the key is masked
  (a masked logit is finite), so the output is the memory's value projection broadcast over the
  queries and q, k and the `[B, H, Tq, 1]` logits are not computed (when attention dropout is
  active the dropped-out ones still multiply the values, as in the general path).

  Packed queries (`memory_index [B, Tq]`, inference only): `memory [M, 1, d]` holds one token per
  segment and query (b, t) attends to row `memory_index[b, t]` only; by the same argument its
  output is that row's value projection, computed once per row and gathered per query.
  `mask` is `[B, Tk]` (keys) or `[B, Tq, Tk]` (pairs), True = attend.

  Compact tokens (`rows`, a `lead_jax.models.packing` layout; self-attention only): `query` is the
  layout's compact tokens `[F, d]`; q, k and v are projected per token, attention runs in the
  layout's rows `[R, H, C, d/H]` under the pairwise `mask [R, C, C]`, and the output projection is
  per token again: `[F, d]`.
  """
  num_heads: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, query: Array, memory: Array, mask: Array | None = None,
               deterministic: bool = True, memory_index: Array | None = None,
               rows: Any = None) -> Array:
    d = query.shape[-1]
    if d % self.num_heads:
      raise InputError(f"attention width {d} is not divisible by num_heads={self.num_heads}")
    heads, head_dim = self.num_heads, d // self.num_heads
    in_proj = lambda name, width: _ProjectionParams((width, heads, head_dim), 1, _in_proj_init,
                                                    name=name)()
    (wq, bq), (wk, bk), (wv, bv) = (in_proj(n, x.shape[-1]) for n, x in
                                    (("query", query), ("key", memory), ("value", memory)))
    wo, bo = _ProjectionParams((heads, head_dim, d), 2, _out_proj_init, name="out")()
    attn_dropout = not deterministic and self.dropout > 0.0
    mm = functools.partial(matmul, dtype=wq.dtype)
    # Self-attention projects q, k and v with one [d, 3d] matmul: [..., d] -> [..., 3, H, c].
    self_qkv = lambda x: (mm("...d,de->...e", x, jnp.concatenate([wq, wk, wv], 1).reshape(d, 3 * d))
                          + jnp.concatenate([bq, bk, bv]).reshape(3 * d)).reshape(
                              x.shape[:-1] + (3, heads, head_dim))

    if rows is not None:  # compact tokens [F, d]: projections per token, attention in the rows
      if memory is not query or query.ndim != 2 or mask is None or mask.ndim != 3:
        raise InputError(f"compact attention (rows=...) is self-attention of compact tokens "
                         f"[F, d] under a pairwise mask [R, C, C]; found query "
                         f"{tuple(query.shape)}, mask "
                         f"{None if mask is None else tuple(mask.shape)}")
      q, k, v = jnp.transpose(packing_lib.to_rows(self_qkv(query), rows), (2, 0, 3, 1, 4))
      out = self._attend(q, k, v, mask, None, None, True, wq.dtype)  # [R, H, C, c]
      out = packing_lib.to_tokens(jnp.transpose(out, (0, 2, 1, 3)), rows)  # [F, H, c]
      return mm("fhc,hcd->fd", out, wo) + bo

    batch, q_len, k_len = query.shape[0], query.shape[1], memory.shape[1]
    if memory_index is not None:  # one memory token per segment: out = value(memory[row])
      if k_len != 1 or memory_index.shape != query.shape[:-1]:
        raise InputError(f"packed cross-attention needs memory [M, 1, d] and memory_index "
                         f"{list(query.shape[:-1])} (the queries' axes), found "
                         f"{tuple(memory.shape)} and {tuple(memory_index.shape)}")
      if attn_dropout:
        raise InputError("packed cross-attention (memory_index) is inference-only: "
                         "call it with deterministic=True")
      v = mm("bkd,dhc->bhkc", memory, wv) + bv[:, None]  # [M, H, 1, c]
      out = mm("bhkc,hcd->bkd", v, wo) + bo  # [M, 1, d]
      return out[memory_index, 0]  # [B, Tq, d] (compact queries: [F, d])
    if k_len == 1:  # softmax over one key is 1: out = value(memory) (broadcast over queries)
      v = mm("bkd,dhc->bhkc", memory, wv) + bv[:, None]  # [B, H, 1, c]
      if not attn_dropout:
        out = mm("bhkc,hcd->bkd", v, wo) + bo  # [B, 1, d]
        return jnp.broadcast_to(out, (batch, q_len, d))
      weights = nn.Dropout(self.dropout)(jnp.ones((batch, heads, q_len, 1), v.dtype),
                                         deterministic=False)
      return mm("bhqk,bhkc,hcd->bqd", weights, v, wo) + bo

    if memory is query:
      q, k, v = jnp.transpose(self_qkv(query), (2, 0, 3, 1, 4))  # each [B, H, T, c]
    else:
      q = mm("bqd,dhc->bhqc", query, wq) + bq[:, None]
      k = mm("bkd,dhc->bhkc", memory, wk) + bk[:, None]
      v = mm("bkd,dhc->bhkc", memory, wv) + bv[:, None]
    return self._attend(q, k, v, mask, wo, bo, deterministic, wq.dtype)

  def _attend(self, q: Array, k: Array, v: Array, mask: Array | None, wo: Array | None,
              bo: Array | None, deterministic: bool, dtype: Any) -> Array:
    """Head-major `q [B, H, Tq, c]`, `k`, `v [B, H, Tk, c]` -> `[B, Tq, d]` through the output
    projection `wo`, `bo` (or the heads' outputs `[B, H, Tq, c]` when `wo` is None); matmul
    operands in `dtype` (the weights')."""
    mm = functools.partial(matmul, dtype=dtype)
    q = q / math.sqrt(q.shape[-1])
    logits = mm("bhqc,bhkc->bhqk", q, k)
    if mask is not None:
      if mask.ndim not in (2, 3):
        raise InputError(f"attention mask must be [B, Tk] or [B, Tq, Tk], found {tuple(mask.shape)}")
      bias = jnp.where(mask, 0.0, jnp.finfo(logits.dtype).min).astype(logits.dtype)
      logits = logits + (bias[:, None, None, :] if mask.ndim == 2 else bias[:, None])
    weights = jax.nn.softmax(logits, axis=-1)
    weights = nn.Dropout(self.dropout)(weights, deterministic=deterministic)
    out = mm("bhqk,bhkc->bhqc", weights, v)
    if wo is None:
      return out
    return mm("bhqc,hcd->bqd", out, wo) + bo


def _feed_forward(x: Array, ff_size: int, dropout: float, deterministic: bool) -> Array:
  """`linear2(Drop(GELU(linear1(x))))` with exact GELU; call inside a compact method."""
  h = dense(ff_size, "linear1", xavier=True)(x)
  h = nn.Dropout(dropout)(gelu_exact(h), deterministic=deterministic)
  return dense(x.shape[-1], "linear2", xavier=True)(h)


class TransformerEncoderLayer(nn.Module):
  """Post-norm self-attention layer: `[B, T, d]`, `mask [B, T]` (True = valid) -> `[B, T, d]`."""
  num_heads: int = 4
  ff_size: int = 1024
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None, deterministic: bool = True) -> Array:
    drop = lambda y: nn.Dropout(self.dropout)(y, deterministic=deterministic)
    attn = MultiHeadAttention(self.num_heads, self.dropout, name="self_attn")(x, x, mask, deterministic)
    x = layer_norm("norm1")(x + drop(attn))
    ff = _feed_forward(x, self.ff_size, self.dropout, deterministic)
    return layer_norm("norm2")(x + drop(ff))


class TransformerDecoderLayer(nn.Module):
  """Post-norm decoder layer: self-attention (masked by `mask`), cross-attention to `memory`, FFN.

  `x [B, T, d]`, `memory [B, S, d]`, `mask [B, T]` (True = valid) or `[B, T, T]` (pairs),
  `memory_mask [B, S]` -> `[B, T, d]`. Packed (`memory_index [B, T]`): `memory [M, 1, d]`, one
  token per segment (see `MultiHeadAttention`). Compact (`rows`, a packing layout): `x` and
  `memory_index` are the layout's compact tokens `[F, d]`, `[F]`, and `mask` its `[R, C, C]`.
  """
  num_heads: int = 4
  ff_size: int = 1024
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: Array, memory: Array, mask: Array | None = None,
               memory_mask: Array | None = None, deterministic: bool = True,
               memory_index: Array | None = None, rows: Any = None,
               self_attended: Array | None = None) -> Array:
    """`self_attended`: the self-attention block's output `norm1(x + self_attn(x))`, when the
    caller has it already (inference; `MotionVAE.decode_packed`'s first layer): `x` is then not
    used."""
    drop = lambda y: nn.Dropout(self.dropout)(y, deterministic=deterministic)
    if self_attended is not None:
      x = self_attended
    else:
      attn = MultiHeadAttention(self.num_heads, self.dropout, name="self_attn")(
          x, x, mask, deterministic, rows=rows)
      x = layer_norm("norm1")(x + drop(attn))
    cross = MultiHeadAttention(self.num_heads, self.dropout, name="multihead_attn")(
        x, memory, memory_mask, deterministic, memory_index)
    x = layer_norm("norm2")(x + drop(cross))
    ff = _feed_forward(x, self.ff_size, self.dropout, deterministic)
    return layer_norm("norm3")(x + drop(ff))


def first_layer(num_layers: int) -> str:
  """Name of a skip stack's first layer: `input_blocks_0` (`middle_block` for a single layer)."""
  return "input_blocks_0" if num_layers > 1 else "middle_block"


def _check_odd(num_layers: int) -> None:
  if num_layers < 1 or num_layers % 2 == 0:
    raise InputError(f"skip transformer needs an odd num_layers >= 1, found {num_layers}")


def _skip_stack(x: Array, num_layers: int, layer: Callable[[str, Array], Array]) -> Array:
  """The skip wiring shared by the skip encoder and decoder, called inside their compact
  `__call__`: `layer(name, x)` applies the stack's layer called `name` to `x [B, T, d]`."""
  _check_odd(num_layers)
  half = (num_layers - 1) // 2
  skips = []
  for i in range(half):
    x = layer(f"input_blocks_{i}", x)
    skips.append(x)
  x = layer("middle_block", x)
  for i in range(half):
    x = dense(x.shape[-1], f"linear_blocks_{i}", xavier=True)(jnp.concatenate([x, skips.pop()], -1))
    x = layer(f"output_blocks_{i}", x)
  return layer_norm("norm")(x)


class SkipTransformerEncoder(nn.Module):
  """MLD's U-Net-like encoder: (n-1)/2 input blocks, a middle block, (n-1)/2 output blocks each fed
  `Linear(2d -> d)(concat[x, skip])` with skips popped LIFO, then a final LayerNorm.

  `[B, T, d]`, `mask [B, T]` (True = valid) -> `[B, T, d]`.
  """
  num_layers: int = 9
  num_heads: int = 4
  ff_size: int = 1024
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None, deterministic: bool = True) -> Array:
    layer = lambda name, y: TransformerEncoderLayer(
        self.num_heads, self.ff_size, self.dropout, name=name)(y, mask, deterministic)
    return _skip_stack(x, self.num_layers, layer)


class SkipTransformerDecoder(nn.Module):
  """Skip stack of `TransformerDecoderLayer`s, as `SkipTransformerEncoder` (final LayerNorm).

  `x [B, T, d]`, `memory [B, S, d]`, `mask [B, T]` or `[B, T, T]`, `memory_mask [B, S]` (True =
  valid) -> `[B, T, d]`; `memory_index [B, T]`: packed queries, `rows`: compact tokens (see
  `TransformerDecoderLayer`).
  """
  num_layers: int = 9
  num_heads: int = 4
  ff_size: int = 1024
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: Array, memory: Array, mask: Array | None = None,
               memory_mask: Array | None = None, deterministic: bool = True,
               memory_index: Array | None = None, rows: Any = None,
               first_block: Array | None = None) -> Array:
    """`first_block`: the first layer's self-attention block output, precomputed (see
    `TransformerDecoderLayer`'s `self_attended`)."""
    layer = lambda name, y: TransformerDecoderLayer(
        self.num_heads, self.ff_size, self.dropout, name=name)(
            y, memory, mask, memory_mask, deterministic, memory_index, rows,
            first_block if name == first_layer(self.num_layers) else None)
    return _skip_stack(x, self.num_layers, layer)


class TransformerEncoder(nn.Module):
  """Plain stack of post-norm encoder layers (no final norm: each layer already ends in one)."""
  num_layers: int = 9
  num_heads: int = 4
  ff_size: int = 1024
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None, deterministic: bool = True) -> Array:
    for i in range(self.num_layers):
      x = TransformerEncoderLayer(self.num_heads, self.ff_size, self.dropout, name=f"layers_{i}")(
          x, mask, deterministic)
    return x


class LearnedPositionEmbedding(nn.Module):
  """MLD `PositionEmbeddingLearned1D`: `x [B, T, d] + pe[:T]`, `pe [max_len, d] ~ U(0, 1)`; with
  `positions [B, T]` (packed sequences: each slot's position within its segment, < max_len),
  `x + pe[positions]`."""
  max_len: int = 500

  @nn.compact
  def __call__(self, x: Array, positions: Array | None = None) -> Array:
    pe = self.param("pe", nn.initializers.uniform(1.0), (self.max_len, x.shape[-1]), jnp.float32)
    if positions is not None:
      if positions.shape != x.shape[:-1]:
        raise InputError(f"positions {tuple(positions.shape)} must match x's {tuple(x.shape[:-1])}")
      return x + pe[positions]
    if x.shape[-2] > self.max_len:
      raise InputError(f"sequence of {x.shape[-2]} tokens exceeds the position embedding's "
                       f"max_len={self.max_len}")
    return x + pe[: x.shape[-2]]


def sinusoidal_positions(length: int, dim: int, max_period: float = 10000.0) -> Array:
  """Fixed transformer encoding `[length, dim]`: even channels sin, odd channels cos."""
  pos = jnp.arange(length, dtype=jnp.float32)[:, None]
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
  pe = jnp.zeros((length, dim), jnp.float32)
  pe = pe.at[:, 0::2].set(jnp.sin(pos * freqs))
  return pe.at[:, 1::2].set(jnp.cos(pos * freqs[: dim // 2]))


class SinusoidalPositionEncoding(nn.Module):
  """Adds the fixed sinusoidal encoding: `x [B, T, d]` -> `x + pe[:T]` (no parameters)."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return x + sinusoidal_positions(x.shape[-2], x.shape[-1]).astype(x.dtype)


def timestep_embedding(t: Array, dim: int, flip_sin_to_cos: bool = True, freq_shift: float = 0.0,
                       max_period: float = 10000.0) -> Array:
  """diffusers `get_timestep_embedding`: `t [B]` -> `[B, dim]` float32.

  `freqs = exp(-ln(max_period) * arange(dim//2) / (dim//2 - freq_shift))`, `[sin(t f), cos(t f)]`,
  swapped to `[cos, sin]` when `flip_sin_to_cos`; odd `dim` is zero-padded.
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - freq_shift))
  args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None]
  sin, cos = jnp.sin(args), jnp.cos(args)
  emb = jnp.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


def guidance_scale_embedding(w: Array, dim: int = 256) -> Array:
  """MotionLCM's guidance-scale embedding: `w [B]` -> `[B, dim]`, `[sin, cos]` of `1000 w`."""
  return timestep_embedding(jnp.asarray(w, jnp.float32) * 1000.0, dim, flip_sin_to_cos=False,
                            freq_shift=1.0)


class TimestepEmbedding(nn.Module):
  """diffusers `TimestepEmbedding`: `Linear(C -> out) -> SiLU -> Linear(out -> out)`.

  With `cond_proj_dim` (MotionLCM), `cond [B, cond_proj_dim]` is mapped by a zero-initialised,
  bias-free `cond_proj` Linear and added to the input first.
  """
  features: int = 256
  cond_proj_dim: int | None = None

  @nn.compact
  def __call__(self, sample: Array, cond: Array | None = None) -> Array:
    if self.cond_proj_dim is not None:
      if cond is None:
        raise InputError("this TimestepEmbedding has cond_proj: pass the guidance embedding `cond`")
      sample = sample + _DenseTorchBias(sample.shape[-1], False, nn.initializers.zeros,
                                        name="cond_proj")(cond)
    h = dense(self.features, "linear_1")(sample)
    return dense(self.features, "linear_2")(nn.silu(h))


def count_params(tree: Any) -> int:
  """Number of scalars in a pytree of arrays or `ShapeDtypeStruct`s."""
  return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
