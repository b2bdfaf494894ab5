"""Pooled text embeddings, computed once per caption and kept on disk.

The text encoder is frozen during every training stage, so a caption's pooled embedding never
changes: the cache computes it once with the chosen encoder (any object with `encode(list[str]) ->
[B, E]`, `embed_dim`, `name` and optionally `fingerprint`) and reuses it every epoch and every run.
On disk it is one `np.savez` file per encoder, `<cache_dir>/<name>[-<fingerprint>].npz`, holding
`keys [N]` (SHA-1 of the caption text) and `embeddings [N, E] float32`. The empty caption `""` (classifier-free guidance's
unconditional input) is always included.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from typing import Protocol, Sequence

import numpy as np

from lead_jax.errors import InputError

EMPTY_CAPTION = ""


class TextEncoderLike(Protocol):
  name: str
  embed_dim: int

  def encode(self, texts: list[str]) -> np.ndarray:
    ...


def caption_key(text: str) -> str:
  """SHA-1 hex digest of the caption's UTF-8 bytes."""
  return hashlib.sha1(text.encode("utf-8")).hexdigest()


class TextEmbeddingCache:
  """Caption -> pooled embedding `[E]`, computed in batches, persisted under `cache_dir`.

  Args:
    encoder: frozen text encoder (`encode`, `embed_dim`, `name`).
    cache_dir: folder for `<encoder name>.npz`; None keeps the cache in memory only.
    batch_size: captions per `encode` call.
  """

  def __init__(self, encoder: TextEncoderLike, cache_dir: str | os.PathLike | None = None,
               batch_size: int = 256):
    self.encoder = encoder
    self.batch_size = batch_size
    self.embed_dim = int(encoder.embed_dim)
    self.path = None
    if cache_dir is not None:
      # Name plus weight fingerprint (when the encoder has one): two checkpoints of one
      # architecture never share a cache file.
      label = "-".join(filter(None, (str(encoder.name), getattr(encoder, "fingerprint", ""))))
      safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label) or "encoder"
      self.path = pathlib.Path(cache_dir) / f"{safe}.npz"
    self._table: dict[str, np.ndarray] = {}
    self.num_encoded = 0  # captions this instance had to encode (cache misses)
    if self.path is not None and self.path.is_file():
      with np.load(self.path) as f:
        keys, emb = f["keys"], f["embeddings"]
      if emb.ndim != 2 or emb.shape[1] != self.embed_dim or len(keys) != len(emb):
        raise InputError(f"text-embedding cache {self.path}: expected keys [N] and embeddings "
                         f"[N, {self.embed_dim}], found {keys.shape} and {emb.shape}; delete it "
                         "to rebuild")
      self._table = {str(k): e for k, e in zip(keys, emb)}

  def __len__(self) -> int:
    return len(self._table)

  def embed(self, texts: Sequence[str]) -> np.ndarray:
    """`[len(texts), E] float32`; encodes only the captions never seen before, then saves."""
    keys = [caption_key(t) for t in texts]
    missing: dict[str, str] = {}
    for k, t in zip(keys, texts):
      if k not in self._table:
        missing.setdefault(k, t)
    if missing:
      todo = list(missing.items())
      for i in range(0, len(todo), self.batch_size):
        chunk = todo[i:i + self.batch_size]
        emb = np.asarray(self.encoder.encode([t for _, t in chunk]), np.float32)
        if emb.shape != (len(chunk), self.embed_dim):
          raise InputError(f"text encoder {self.encoder.name!r}: encode() returned shape "
                           f"{emb.shape}, expected ({len(chunk)}, {self.embed_dim})")
        for (k, _), e in zip(chunk, emb):
          self._table[k] = e
      self.num_encoded += len(todo)
      self.save()
    if not keys:
      return np.zeros((0, self.embed_dim), np.float32)
    return np.stack([self._table[k] for k in keys]).astype(np.float32)

  def empty_embedding(self) -> np.ndarray:
    """`[E]` the embedding of the empty caption (classifier-free guidance)."""
    return self.embed([EMPTY_CAPTION])[0]

  def save(self) -> None:
    if self.path is None:
      return
    self.path.parent.mkdir(parents=True, exist_ok=True)
    keys = np.asarray(sorted(self._table))
    emb = np.stack([self._table[k] for k in keys]) if len(keys) else \
        np.zeros((0, self.embed_dim), np.float32)
    tmp = self.path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, keys=keys, embeddings=emb.astype(np.float32))
    os.replace(tmp, self.path)
