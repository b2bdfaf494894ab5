"""Sequence packing: the host-side layout's invariants, its helpers, and the VAE's packed decode
against `MotionVAE.decode`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.errors import InputError
from lead_jax.models import MotionVAE, layers, packing
from lead_jax.models.motion_vae import first_block_table

SMALL = dict(latent_dim=32, ff_size=64, num_layers=3, num_heads=4)
INIT_KEY = jax.random.key(0, impl="unsafe_rbg")


def _check_layout(layout, lengths, capacity):
  """Every item placed once, contiguous, no overlap, within capacity; slots describe them."""
  lengths = np.asarray(lengths)
  rows, width = layout.shape
  assert width == capacity and layout.num_items == len(lengths)
  np.testing.assert_array_equal(layout.item_length, lengths)
  occupied = np.zeros((rows, capacity), int)
  for item, length in enumerate(lengths):
    row, start = layout.item_row[item], layout.item_offset[item]
    if length == 0:
      assert (row, start) == (0, 0)
      continue
    assert 0 <= row < rows and 0 <= start and start + length <= capacity
    occupied[row, start:start + length] += 1
    np.testing.assert_array_equal(layout.segment_ids[row, start:start + length], item)
    np.testing.assert_array_equal(layout.positions[row, start:start + length], np.arange(length))
  _check_compact(layout)
  assert occupied.max(initial=0) <= 1  # no overlap
  assert occupied.sum() == lengths.sum() == (layout.segment_ids >= 0).sum()
  np.testing.assert_array_equal(layout.segment_ids[occupied == 0], packing.EMPTY)
  np.testing.assert_array_equal(layout.positions[occupied == 0], 0)
  for item in range(len(lengths)):  # each item's slots are exactly the ones it owns
    assert (layout.segment_ids == item).sum() == lengths[item]


def _check_compact(layout):
  """The compact tokens are the real slots in row-major order, then slot 0 up to `compact_size`;
  `slot_tokens` inverts them (F on empty slots); to_rows / to_tokens move values between them."""
  real = np.flatnonzero(np.asarray(layout.segment_ids).reshape(-1) != packing.EMPTY)
  size = packing.compact_size(real.size)
  assert layout.num_tokens == size >= real.size
  np.testing.assert_array_equal(layout.token_slots[:real.size], real)
  np.testing.assert_array_equal(layout.token_slots[real.size:], 0)
  flat_tokens = np.asarray(layout.slot_tokens).reshape(-1)
  np.testing.assert_array_equal(flat_tokens[real], np.arange(real.size))
  assert np.all(np.delete(flat_tokens, real) == size)
  values = np.random.default_rng(0).normal(size=layout.shape + (3,)).astype(np.float32)
  tokens = np.asarray(packing.to_tokens(jnp.asarray(values), layout))
  assert tokens.shape == (size, 3)
  np.testing.assert_array_equal(tokens[:real.size], values.reshape(-1, 3)[real])
  back = np.asarray(packing.to_rows(jnp.asarray(tokens), layout))
  real_slots = np.asarray(layout.segment_ids) != packing.EMPTY
  np.testing.assert_array_equal(back[real_slots], values[real_slots])
  assert np.all(back[~real_slots] == 0)


def test_compact_size_rule_and_errors():
  # Rounded up to 4 significant bits: at most 1/8 more.
  assert [packing.compact_size(n) for n in (0, 1, 15, 16, 17, 31, 33, 335, 3944, 4097)] == [
      1, 1, 15, 16, 18, 32, 36, 352, 4096, 4608]
  for n in range(1, 5000, 7):
    assert n <= packing.compact_size(n) <= n * 9 / 8
  layout = packing.pack([5, 3], 8)
  with pytest.raises(InputError, match="compact tokens"):
    packing.to_rows(jnp.zeros((layout.num_tokens + 1, 2)), layout)
  with pytest.raises(InputError, match="do not match the rows"):
    packing.to_tokens(jnp.zeros((layout.shape[0] + 1, 8, 2)), layout)


@pytest.mark.parametrize("seed", range(6))
def test_random_layouts_keep_the_invariants(seed):
  rng = np.random.default_rng(seed)
  count = int(rng.choice([1, 2, 5, 8, 32, 64]))
  capacity = int(rng.integers(1, 200))
  lengths = rng.integers(0, capacity + 1, size=count)
  layout = packing.pack(lengths, capacity)
  _check_layout(layout, lengths, capacity)
  used_rows = len(set(layout.item_row[lengths > 0].tolist()))
  assert layout.shape[0] == packing.row_bucket(used_rows, count) >= used_rows
  again = packing.pack(lengths.copy(), capacity)  # deterministic
  for a, b in zip(jax.tree.leaves(layout), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)


def test_first_fit_decreasing_and_row_buckets():
  layout = packing.pack([5, 3, 7, 2, 0, 3], capacity=10)
  # Longest first: 7 -> row 0; 5 -> row 1; 3 (item 1) -> row 0 (7+3); 3 (item 5) -> row 1;
  # 2 -> row 1 (5+3+2); the padding item is not placed.
  np.testing.assert_array_equal(layout.item_row, [1, 0, 0, 1, 0, 1])
  np.testing.assert_array_equal(layout.item_offset, [0, 7, 0, 8, 0, 5])
  assert layout.shape == (2, 10)
  assert [packing.row_bucket(r, 32) for r in (1, 4, 5, 19, 21, 32)] == [4, 4, 8, 20, 24, 32]
  assert [packing.row_bucket(r, 8) for r in (1, 3, 8)] == [1, 3, 8]
  assert [packing.row_bucket(r, 256) for r in (0, 1, 33)] == [32, 32, 64]
  assert packing.pack([0, 0], 4).shape == (1, 4)  # nothing placed: one empty row


def test_bad_lengths_raise_input_error():
  with pytest.raises(InputError, match="item 1 has length 9"):
    packing.pack([3, 9], capacity=8)
  with pytest.raises(InputError, match="item 0 has length -1"):
    packing.pack([-1], capacity=8)
  with pytest.raises(InputError, match="integer"):
    packing.pack([1.5], capacity=8)


def test_masks_means_and_unpack():
  layout = packing.pack([3, 2, 0], capacity=6)  # one row: item 0 at 0..2, item 1 at 3..4, 1 empty
  np.testing.assert_array_equal(layout.segment_ids, [[0, 0, 0, 1, 1, -1]])
  attend = np.asarray(packing.attention_mask(layout))[0]
  assert attend[4].tolist() == [False, False, False, True, True, False]
  assert attend[5].tolist() == [False] * 5 + [True]  # empty slots attend to empty slots only
  causal = np.asarray(packing.attention_mask(layout, causal=True))[0]
  assert causal[1].tolist() == [True, True, False, False, False, False]
  assert causal[3].tolist() == [False, False, False, True, False, False]
  rows, cols = packing.last_slots(layout)
  assert np.asarray(rows).tolist() == [0, 0, 0] and np.asarray(cols).tolist() == [2, 4, 0]
  values = jnp.arange(12.0).reshape(1, 6, 2)
  np.testing.assert_allclose(packing.segment_mean(values, layout), [[2, 3], [7, 8], [0, 0]])
  out = np.asarray(packing.unpack(values, layout, 4))
  assert out.shape == (3, 4, 2)
  np.testing.assert_array_equal(out[0], [[0, 1], [2, 3], [4, 5], [0, 0]])
  np.testing.assert_array_equal(out[1], [[6, 7], [8, 9], [0, 0], [0, 0]])
  np.testing.assert_array_equal(out[2], 0)


@pytest.fixture(scope="module")
def small_vae():
  vae = MotionVAE(nfeats=12, **SMALL)
  params = vae.init(INIT_KEY, jnp.zeros((1, 4, 12)), jnp.ones((1, 4), bool))["params"]
  # Non-trivial LayerNorm scales/biases so every parameter matters.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(5), len(leaves))
  params = jax.tree.unflatten(tree, [x + 0.1 * jax.random.normal(k, x.shape)
                                     for x, k in zip(leaves, keys)])
  return vae, params


_decode = jax.jit(lambda vae, p, z, m: vae.apply({"params": p}, z, m, method=MotionVAE.decode),
                  static_argnums=0)
_decode_packed = jax.jit(lambda vae, p, z, layout, frames: vae.apply(
    {"params": p}, z, layout, frames, method=MotionVAE.decode_packed), static_argnums=(0, 4))
_decode_packed_table = jax.jit(lambda vae, p, z, layout, frames, table: vae.apply(
    {"params": p}, z, layout, frames, table, method=MotionVAE.decode_packed), static_argnums=(0, 4))


@pytest.mark.parametrize("lengths,frames", [([40, 7, 33, 1, 40, 12, 25, 0], 40),
                                            ([196, 60, 130, 40], 196)])
def test_packed_decode_equals_decode(small_vae, lengths, frames):
  vae, params = small_vae
  lengths = np.asarray(lengths)
  z = jax.random.normal(jax.random.key(1), (len(lengths), 1, 32))
  mask = jnp.asarray(np.arange(frames)[None] < lengths[:, None])
  want = np.asarray(_decode(vae, params, z, mask))
  layout = packing.pack(lengths, frames)
  assert layout.shape[0] < len(lengths)  # packed: fewer rows than motions
  got = np.asarray(_decode_packed(vae, params, z, layout, frames))
  assert got.shape == want.shape == (len(lengths), frames, 12)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  assert np.all(got[~np.asarray(mask)] == 0) and np.all(np.abs(got[np.asarray(mask)]) > 0)
  # A motion's decode does not depend on its neighbours in the row.
  alone = np.asarray(_decode_packed(vae, params, z[2:3], packing.pack(lengths[2:3], frames), frames))
  np.testing.assert_allclose(alone[0], want[2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_layers", [3, 1])
def test_first_block_table_is_the_first_self_attention_block(num_layers):
  """Entry [L - 1, t]: the first layer's norm1(q + self_attn(q)) over the L position queries;
  decode_packed reading the table equals decode_packed computing it, and the padded decode."""
  vae = MotionVAE(nfeats=12, max_len=64, **dict(SMALL, num_layers=num_layers))
  params = vae.init(INIT_KEY, jnp.zeros((1, 4, 12)), jnp.ones((1, 4), bool))["params"]
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(7), len(leaves))
  params = jax.tree.unflatten(tree, [x + 0.1 * jax.random.normal(k, x.shape)
                                     for x, k in zip(leaves, keys)])
  frames = 24
  table = np.asarray(first_block_table(vae, params, frames))
  assert table.shape == (frames, frames, 32)
  block = params["decoder"]["input_blocks_0" if num_layers > 1 else "middle_block"]
  for length in (1, 9, 24):
    q = params["query_pos_decoder"]["pe"][None, :length]
    attended = layers.MultiHeadAttention(4).apply({"params": block["self_attn"]}, q, q)
    want = layers.layer_norm().apply({"params": block["norm1"]}, q + attended)[0]
    np.testing.assert_allclose(table[length - 1, :length], want, atol=2e-6, rtol=0)
  lengths = np.asarray([24, 9, 1, 17, 0, 6])
  z = jax.random.normal(jax.random.key(1), (len(lengths), 1, 32))
  layout = packing.pack(lengths, frames)
  with_table = np.asarray(_decode_packed_table(vae, params, z, layout, frames, jnp.asarray(table)))
  computed = np.asarray(_decode_packed(vae, params, z, layout, frames))
  mask = jnp.asarray(np.arange(frames)[None] < lengths[:, None])
  np.testing.assert_allclose(with_table, computed, atol=1e-5, rtol=0)
  np.testing.assert_allclose(with_table, np.asarray(_decode(vae, params, z, mask)), atol=1e-5,
                             rtol=0)
  with pytest.raises(InputError, match="first_block must be"):
    vae.apply({"params": params}, z, layout, frames, jnp.asarray(table[:20, :20]),
              method=MotionVAE.decode_packed)
  with pytest.raises(InputError, match="frames must be in"):
    first_block_table(vae, params, 65)


def test_packed_decode_input_errors(small_vae):
  vae, params = small_vae
  layout = packing.pack([5, 3], 8)
  with pytest.raises(InputError, match="latent z must be"):
    vae.apply({"params": params}, jnp.zeros((3, 1, 32)), layout, 8, method=MotionVAE.decode_packed)
  with pytest.raises(InputError, match="frames=9"):
    vae.apply({"params": params}, jnp.zeros((2, 1, 32)), layout, 9, method=MotionVAE.decode_packed)


@pytest.mark.parametrize("seed", range(4))
def test_prefix_tree_layouts(seed):
  """Random token sequences over a small alphabet (many shared prefixes, some duplicates): every
  item's path from its last slot reads its tokens back, a slot attends to exactly its ancestors and
  itself, no row holds a prefix twice, and the rows need no more slots than flat packing."""
  rng = np.random.default_rng(seed)
  count, capacity = int(rng.choice([3, 8, 32])), int(rng.integers(8, 40))
  items = [rng.integers(1, 4, size=rng.integers(0, 8)).tolist() for _ in range(count)]
  items[-1] = list(items[0])  # a duplicate
  tree, ids = packing.pack_prefix_tree(items, capacity)
  rows, width = tree.shape
  assert width == capacity and ids.shape == (rows, capacity) and tree.num_items == count
  np.testing.assert_array_equal(tree.item_length, [len(t) for t in items])
  for item, tokens in enumerate(items):
    if not tokens:
      assert (tree.item_row[item], tree.item_last[item]) == (0, 0)
      continue
    row, slot, path, ancestors = tree.item_row[item], tree.item_last[item], [], []
    while slot >= 0:
      path.append(ids[row, slot])
      ancestors.append(slot)
      slot = tree.parents[row, slot]
    assert path[::-1] == tokens
    np.testing.assert_array_equal(tree.positions[row, ancestors], np.arange(len(tokens))[::-1])
    last = tree.item_last[item]
    assert sorted(np.flatnonzero(tree.attend[row, last]).tolist()) == sorted(ancestors)
  used = tree.segment_ids >= 0
  for row in range(rows):  # one slot per distinct prefix of the row's items
    prefixes = {tuple(t[:k]) for i, t in enumerate(items) if t and tree.item_row[i] == row
                for k in range(1, len(t) + 1)}
    assert used[row].sum() == len(prefixes)
    assert used[row, :used[row].sum()].all()  # slots fill from the left
  empty = ~used
  assert not ids[empty].any() and (tree.parents[empty] == -1).all()
  assert (tree.attend[empty].sum(-1) == 1).all()  # an empty slot attends to itself only
  flat = packing.pack([len(t) for t in items], capacity)
  assert rows <= flat.shape[0] and used.sum() <= sum(len(t) for t in items)
  rows_, cols = packing.last_slots(tree)
  np.testing.assert_array_equal(rows_, tree.item_row)
  np.testing.assert_array_equal(cols, tree.item_last)
  np.testing.assert_array_equal(packing.attention_mask(tree, causal=True), tree.attend)


def test_prefix_tree_compact_tokens():
  tree, ids = packing.pack_prefix_tree([[1, 5, 7], [1, 5, 9, 2], [1, 5, 7], [], [3]], capacity=4)
  _check_compact(tree)
  # Rows of 4: [1 5 7 3] (items 0 and 2 share 1 5 7; [3] fills the last slot) and [1 5 9 2]
  # (item 1 does not fit beside them): 8 compact tokens in row-major order.
  np.testing.assert_array_equal(ids, [[1, 5, 7, 3], [1, 5, 9, 2]])
  np.testing.assert_array_equal(np.asarray(packing.to_tokens(jnp.asarray(ids), tree)),
                                [1, 5, 7, 3, 1, 5, 9, 2])


def test_prefix_tree_rules_and_errors():
  tree, ids = packing.pack_prefix_tree([[1, 5, 7], [1, 5, 9, 2], [1, 5, 7], [], [3, 4]], 5)
  # Lexicographic order: [1,5,7] (items 0, 2), [1,5,9,2], [3,4]: the first three share "1 5"
  # (5 slots), [3, 4] needs 2 more and opens row 1.
  np.testing.assert_array_equal(ids, [[1, 5, 7, 9, 2], [3, 4, 0, 0, 0]])
  np.testing.assert_array_equal(tree.parents, [[-1, 0, 1, 1, 3], [-1, 0, -1, -1, -1]])
  np.testing.assert_array_equal(tree.item_row, [0, 0, 0, 0, 1])
  np.testing.assert_array_equal(tree.item_last, [2, 4, 2, 0, 1])
  with pytest.raises(InputError, match="item 1 has length 4"):
    packing.pack_prefix_tree([[1], [1, 2, 3, 4]], 3)
  with pytest.raises(InputError, match="causal"):
    packing.attention_mask(tree)
  with pytest.raises(InputError, match="prefix-tree"):
    packing.segment_mean(jnp.zeros((2, 5, 3)), tree)
  with pytest.raises(InputError, match="prefix-tree"):
    packing.unpack(jnp.zeros((2, 5, 3)), tree, 4)
