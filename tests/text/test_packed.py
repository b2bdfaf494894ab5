"""Packed prompts (`TextEncoder.pack_tokens` / `encode_packed`) against the unpacked encoder, for
CLIP (causal, pooled at the first end token) and MiniLM (bidirectional, masked mean)."""

import jax
import numpy as np
import pytest

from lead_jax.errors import ConfigError, InputError
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
  fn = jax.jit(encoder.encode_packed_ids)
  return packed, np.asarray(fn(encoder.params, packed, extra.embeddings))


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
    sequences = [tuple(batch.ids[i, :n]) for i, n in enumerate(lengths)]
    if kind == "clip":  # causal: one slot per distinct prefix in a row ("the man" once)
      rows_of = packed.packing.item_row
      want_slots = len({(rows_of[i], seq[:k]) for i, seq in enumerate(sequences)
                        for k in range(1, len(seq) + 1)})
      assert want_slots < lengths.sum()
    else:  # bidirectional: every prompt's own tokens
      want_slots = lengths.sum()
    assert (packed.packing.segment_ids >= 0).sum() == want_slots  # real tokens only
    np.testing.assert_allclose(got[:len(PROMPTS)], want, atol=1e-5, rtol=0)
    assert np.isfinite(got).all()  # the padding prompt (no tokens) included
  # The placeholder row matters: another row changes exactly the prompts that use it.
  other = extra.replace("<dance-x>", np.zeros(encoder.token_dim, np.float32))
  _, moved = _packed(encoder, batch, other, 16)
  changed = np.abs(moved - want).max(axis=1) > 1e-4
  assert changed.tolist() == ["<dance-x>" in p for p in PROMPTS]


def test_pack_tokens_checks(tiny_clip, tiny_bert):
  bert = load_text_encoder("minilm", tiny_bert[0], max_length=16)
  batch = bert.tokenize(["a person walks forward", "the man"])
  packed = bert.pack_tokens(batch, 8)
  slots = packed.packing.segment_ids >= 0
  np.testing.assert_array_equal(packed.ids[~slots], 0)
  for item, length in enumerate(bert.token_lengths(batch)):  # ids copied from the batch
    row, start = packed.packing.item_row[item], packed.packing.item_offset[item]
    np.testing.assert_array_equal(packed.ids[row, start:start + length], batch.ids[item, :length])
  encoder = load_text_encoder("clip", tiny_clip[0])
  batch = encoder.tokenize(["a person walks forward", "the man"])
  with pytest.raises(InputError, match="lengths must be in"):
    encoder.pack_tokens(batch, 4)
  with pytest.raises(InputError, match="num_prompts=1"):
    encoder.pack_tokens(batch, 8, num_prompts=1)
  packed = encoder.pack_tokens(batch, 8)
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


def test_clip_prompts_share_prefixes(tiny_clip):
  """CLIP packs prompts as prefix trees: each prompt's path from its last slot up to the root reads
  its tokens back, common beginnings and identical prompts take no extra slot, and the pooled
  features equal the unpacked encoder's."""
  encoder = load_text_encoder("clip", tiny_clip[0])
  prompts = ["a person walks forward", "a person walks back", "a person runs", "the man",
             "a person walks forward", "someone waves", "a person"]
  extra = encoder.no_extra_tokens()
  batch, want = _unpacked(encoder, prompts, extra)
  lengths = encoder.token_lengths(batch)
  packed, got = _packed(encoder, batch, extra, 32, num_prompts=8)
  tree = packed.packing
  for item, length in enumerate(lengths):
    row, slot, path = tree.item_row[item], tree.item_last[item], []
    while slot >= 0:
      path.append(packed.ids[row, slot])
      assert tree.positions[row, slot] == length - len(path)
      slot = tree.parents[row, slot]
    np.testing.assert_array_equal(path[::-1], batch.ids[item, :length])
  assert tree.item_last[0] == tree.item_last[4] and tree.item_row[0] == tree.item_row[4]
  distinct = {tuple(batch.ids[i, :k]) for i, n in enumerate(lengths) for k in range(1, n + 1)}
  assert tree.shape == (1, 32)  # all in one row: one slot per distinct prefix
  assert (tree.segment_ids >= 0).sum() == len(distinct) < lengths.sum()
  np.testing.assert_allclose(got[:len(prompts)], want, atol=1e-5, rtol=0)
  np.testing.assert_array_equal(got[0], got[4])


@pytest.mark.parametrize("kind", ["clip", "minilm"])
def test_encode_packs_in_token_order(kind, tiny_clip, tiny_bert, monkeypatch):
  """`encode` packs by default: prompts in token order, `batch_size` per call, each call's real
  tokens only; the features are the padded path's, in the caller's order."""
  directory = (tiny_clip if kind == "clip" else tiny_bert)[0]
  encoder = load_text_encoder(kind, directory, **({} if kind == "clip" else {"max_length": 16}))
  extra = _with_placeholder(encoder)
  prompts = PROMPTS + ["a person walks back", "someone walks", "a person runs"]  # 10, one repeat
  want = encoder.encode(prompts, extra, packed=False)
  _, unpacked = _unpacked(encoder, prompts, extra)
  np.testing.assert_allclose(want, unpacked, atol=1e-5, rtol=0)
  calls = []
  forward = encoder._jit_packed_forward
  monkeypatch.setattr(encoder, "_jit_packed_forward",
                      lambda p, tokens, rows: calls.append(tokens) or forward(p, tokens, rows))
  got = encoder.encode(prompts, extra, batch_size=4)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  np.testing.assert_allclose(got[3], got[8], atol=1e-6, rtol=0)  # the repeated prompt
  assert len(calls) == 3  # 4 + 4 + 2 prompts (and 2 padding prompts of no tokens)
  batch = encoder.tokenize(prompts, extra)
  lengths = encoder.token_lengths(batch)
  order = sorted(range(len(prompts)), key=lambda i: (batch.ids[i, :lengths[i]].tolist(), i))
  for k, tokens in enumerate(calls):
    taken = order[4 * k:4 * k + 4]
    assert tokens.packing.num_items == 4
    np.testing.assert_array_equal(tokens.packing.item_length[:len(taken)], lengths[taken])
    np.testing.assert_array_equal(tokens.packing.item_length[len(taken):], 0)
    assert (tokens.packing.segment_ids >= 0).sum() <= lengths[taken].sum()  # real tokens only
  # Permuting the prompts permutes the features.
  perm = np.random.default_rng(1).permutation(len(prompts))
  np.testing.assert_allclose(encoder.encode([prompts[i] for i in perm], extra, batch_size=4),
                             got[perm], atol=1e-6, rtol=0)


def test_encode_padded_when_padding_matters(tiny_bert, monkeypatch):
  encoder = load_text_encoder("minilm", tiny_bert[0], max_length=16)
  want = encoder.encode(["a person walks", "the man"], packed=False)
  monkeypatch.setattr(encoder, "trim_padding", False)
  monkeypatch.setattr(encoder, "_jit_packed_forward", None)  # never called
  np.testing.assert_allclose(encoder.encode(["a person walks", "the man"]), want, atol=1e-6)
  with pytest.raises(ConfigError, match="cannot be packed"):
    encoder.encode(["a person walks"], packed=True)
