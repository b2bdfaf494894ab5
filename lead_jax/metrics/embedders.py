"""What an evaluation protocol needs from an evaluator: motion and caption embeddings.

  embedder.embed_motion(features [B, T, D] de-normalised, lengths [B]) -> [B, E]
  embedder.embed_text(batch) -> [B, E]     (batch: an evaluation batch with `tokens` / `text_emb`)

`T2MEmbedder` wraps the published T2M evaluator (its own statistics, GloVe `word/POS` tokens);
`TrainedEmbedder` a `trainable_evaluator.TrainedEvaluator` (dataset statistics, pooled captions).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol

import numpy as np

from lead_jax.data.text_cache import EmbeddingCache
from lead_jax.fingerprints import tree_fingerprint


class Embedder(Protocol):
  """What the protocol needs from an evaluator (see `T2MEmbedder`, `TrainedEmbedder`)."""

  def embed_motion(self, features: np.ndarray, lengths: np.ndarray) -> np.ndarray: ...

  def embed_text(self, batch: Mapping[str, Any]) -> np.ndarray: ...


@dataclasses.dataclass
class T2MEmbedder:
  """The published T2M evaluator: de-normalised features -> its statistics; `word/POS` tokens.

  `batching`: 'per_sequence' (MLD's batch-1 test, the default) or 'padded' (T2M's padded batches;
  `t2m_evaluator.motion_embeddings`). With `cache_dir`, caption embeddings are kept on disk, keyed
  by the evaluator's weights and the token string: each caption is embedded once across
  replications and runs.
  """
  evaluator: Any          # t2m_evaluator.T2MEvaluator
  word_vectorizer: Any    # convert.t2m_ckpt.WordVectorizer
  batching: str = "per_sequence"
  cache_dir: str | None = None

  def __post_init__(self):
    label = f"t2m-text-{tree_fingerprint(self.evaluator.params)}"
    self._text_cache = EmbeddingCache(label, self._embed_tokens, 512, self.cache_dir)

  def embed_motion(self, features, lengths):
    self.evaluator.check_features(features)
    x = (np.asarray(features, np.float32) - self.evaluator.eval_mean) / self.evaluator.eval_std
    return self.evaluator.motion_embeddings(x, lengths, self.batching)

  def _embed_tokens(self, token_strings: list[str], chunk: int = 64) -> np.ndarray:
    """Chunks of exactly `chunk` captions (padded): one compiled text encoder per run."""
    out = []
    for s in range(0, len(token_strings), chunk):
      part = token_strings[s:s + chunk]
      padded = part + part[:1] * (chunk - len(part))
      word, pos, lens = self.word_vectorizer.encode_batch([t.split() for t in padded])
      out.append(self.evaluator.text_embeddings(word, pos, lens)[:len(part)])
    return np.concatenate(out)

  def embed_text(self, batch):
    return self._text_cache.embed([str(t) for t in batch["tokens"]])


@dataclasses.dataclass
class TrainedEmbedder:
  """A `trainable_evaluator.TrainedEvaluator`: dataset-normalised motions, pooled caption embeddings."""
  evaluator: Any
  mean: np.ndarray
  std: np.ndarray

  def embed_motion(self, features, lengths):
    self.evaluator.check_features(features)
    x = (np.asarray(features, np.float32) - self.mean) / self.std
    return self.evaluator.motion_embeddings(x, lengths)

  def embed_text(self, batch):
    return self.evaluator.text_embeddings(batch["text_emb"])
