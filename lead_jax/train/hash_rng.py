"""`counter_hash`: a cheap JAX PRNG implementation for dropout masks only.

Dropout draws one uniform per activation: in the VAE step (batch 32 x 198 tokens, 18 layers, MLD's
attention-probability dropout included) that is ~10^8 words per step. Threefry-2x32 spends ~20
rounds of add/rotate/xor per pair of words and was measured at ~30% of the VAE step on CPU; XLA:CPU
expands `rbg`/`unsafe_rbg` (RngBitGenerator) into a similar counter cipher, which saves little.
Here each word is two rounds of MurmurHash3's 32-bit finaliser over its counter mixed with the
key:

  word[i] = fmix32(fmix32(i ^ k0) + k1),   i = the element's row-major index, key = (k0, k1)

fmix32 is a bijection of uint32 with full avalanche, so a stream is a permutation-free,
well-mixed function of (i, key); it is NOT a cryptographic or statistically certified generator:
use it for dropout masks (where it is an opt-in of `train.dropout_rng`), never for diffusion noise,
initialisation or sampling. Keys are split and folded with threefry (a few words per call), so
per-layer dropout keys derived by Flax stay independent. The counter is built with broadcasted
iotas in the output's own shape (no flat reshape), which XLA partitions like any elementwise op on
a sharded activation. At most 2^32 elements per draw.
"""

from __future__ import annotations

import math

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp

from lead_jax.errors import InputError

NAME = "counter_hash"


def fmix32(x: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finaliser (a bijection of uint32)."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x85EBCA6B)
  x = x ^ (x >> 13)
  x = x * jnp.uint32(0xC2B2AE35)
  return x ^ (x >> 16)


def _counter(shape: tuple[int, ...]) -> jax.Array:
  """uint32 row-major element index, built in `shape` itself."""
  if math.prod(shape) > 2 ** 32:
    raise InputError(f"counter_hash draws at most 2^32 elements at once, asked for shape {shape}")
  index = jnp.zeros(shape, jnp.uint32)
  for axis, size in enumerate(shape):
    index = index * jnp.uint32(size) + jax.lax.broadcasted_iota(jnp.uint32, shape, axis)
  return index


def _words(key: jax.Array, shape: tuple[int, ...], lane: int = 0) -> jax.Array:
  """One uint32 per element of `shape`; `lane` 1 gives a second, different word (for 64 bits)."""
  k0, k1 = (key[1], key[0]) if lane else (key[0], key[1])
  return fmix32(fmix32(_counter(shape) ^ k0) + k1)


def random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
  """`shape` unsigned integers of `bit_width` bits (8, 16, 32 or 64) from key `[2]` uint32."""
  shape = tuple(int(s) for s in shape)
  words = _words(key, shape)
  if bit_width == 32:
    return words
  if bit_width == 64:
    return (words.astype(jnp.uint64) << jnp.uint64(32)) | _words(key, shape, 1).astype(jnp.uint64)
  if bit_width in (8, 16):  # the high bits (the best mixed of fmix32's output)
    return (words >> jnp.uint32(32 - bit_width)).astype(jnp.dtype(f"uint{bit_width}"))
  raise InputError(f"counter_hash: bit_width must be 8, 16, 32 or 64, found {bit_width}")


def _seed(seed: jax.Array) -> jax.Array:
  seed = jnp.asarray(seed)
  return jnp.stack([jnp.uint32(0), seed.astype(jnp.uint32)])


def _split(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  count = math.prod(shape)
  words = jax_random.threefry_2x32(key, jax.lax.iota(jnp.uint32, 2 * count))
  return words.reshape(*shape, 2)


def _fold_in(key: jax.Array, data: jax.Array) -> jax.Array:
  return jax_random.threefry_2x32(key, jnp.stack([jnp.uint32(0), jnp.asarray(data, jnp.uint32)]))


COUNTER_HASH = jax_random.define_prng_impl(
    key_shape=(2,), seed=_seed, split=_split, random_bits=random_bits, fold_in=_fold_in,
    name=NAME, tag="ch")


def key_from(key: jax.Array) -> jax.Array:
  """A `counter_hash` key made from 2 words drawn with the (threefry) `key`."""
  return jax.random.wrap_key_data(jax.random.bits(key, (2,), jnp.uint32), impl=COUNTER_HASH)
