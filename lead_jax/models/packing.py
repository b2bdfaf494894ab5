"""Sequence packing: variable-length items (a prompt's tokens, a motion's frames) side by side in
rows of C slots, so a transformer computes real tokens only instead of every item padded to the
longest.

  packing = pack([12, 9, 20, 0], capacity=24)     # host side, NumPy: 4 items (one padding)
  packing.segment_ids   # [R, C] item of each slot, -1 on empty slots
  packing.positions     # [R, C] slot's position within its item (0 on empty slots)
  packing.item_row, packing.item_offset, packing.item_length    # [N] where each item lies

Inside a program, `attention_mask(packing)` keeps attention within an item (block diagonal;
`causal=True` also needs key position <= query position), position embeddings are gathered at
`positions`, and `unpack(values, packing, length)` puts the per-slot results back as
`[N, length, F]` (zero past each item's length). Padding keys get no weight, so a packed item's
outputs equal its unpacked ones up to float reassociation.

Rule (`pack`, deterministic): first-fit decreasing. Items are taken longest first (ties: lower
index first) and each goes into the first row with room; items of length 0 (batch padding) are
not placed (row 0, offset 0). The row count R is then rounded up to a multiple of
`max(1, next_pow2(N) // row_buckets)` (`row_bucket`): with N items (a power of two, as generation
pads its batches) and at most N rows, R takes at most `row_buckets` values, so a workload of
varying lengths compiles a handful of programs (N = 32, 8 buckets: R in {4, 8, ..., 32}). Empty
slots form their own segment (-1): they attend to each other only, so every slot stays finite, and
no real slot attends to them.

Compact tokens: every layout also lists its real slots in row-major order (`token_slots [F]`,
padded to `compact_size`), and `slot_tokens [R, C]` maps each slot back to its compact index.
Per-token work (projections, MLP, LayerNorm) can then run on the F compact tokens `[F, ...]`
instead of the R x C slots, with only attention in the rows: `to_rows(tokens, packing)` ->
`[R, C, ...]` (empty slots zero), `to_tokens(rows, packing)` -> `[F, ...]`. The rows' empty slots
then cost attention only.

Causal sequences can share their prefixes (`pack_prefix_tree`, a `PrefixPacking`): in a causal
model a token's state depends only on the tokens up to it, so sequences that begin with the same k
tokens (most captions start with "a person") compute those k states once. Each row holds a prefix
tree of sequences; a slot attends to its ancestors and itself (`attention_mask`), its position is
its depth, and a sequence's result is read at its last slot (`last_slots`). Identical sequences
share every slot.

  tree, ids = pack_prefix_tree([[1, 5, 7], [1, 5, 9, 2], [1, 5, 7]], capacity=8)
  # 5 slots: 1, 5, 7, 9, 2 (items 0 and 2 end at the same slot)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError

EMPTY = -1  # segment id of empty slots
ROW_BUCKETS = 8  # default: the row count is a multiple of next_pow2(N) / ROW_BUCKETS
COMPACT_BITS = 4  # compact token counts are rounded up to COMPACT_BITS significant bits


class _Rows:
  """What both layouts answer: `shape` (R, C), `num_items` N and `num_tokens` F (from
  `segment_ids`, `item_row`, `token_slots`)."""
  segment_ids: Any
  item_row: Any
  token_slots: Any

  @property
  def shape(self) -> tuple[int, int]:
    """(R, C): rows and slots per row."""
    return tuple(self.segment_ids.shape)

  @property
  def num_items(self) -> int:
    return int(self.item_row.shape[0])

  @property
  def num_tokens(self) -> int:
    """F: compact tokens (the real slots, rounded up by `compact_size`)."""
    return int(self.token_slots.shape[0])


def compact_size(count: int) -> int:
  """`count` (at least 1) rounded up to `COMPACT_BITS` significant bits: 335 -> 352, 3944 -> 4096
  (at most 1/8 more, ~4% on average; a workload of varying sizes compiles a handful of shapes)."""
  count = max(int(count), 1)
  step = 1 << max(count.bit_length() - COMPACT_BITS, 0)
  return -(-count // step) * step


def _compact(segment_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(`token_slots [F]`, `slot_tokens [R, C]`) of a layout's real slots (`segment_ids != EMPTY`),
  row-major; F = `compact_size(real)`, the extra tokens repeat slot 0, and empty slots map to F."""
  flat = np.flatnonzero(np.asarray(segment_ids).reshape(-1) != EMPTY).astype(np.int32)
  size = compact_size(flat.shape[0])
  token_slots = np.zeros(size, np.int32)
  token_slots[:flat.shape[0]] = flat
  slot_tokens = np.full(np.asarray(segment_ids).size, size, np.int32)
  slot_tokens[flat] = np.arange(flat.shape[0], dtype=np.int32)
  return token_slots, slot_tokens.reshape(np.shape(segment_ids))


@flax.struct.dataclass
class Packing(_Rows):
  """Where N items lie in R rows of C slots (NumPy on the host, arrays inside a program).

  Attributes:
    segment_ids: `[R, C]` int32 item index of each slot, `EMPTY` (-1) on empty slots.
    positions: `[R, C]` int32 position of the slot within its item, 0 on empty slots.
    item_row: `[N]` int32 row of each item (0 for items of length 0).
    item_offset: `[N]` int32 first slot of each item in its row.
    item_length: `[N]` int32 slots of each item (0: padding, not placed).
    token_slots: `[F]` int32 row-major slot index (row * C + column) of each compact token: the
      real slots in order, then slot 0 repeated up to `compact_size`.
    slot_tokens: `[R, C]` int32 compact index of each slot's token, F on empty slots.
  """
  segment_ids: Any
  positions: Any
  item_row: Any
  item_offset: Any
  item_length: Any
  token_slots: Any
  slot_tokens: Any


def row_bucket(rows: int, num_items: int, row_buckets: int = ROW_BUCKETS) -> int:
  """`rows` (at least 1) rounded up to a multiple of `max(1, next_pow2(num_items) // row_buckets)`."""
  step = max(1, (1 << max(int(num_items) - 1, 0).bit_length()) // int(row_buckets))
  return -(-max(int(rows), 1) // step) * step


def pack(lengths: Sequence[int] | np.ndarray, capacity: int,
         row_buckets: int = ROW_BUCKETS) -> Packing:
  """First-fit-decreasing packing of items of `lengths` into rows of `capacity` slots (NumPy), the
  row count rounded up by `row_bucket(rows, len(lengths), row_buckets)`.

  Raises `InputError` when a length is negative or exceeds `capacity`. See the module docstring
  for the rule and the row-count bucket.
  """
  lengths = np.asarray(lengths)
  capacity = int(capacity)
  if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
    raise InputError(f"packing: lengths must be a 1-D integer array, found {lengths.dtype} "
                     f"{lengths.shape}")
  if capacity < 1:
    raise InputError(f"packing: capacity must be >= 1, found {capacity}")
  if lengths.size and (lengths.min() < 0 or lengths.max() > capacity):
    bad = int(np.flatnonzero((lengths < 0) | (lengths > capacity))[0])
    raise InputError(f"packing: item {bad} has length {int(lengths[bad])}; lengths must be in "
                     f"[0, capacity={capacity}]")
  count = lengths.shape[0]
  item_row = np.zeros(count, np.int32)
  item_offset = np.zeros(count, np.int32)
  free = np.zeros(count, np.int64)  # free slots per opened row (at most one row per item)
  rows = 0
  for item in np.argsort(-lengths, kind="stable"):
    length = int(lengths[item])
    if length == 0:
      continue
    fits = np.flatnonzero(free[:rows] >= length)
    row = int(fits[0]) if fits.size else rows
    if row == rows:
      free[rows] = capacity
      rows += 1
    item_row[item], item_offset[item] = row, capacity - free[row]
    free[row] -= length
  total = row_bucket(rows, count, row_buckets)
  segment_ids = np.full((total, capacity), EMPTY, np.int32)
  positions = np.zeros((total, capacity), np.int32)
  for item in np.flatnonzero(lengths > 0):
    row, start, length = item_row[item], item_offset[item], int(lengths[item])
    segment_ids[row, start:start + length] = item
    positions[row, start:start + length] = np.arange(length)
  token_slots, slot_tokens = _compact(segment_ids)
  return Packing(segment_ids=segment_ids, positions=positions, item_row=item_row,
                 item_offset=item_offset, item_length=lengths.astype(np.int32),
                 token_slots=token_slots, slot_tokens=slot_tokens)


@flax.struct.dataclass
class PrefixPacking(_Rows):
  """N causal sequences packed as prefix trees in R rows of C slots (`pack_prefix_tree`).

  Attributes:
    segment_ids: `[R, C]` int32 the first item through each slot, `EMPTY` (-1) on empty slots.
    positions: `[R, C]` int32 depth of each slot (its position in every item through it).
    parents: `[R, C]` int32 slot of the parent token in the same row (-1: first token, or empty).
    attend: `[R, C, C]` bool: query slot i may attend to key slot j (j is i or an ancestor of i;
      an empty slot attends to itself only).
    item_row: `[N]` int32 row of each item (0 for items of length 0).
    item_last: `[N]` int32 slot of each item's last token (0 for items of length 0).
    item_length: `[N]` int32 tokens of each item (0: padding, not placed).
    token_slots, slot_tokens: the compact tokens, as `Packing`'s.
  """
  segment_ids: Any
  positions: Any
  parents: Any
  attend: Any
  item_row: Any
  item_last: Any
  item_length: Any
  token_slots: Any
  slot_tokens: Any


def _shared_prefix(trie: dict[tuple[int, ...], int], sequence: tuple[int, ...]) -> int:
  """Length of the longest prefix of `sequence` that is a node of `trie`."""
  shared = 0
  while shared < len(sequence) and sequence[:shared + 1] in trie:
    shared += 1
  return shared


def pack_prefix_tree(sequences: Sequence[Sequence[int]], capacity: int,
                     row_buckets: int = ROW_BUCKETS) -> tuple[PrefixPacking, np.ndarray]:
  """Causal sequences of token ids packed as prefix trees in rows of `capacity` slots (NumPy):
  -> (`PrefixPacking`, ids `[R, C]` int32, 0 on empty slots).

  Rule (deterministic): items are taken in lexicographic order of their tokens (ties: lower index
  first), so items sharing a prefix come together; each goes into the first row whose tree can
  take its tokens beyond the longest prefix already there (first fit), and its new tokens are
  appended as a branch. Empty sequences (batch padding) are not placed. The row count is rounded
  up as `pack`'s (`row_bucket`). Raises `InputError` when a sequence exceeds `capacity`.
  """
  capacity = int(capacity)
  if capacity < 1:
    raise InputError(f"packing: capacity must be >= 1, found {capacity}")
  items = [tuple(int(t) for t in np.asarray(s).reshape(-1)) for s in sequences]
  for item, tokens in enumerate(items):
    if len(tokens) > capacity:
      raise InputError(f"packing: item {item} has length {len(tokens)}; lengths must be in "
                       f"[0, capacity={capacity}]")
  count = len(items)
  item_row = np.zeros(count, np.int32)
  item_last = np.zeros(count, np.int32)
  tries: list[dict[tuple[int, ...], int]] = []   # per row: prefix -> slot
  rows: list[list[tuple[int, int, int, int]]] = []  # per row: (token, depth, parent, item) per slot
  for item in sorted(range(count), key=lambda i: (items[i], i)):
    tokens = items[item]
    if not tokens:
      continue
    for row, trie in enumerate(tries):
      shared = _shared_prefix(trie, tokens)
      if len(rows[row]) + len(tokens) - shared <= capacity:
        break
    else:
      row, shared = len(tries), 0
      tries.append({})
      rows.append([])
    trie, slots = tries[row], rows[row]
    for depth in range(shared, len(tokens)):
      parent = trie[tokens[:depth]] if depth else -1
      trie[tokens[:depth + 1]] = len(slots)
      slots.append((tokens[depth], depth, parent, item))
    item_row[item], item_last[item] = row, trie[tokens]
  total = row_bucket(len(rows), count, row_buckets)
  ids = np.zeros((total, capacity), np.int32)
  segment_ids = np.full((total, capacity), EMPTY, np.int32)
  positions = np.zeros((total, capacity), np.int32)
  parents = np.full((total, capacity), -1, np.int32)
  attend = np.zeros((total, capacity, capacity), bool)
  attend[:, np.arange(capacity), np.arange(capacity)] = True  # itself (empty slots: only that)
  for row, slots in enumerate(rows):
    for slot, (token, depth, parent, item) in enumerate(slots):
      ids[row, slot], positions[row, slot], parents[row, slot] = token, depth, parent
      segment_ids[row, slot] = item
      if parent >= 0:  # ancestors of the parent, then the parent
        attend[row, slot] |= attend[row, parent]
  lengths = np.asarray([len(t) for t in items], np.int32)
  token_slots, slot_tokens = _compact(segment_ids)
  return PrefixPacking(segment_ids=segment_ids, positions=positions, parents=parents,
                       attend=attend, item_row=item_row, item_last=item_last,
                       item_length=lengths, token_slots=token_slots,
                       slot_tokens=slot_tokens), ids


def attention_mask(packing: Packing | PrefixPacking, causal: bool = False) -> jax.Array:
  """`[R, C, C]` bool: query slot i may attend to key slot j (same segment; with `causal`, also
  key position <= query position). A `PrefixPacking` (causal by construction): j is i or one of
  its ancestors."""
  if isinstance(packing, PrefixPacking):
    if not causal:
      raise InputError("a prefix-tree packing holds causal sequences only (attention_mask needs "
                       "causal=True)")
    return jnp.asarray(packing.attend)
  segments = jnp.asarray(packing.segment_ids)
  allowed = segments[:, :, None] == segments[:, None, :]
  if causal:
    positions = jnp.asarray(packing.positions)
    allowed &= positions[:, None, :] <= positions[:, :, None]
  return allowed


def last_slots(packing: Packing | PrefixPacking) -> tuple[jax.Array, jax.Array]:
  """(`[N]` rows, `[N]` columns) of each item's last slot (its first slot for items of length 0)."""
  if isinstance(packing, PrefixPacking):
    return jnp.asarray(packing.item_row), jnp.asarray(packing.item_last)
  length = jnp.asarray(packing.item_length)
  return (jnp.asarray(packing.item_row),
          jnp.asarray(packing.item_offset) + jnp.maximum(length, 1) - 1)


def to_tokens(values: jax.Array, packing: Packing | PrefixPacking) -> jax.Array:
  """`[R, C, ...]` per-slot values -> `[F, ...]` per compact token (`token_slots`)."""
  rows, capacity = packing.shape
  if tuple(values.shape[:2]) != (rows, capacity):
    raise InputError(f"to_tokens: values {tuple(values.shape)} do not match the rows [{rows}, "
                     f"{capacity}]")
  return values.reshape((rows * capacity,) + values.shape[2:])[jnp.asarray(packing.token_slots)]


def to_rows(values: jax.Array, packing: Packing | PrefixPacking) -> jax.Array:
  """`[F, ...]` per compact token -> `[R, C, ...]` per slot (`slot_tokens`; empty slots zero)."""
  if values.shape[0] != packing.num_tokens:
    raise InputError(f"to_rows: values {tuple(values.shape)} do not match the packing's "
                     f"{packing.num_tokens} compact tokens")
  padded = jnp.concatenate([values, jnp.zeros((1,) + values.shape[1:], values.dtype)])
  return padded[jnp.asarray(packing.slot_tokens)]


def segment_mean(values: jax.Array, packing: Packing) -> jax.Array:
  """`[R, C, F]` per-slot values -> `[N, F]` mean over each item's slots (0 for empty items)."""
  if isinstance(packing, PrefixPacking):
    raise InputError("segment_mean needs each item's own slots; a prefix-tree packing shares them")
  rows, capacity, width = values.shape
  count = packing.num_items
  segments = jnp.asarray(packing.segment_ids).reshape(-1)
  segments = jnp.where(segments == EMPTY, count, segments)  # empty slots: a dropped extra bucket
  sums = jax.ops.segment_sum(values.reshape(rows * capacity, width), segments, count + 1)[:count]
  size = jnp.asarray(packing.item_length).astype(values.dtype)[:, None]
  return sums / jnp.maximum(size, 1e-9)


def unpack(values: jax.Array, packing: Packing, length: int) -> jax.Array:
  """`[R, C, F]` per-slot values -> `[N, length, F]`: item n's slots in order, zero from its
  length on (`length` <= C)."""
  if isinstance(packing, PrefixPacking):
    raise InputError("unpack needs each item's own slots; a prefix-tree packing shares them")
  capacity = values.shape[1]
  if length > capacity:
    raise InputError(f"unpack: length {length} exceeds the rows' {capacity} slots")
  steps = jnp.arange(length)
  columns = jnp.minimum(jnp.asarray(packing.item_offset)[:, None] + steps, capacity - 1)
  gathered = values[jnp.asarray(packing.item_row)[:, None], columns]
  valid = steps[None, :] < jnp.asarray(packing.item_length)[:, None]
  return jnp.where(valid[..., None], gathered, 0.0)
