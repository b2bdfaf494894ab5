"""Power-of-two padding lengths: arrays padded to a bucket make jitted code compile once per bucket.

  next_pow2(70, smallest=64)    # 128
"""

from __future__ import annotations


def next_pow2(n: int, smallest: int = 1) -> int:
  """Smallest power of two >= n, at least `smallest` (returned as is when n <= smallest)."""
  return max(int(smallest), 1 << max(int(n) - 1, 0).bit_length())
