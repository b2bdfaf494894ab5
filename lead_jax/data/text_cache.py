"""Embeddings of strings, computed once per string and kept on disk.

Frozen encoders give a string the same embedding every time: `EmbeddingCache` computes each one
once (`compute(list[str]) -> [B, E]`, in batches) and reuses it every epoch, replication and run.
On disk it is one `np.savez` file per encoder, `<cache_dir>/<label>.npz`, holding `keys [N]`
(SHA-1 of the string) and `embeddings [N, E] float32`; the label must name everything that
changes the embedding.

`TextEmbeddingCache` is the cache of a frozen text encoder's pooled caption embeddings (any object
with `encode(list[str]) -> [B, E]`, `embed_dim`, `name`, and optionally `fingerprint` (weights) and
`settings_label` (e.g. maximum length, MiniLM's normalisation)): its label is
`<name>[-<fingerprint>][-<settings>]`. The evaluation protocol caches its evaluator's caption
embeddings the same way.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from typing import Callable, Protocol, Sequence

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


def encoder_label(encoder: TextEncoderLike) -> str:
  """`<name>[-<fingerprint>][-<settings>]`: what makes a text encoder's embeddings what they are
  (two checkpoints of one architecture, or two maximum lengths, never share a cache file)."""
  return "-".join(filter(None, (str(encoder.name), getattr(encoder, "fingerprint", ""),
                                getattr(encoder, "settings_label", ""))))


class EmbeddingCache:
  """String -> embedding `[E]`, computed in batches by `compute`, persisted under `cache_dir`.

  Args:
    label: names the encoder and every setting that changes its output (the file name).
    compute: `list[str] -> [B, E]` array.
    embed_dim: E.
    cache_dir: folder for `<label>.npz`; None keeps the cache in memory only.
    batch_size: strings per `compute` call.
  """

  def __init__(self, label: str, compute: Callable[[list[str]], np.ndarray], embed_dim: int,
               cache_dir: str | os.PathLike | None = None, batch_size: int = 256):
    self.label = label
    self.compute = compute
    self.batch_size = batch_size
    self.embed_dim = int(embed_dim)
    self.path = None
    if cache_dir is not None:
      safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label) or "encoder"
      self.path = pathlib.Path(cache_dir) / f"{safe}.npz"
    self._table: dict[str, np.ndarray] = {}
    self.num_encoded = 0  # captions this instance had to encode (cache misses)
    if self.path is not None and self.path.is_file():
      with np.load(self.path) as f:
        keys, emb = f["keys"], f["embeddings"]
      if emb.ndim != 2 or emb.shape[1] != self.embed_dim or len(keys) != len(emb):
        raise InputError(f"embedding cache {self.path}: expected keys [N] and embeddings "
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
        emb = np.asarray(self.compute([t for _, t in chunk]), np.float32)
        if emb.shape != (len(chunk), self.embed_dim):
          raise InputError(f"encoder {self.label!r} returned embeddings of shape {emb.shape}, "
                           f"expected ({len(chunk)}, {self.embed_dim})")
        for (k, _), e in zip(chunk, emb):
          self._table[k] = e
      self.num_encoded += len(todo)
      self.save()
    if not keys:
      return np.zeros((0, self.embed_dim), np.float32)
    return np.stack([self._table[k] for k in keys]).astype(np.float32)

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


class TextEmbeddingCache(EmbeddingCache):
  """Caption -> pooled embedding `[E]` of a frozen text encoder (label: `encoder_label`)."""

  def __init__(self, encoder: TextEncoderLike, cache_dir: str | os.PathLike | None = None,
               batch_size: int = 256):
    super().__init__(encoder_label(encoder), encoder.encode, encoder.embed_dim, cache_dir,
                     batch_size)
    self.encoder = encoder

  def empty_embedding(self) -> np.ndarray:
    """`[E]` the embedding of the empty caption (classifier-free guidance)."""
    return self.embed([EMPTY_CAPTION])[0]
