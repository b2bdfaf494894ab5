"""Packed prompts (`TextEncoder.pack_tokens` / `encode_packed`) against the unpacked encoder, for
CLIP (causal, pooled at the first end token) and MiniLM (bidirectional, masked mean)."""

import jax
import numpy as np
import pytest

from lead_jax.errors import InputError
from lead_jax.text import load_text_encoder
from lead_jax.text.base import PackedTokens, TokenBatch

PROMPTS = ["a person walks forward", "the man <dance-x>", "", "someone walks", "the man dances",
           "xyz walks! 42 " * 4, "a man <dance-x> forward"]


def _unpacked(encoder, prompts, extra):
  batch = encoder.tokenize(prompts, extra)
  emb = encoder.embed_tokens(encoder.params, batch.ids, extra.embeddings)
  return batch, np.asarray(jax.jit(encoder.encode_embeddings)(encoder.params, emb, batch)[0])


def _packed(encoder, batch, extra, capacity, num_prompts=None):
  packed = encoder.pack_tokens(batch, capacity, num_prompts)
  assert isinstance(packed, PackedTokens)
  fn = jax.jit(lambda p, rows, tokens: encoder.encode_packed(
      p, encoder.embed_tokens(p, tokens.ids, rows), tokens))
  return packed, np.asarray(fn(encoder.params, extra.embeddings, packed))


def _with_placeholder(encoder):
  extra = encoder.new_tokens(["<dance-x>"], initializer="dances")
  vector = np.random.default_rng(0).normal(size=encoder.token_dim).astype(np.float32)
  return extra.replace("<dance-x>", vector)  # a learnt-looking row, unlike any word


@pytest.mark.parametrize("kind", ["clip", "minilm"])
def test_packed_pooled_equals_unpacked(kind, tiny_clip, tiny_bert):
  directory = (tiny_clip if kind == "clip" else tiny_bert)[0]
  encoder = load_text_encoder(kind, directory, **({} if kind == "clip" else {"max_length": 16}))
  extra = _with_placeholder(encoder)
  batch, want = _unpacked(encoder, PROMPTS, extra)
  assert (batch.ids == encoder.vocab_size).sum() == 2  # the placeholder is in two prompts
  lengths = encoder.token_lengths(batch)
  if kind == "clip":  # up to the first end token; the long prompt is truncated to 16
    np.testing.assert_array_equal(lengths, batch.eos_index + 1)
  else:
    np.testing.assert_array_equal(lengths, batch.attention_mask.sum(1))
  assert lengths.max() == 16 and lengths.min() <= 3
  for capacity in (16, 32):
    packed, got = _packed(encoder, batch, extra, capacity, num_prompts=8)
    rows, width = packed.shape
    assert width == capacity and rows < len(PROMPTS) and got.shape == (8, encoder.embed_dim)
    assert (packed.packing.segment_ids >= 0).sum() == lengths.sum()  # real tokens only
    np.testing.assert_allclose(got[:len(PROMPTS)], want, atol=1e-5, rtol=0)
    assert np.isfinite(got).all()  # the padding prompt (no tokens) included
  # The placeholder row matters: another row changes exactly the prompts that use it.
  other = extra.replace("<dance-x>", np.zeros(encoder.token_dim, np.float32))
  _, moved = _packed(encoder, batch, other, 16)
  changed = np.abs(moved - want).max(axis=1) > 1e-4
  assert changed.tolist() == ["<dance-x>" in p for p in PROMPTS]


def test_pack_tokens_checks(tiny_clip):
  encoder = load_text_encoder("clip", tiny_clip[0])
  batch = encoder.tokenize(["a person walks forward", "the man"])
  packed = encoder.pack_tokens(batch, 8)
  slots = packed.packing.segment_ids >= 0
  np.testing.assert_array_equal(packed.ids[~slots], 0)
  for item, length in enumerate(encoder.token_lengths(batch)):  # ids copied from the batch
    row, start = packed.packing.item_row[item], packed.packing.item_offset[item]
    np.testing.assert_array_equal(packed.ids[row, start:start + length], batch.ids[item, :length])
  with pytest.raises(InputError, match="lengths must be in"):
    encoder.pack_tokens(batch, 4)
  with pytest.raises(InputError, match="num_prompts=1"):
    encoder.pack_tokens(batch, 8, num_prompts=1)
  emb = encoder.embed_tokens(encoder.params, packed.ids)
  with pytest.raises(InputError, match="packed CLIP token embeddings"):
    encoder.encode_packed(encoder.params, emb[:, :4], packed)


def test_token_lengths_need_right_padding_and_clip_context(tiny_clip, tiny_bert):
  encoder = load_text_encoder("minilm", tiny_bert[0], max_length=16)
  batch = encoder.tokenize(["a person walks", "the man"])
  np.testing.assert_array_equal(encoder.token_lengths(batch), [5, 4])  # [CLS] ... [SEP]
  left_padded = TokenBatch(ids=batch.ids[:, ::-1], attention_mask=batch.attention_mask[:, ::-1],
                           eos_index=batch.eos_index)
  with pytest.raises(InputError, match="not real tokens followed by padding"):
    encoder.pack_tokens(left_padded, 16)
  # Packed positions count within a prompt, so a CLIP context longer than its position table
  # is refused when loading.
  with pytest.raises(InputError, match="max_length 17 exceeds max_position_embeddings 16"):
    load_text_encoder("clip", tiny_clip[0], max_length=17)
