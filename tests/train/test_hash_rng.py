"""The `counter_hash` PRNG of the dropout masks: the formula, its shapes, its statistics."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.errors import InputError
from lead_jax.train import hash_rng
from lead_jax.train.step import dropout_rngs

M32 = 0xFFFFFFFF


def fmix32_reference(x: int) -> int:
  """MurmurHash3's fmix32 in plain Python integers."""
  x ^= x >> 16
  x = (x * 0x85EBCA6B) & M32
  x ^= x >> 13
  x = (x * 0xC2B2AE35) & M32
  return x ^ (x >> 16)


def test_fmix32_matches_murmur3():
  xs = [0, 1, 2, 0xDEADBEEF, M32, 123456789]
  got = np.asarray(hash_rng.fmix32(jnp.asarray(xs, jnp.uint32)))
  assert got.tolist() == [fmix32_reference(x) for x in xs]
  assert fmix32_reference(1) == 0x514E28B7  # MurmurHash3's published finaliser of 1


def test_words_follow_the_formula_in_row_major_order():
  key = jax.random.wrap_key_data(jnp.asarray([7, 11], jnp.uint32), impl=hash_rng.COUNTER_HASH)
  bits = np.asarray(jax.random.bits(key, (3, 5), jnp.uint32))
  want = [fmix32_reference((fmix32_reference(i ^ 7) + 11) & M32) for i in range(15)]
  assert bits.reshape(-1).tolist() == want
  np.testing.assert_array_equal(np.asarray(jax.random.bits(key, (15,), jnp.uint32)), bits.reshape(-1))


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.uint16, jnp.uint32])
def test_bits_dtypes_and_balance(dtype):
  key = hash_rng.key_from(jax.random.key(0))
  bits = np.asarray(jax.random.bits(key, (64, 4096), dtype)).astype(np.uint64)
  assert bits.shape == (64, 4096)
  width = np.dtype(dtype).itemsize * 8
  ones = np.stack([(bits >> b) & 1 for b in range(width)]).reshape(width, -1).mean(axis=1)
  assert np.abs(ones - 0.5).max() < 0.004  # 262,144 draws: 4 sigma ~ 0.004


def test_uniform_keep_rate_and_independence_of_keys():
  k1, k2 = (hash_rng.key_from(k) for k in jax.random.split(jax.random.key(3)))
  a = np.asarray(jax.random.bernoulli(k1, 0.9, (1_000_000,)))
  b = np.asarray(jax.random.bernoulli(k2, 0.9, (1_000_000,)))
  assert abs(a.mean() - 0.9) < 4 * np.sqrt(0.09 / 1e6)
  # independent masks: P(both kept) = 0.81 within 4 sigma
  assert abs((a & b).mean() - 0.81) < 4 * np.sqrt(0.81 * 0.19 / 1e6)
  u = np.asarray(jax.random.uniform(k1, (200_000,)))
  hist = np.histogram(u, bins=20, range=(0, 1))[0]
  chi2 = ((hist - 10_000) ** 2 / 10_000).sum()
  assert chi2 < 43.8  # chi-square, 19 dof, p = 0.001


def test_fold_in_and_split_give_new_streams():
  key = hash_rng.key_from(jax.random.key(1))
  a = np.asarray(jax.random.bits(jax.random.fold_in(key, 1), (1000,)))
  b = np.asarray(jax.random.bits(jax.random.fold_in(key, 2), (1000,)))
  c = np.asarray(jax.random.bits(jax.random.split(key)[0], (1000,)))
  again = np.asarray(jax.random.bits(jax.random.fold_in(key, 1), (1000,)))
  np.testing.assert_array_equal(a, again)
  assert (a == b).mean() < 0.01 and (a == c).mean() < 0.01


def test_flax_dropout_with_counter_hash_masks():
  x = jnp.ones((8, 198, 256))
  rngs = dropout_rngs(jax.random.key(4), hash_rng.NAME)
  y = nn.Dropout(0.1).apply({}, x, deterministic=False, rngs=rngs)
  kept = np.asarray(y != 0)
  assert abs(kept.mean() - 0.9) < 4 * np.sqrt(0.09 / kept.size)
  np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.9, rtol=1e-6)
  again = nn.Dropout(0.1).apply({}, x, deterministic=False,
                                rngs=dropout_rngs(jax.random.key(4), hash_rng.NAME))
  np.testing.assert_array_equal(np.asarray(again), np.asarray(y))
  other = nn.Dropout(0.1).apply({}, x, deterministic=False,
                                rngs=dropout_rngs(jax.random.key(5), hash_rng.NAME))
  assert (np.asarray(other != 0) == kept).mean() < 0.85  # 0.82 expected for independent masks


def test_bad_bit_width_is_an_input_error():
  key = jnp.asarray([1, 2], jnp.uint32)
  with pytest.raises(InputError, match="bit_width"):
    hash_rng.random_bits(key, 12, (4,))
