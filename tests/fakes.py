"""Test doubles shared by several test folders."""

import hashlib

import numpy as np


class HashTextEncoder:
  """Deterministic caption embeddings (SHA-256-seeded normals) of width `embed_dim`.

  Pipelines and trainers only read pooled embeddings, so their tests need no language model.
  `encoded` records every caption passed to `encode` (to test caching).
  """

  def __init__(self, embed_dim: int = 384):
    self.embed_dim = embed_dim
    self.name = f"hash{embed_dim}"
    self.encoded: list[str] = []

  def encode(self, texts):
    texts = list(texts)
    self.encoded.extend(texts)
    rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little"))
            .normal(size=self.embed_dim) for t in texts]
    return np.asarray(rows, np.float32).reshape(len(texts), self.embed_dim)
