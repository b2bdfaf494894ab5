"""Short identities of parameter trees and arrays, for cache keys and provenance records.

  tree_fingerprint(params)   # 12 hex digits: shapes, sums and leading values of every leaf
Two trees of one architecture with different values get different fingerprints (a changed value
changes a sum or a leading element); the same values always give the same one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np


def tree_fingerprint(tree: Any, digits: int = 12) -> str:
  """`digits` hex digits identifying `tree`'s structure, shapes and values."""
  digest = hashlib.sha1()
  for path, leaf in sorted((jax.tree_util.keystr(k), v)
                           for k, v in jax.tree_util.tree_leaves_with_path(tree)):
    leaf = np.asarray(leaf)
    digest.update(f"{path}{leaf.shape}{leaf.dtype}".encode())
    digest.update(f"{float(leaf.astype(np.float64).sum()):.9e}".encode())
    digest.update(leaf.ravel()[:64].tobytes())
  return digest.hexdigest()[:digits]
