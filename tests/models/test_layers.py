"""Building blocks: embeddings against their formulas, attention against torch, init statistics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.errors import InputError
from lead_jax.models import layers, packing


def test_timestep_embedding_matches_formula_cos_first():
  t = np.array([0, 1, 981, 999])
  dim = 768
  half = dim // 2
  freqs = np.exp(-math.log(10000) * np.arange(half) / half)
  args = t[:, None] * freqs[None]
  expected = np.concatenate([np.cos(args), np.sin(args)], -1)
  got = np.asarray(layers.timestep_embedding(jnp.asarray(t), dim))
  np.testing.assert_allclose(got, expected, atol=2e-4)
  assert got.shape == (4, 768)
  np.testing.assert_allclose(got[0, :half], 1.0)  # cos(0) first
  np.testing.assert_allclose(got[0, half:], 0.0)


def test_guidance_scale_embedding_matches_motionlcm_formula():
  w = np.array([5.0, 7.5])
  half = 128
  freqs = np.exp(-math.log(10000) * np.arange(half) / (half - 1))
  args = (w * 1000)[:, None] * freqs[None]
  expected = np.concatenate([np.sin(args), np.cos(args)], -1)
  np.testing.assert_allclose(np.asarray(layers.guidance_scale_embedding(jnp.asarray(w), 256)),
                             expected, atol=2e-3)


def test_sinusoidal_positions_even_sin_odd_cos():
  pe = np.asarray(layers.sinusoidal_positions(5, 8))
  pos = np.arange(5)[:, None]
  div = np.exp(-math.log(10000) * np.arange(0, 8, 2) / 8)
  np.testing.assert_allclose(pe[:, 0::2], np.sin(pos * div), atol=1e-6)
  np.testing.assert_allclose(pe[:, 1::2], np.cos(pos * div), atol=1e-6)


def test_learned_position_embedding_adds_rows_and_rejects_long_input():
  mod = layers.LearnedPositionEmbedding(max_len=6)
  x = jnp.ones((2, 4, 3))
  params = mod.init(jax.random.key(0), x)["params"]
  pe = np.asarray(params["pe"])
  assert pe.shape == (6, 3) and pe.min() >= 0 and pe.max() <= 1
  np.testing.assert_allclose(np.asarray(mod.apply({"params": params}, x)), np.broadcast_to(1 + pe[None, :4], (2, 4, 3)), atol=1e-6)
  with pytest.raises(InputError, match="max_len=6"):
    mod.apply({"params": params}, jnp.ones((1, 7, 3)))


def test_attention_matches_torch_multihead_attention_with_padding_mask():
  torch = pytest.importorskip("torch")
  d, heads, b, tq = 16, 4, 2, 5
  rng = np.random.default_rng(0)
  mha = torch.nn.MultiheadAttention(d, heads).eval()
  with torch.no_grad():
    for p in mha.parameters():
      p.copy_(torch.from_numpy(rng.normal(0, 0.3, p.shape).astype(np.float32)))
  x = rng.normal(size=(b, tq, d)).astype(np.float32)
  valid = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
  with torch.no_grad():
    xt = torch.from_numpy(x).permute(1, 0, 2)
    ref = mha(xt, xt, xt, key_padding_mask=torch.from_numpy(~valid))[0].permute(1, 0, 2).numpy()
  from lead_jax.convert.mld_ckpt import _convert_key
  from lead_jax.convert.torch_files import unflatten_tree
  flat = {}
  for k, v in mha.state_dict().items():
    flat.update(_convert_key("self_attn." + k, v.numpy(), heads))
  params = unflatten_tree(flat)["self_attn"]
  got = layers.MultiHeadAttention(heads).apply({"params": params}, jnp.asarray(x), jnp.asarray(x),
                                                jnp.asarray(valid))
  np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5)


def test_compact_self_attention_equals_each_sequence_alone():
  """Compact tokens [F, d] of packed sequences (`rows=`): each sequence's outputs equal its
  self-attention computed alone; the padding tokens of the compact count stay finite."""
  d, heads = 16, 4
  lengths = [7, 3, 5, 0, 6]
  layout = packing.pack(lengths, capacity=9)
  mha = layers.MultiHeadAttention(heads)
  params = mha.init(jax.random.key(0), jnp.zeros((1, 3, d)), jnp.zeros((1, 3, d)))["params"]
  tokens = jax.random.normal(jax.random.key(1), (layout.num_tokens, d))
  got = np.asarray(mha.apply({"params": params}, tokens, tokens, packing.attention_mask(layout),
                             rows=layout))
  assert got.shape == (layout.num_tokens, d) and np.isfinite(got).all()
  slots = np.asarray(layout.slot_tokens)
  for item, length in enumerate(lengths):
    if not length:
      continue
    row, start = layout.item_row[item], layout.item_offset[item]
    index = slots[row, start:start + length]
    alone = mha.apply({"params": params}, tokens[index][None], tokens[index][None])[0]
    np.testing.assert_allclose(got[index], np.asarray(alone), atol=1e-5, rtol=0)
  with pytest.raises(InputError, match="compact attention"):
    mha.apply({"params": params}, tokens, tokens, None, rows=layout)


def test_attention_init_matches_pytorch_xavier_bounds():
  d = 64
  params = layers.MultiHeadAttention(4).init(jax.random.key(1), jnp.zeros((1, 2, d)), jnp.zeros((1, 2, d)))
  q = np.asarray(params["params"]["query"]["kernel"])
  out = np.asarray(params["params"]["out"]["kernel"])
  packed_bound = math.sqrt(6 / (d + 3 * d))  # xavier on the packed (3d, d) in_proj_weight
  assert q.shape == (d, 4, 16) and np.abs(q).max() <= packed_bound
  assert np.abs(q).max() > 0.9 * packed_bound
  assert np.abs(out).max() <= math.sqrt(6 / (2 * d)) and np.abs(out).max() > 0.9 * math.sqrt(6 / (2 * d))
  np.testing.assert_array_equal(np.asarray(params["params"]["query"]["bias"]), 0)
  np.testing.assert_array_equal(np.asarray(params["params"]["out"]["bias"]), 0)


def test_skip_encoder_structure_and_odd_layers():
  enc = layers.SkipTransformerEncoder(num_layers=5, num_heads=2, ff_size=8, dropout=0.1)
  x = jax.random.normal(jax.random.key(0), (2, 3, 8))
  params = enc.init(jax.random.key(1, impl="unsafe_rbg"), x)["params"]
  assert sorted(params) == sorted(["input_blocks_0", "input_blocks_1", "middle_block", "output_blocks_0",
                                   "output_blocks_1", "linear_blocks_0", "linear_blocks_1", "norm"])
  assert params["linear_blocks_0"]["kernel"].shape == (16, 8)
  apply = jax.jit(lambda p, x, det, key: enc.apply({"params": p}, x, deterministic=det, rngs={"dropout": key}),
                  static_argnums=2)
  y = apply(params, x, True, jax.random.key(2))
  np.testing.assert_allclose(np.asarray(y.mean(-1)), 0, atol=1e-5)  # final LayerNorm
  y_train = apply(params, x, False, jax.random.key(2))
  assert not np.allclose(np.asarray(y), np.asarray(y_train))
  with pytest.raises(InputError, match="odd"):
    layers.SkipTransformerEncoder(num_layers=4).init(jax.random.key(1), x)


def test_dense_bias_init_is_pytorch_default():
  p = layers.dense(8).init(jax.random.key(0), jnp.zeros((1, 100)))["params"]
  assert np.abs(np.asarray(p["bias"])).max() <= 0.1 and np.abs(np.asarray(p["kernel"])).max() <= 0.1
  assert np.abs(np.asarray(p["kernel"])).max() > 0.09
