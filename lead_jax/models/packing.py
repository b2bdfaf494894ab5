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


@flax.struct.dataclass
class Packing:
  """Where N items lie in R rows of C slots (NumPy on the host, arrays inside a program).

  Attributes:
    segment_ids: `[R, C]` int32 item index of each slot, `EMPTY` (-1) on empty slots.
    positions: `[R, C]` int32 position of the slot within its item, 0 on empty slots.
    item_row: `[N]` int32 row of each item (0 for items of length 0).
    item_offset: `[N]` int32 first slot of each item in its row.
    item_length: `[N]` int32 slots of each item (0: padding, not placed).
  """
  segment_ids: Any
  positions: Any
  item_row: Any
  item_offset: Any
  item_length: Any

  @property
  def shape(self) -> tuple[int, int]:
    """(R, C): rows and slots per row."""
    return tuple(self.segment_ids.shape)

  @property
  def num_items(self) -> int:
    return int(self.item_row.shape[0])


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
  return Packing(segment_ids=segment_ids, positions=positions, item_row=item_row,
                 item_offset=item_offset, item_length=lengths.astype(np.int32))


def attention_mask(packing: Packing, causal: bool = False) -> jax.Array:
  """`[R, C, C]` bool: query slot i may attend to key slot j (same segment; with `causal`, also
  key position <= query position)."""
  segments = jnp.asarray(packing.segment_ids)
  allowed = segments[:, :, None] == segments[:, None, :]
  if causal:
    positions = jnp.asarray(packing.positions)
    allowed &= positions[:, None, :] <= positions[:, :, None]
  return allowed


def last_slots(packing: Packing) -> tuple[jax.Array, jax.Array]:
  """(`[N]` rows, `[N]` columns) of each item's last slot (its first slot for items of length 0)."""
  length = jnp.asarray(packing.item_length)
  return (jnp.asarray(packing.item_row),
          jnp.asarray(packing.item_offset) + jnp.maximum(length, 1) - 1)


def segment_mean(values: jax.Array, packing: Packing) -> jax.Array:
  """`[R, C, F]` per-slot values -> `[N, F]` mean over each item's slots (0 for empty items)."""
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
  capacity = values.shape[1]
  if length > capacity:
    raise InputError(f"unpack: length {length} exceeds the rows' {capacity} slots")
  steps = jnp.arange(length)
  columns = jnp.minimum(jnp.asarray(packing.item_offset)[:, None] + steps, capacity - 1)
  gathered = values[jnp.asarray(packing.item_row)[:, None], columns]
  valid = steps[None, :] < jnp.asarray(packing.item_length)[:, None]
  return jnp.where(valid[..., None], gathered, 0.0)
