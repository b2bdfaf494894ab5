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


class Embedder(Protocol):
  """What the protocol needs from an evaluator (see `T2MEmbedder`, `TrainedEmbedder`)."""

  def embed_motion(self, features: np.ndarray, lengths: np.ndarray) -> np.ndarray: ...

  def embed_text(self, batch: Mapping[str, Any]) -> np.ndarray: ...


@dataclasses.dataclass
class T2MEmbedder:
  """The published T2M evaluator: de-normalised features -> its statistics; `word/POS` tokens."""
  evaluator: Any          # t2m_evaluator.T2MEvaluator
  word_vectorizer: Any    # convert.t2m_ckpt.WordVectorizer

  def embed_motion(self, features, lengths):
    self.evaluator.check_features(features)
    x = (np.asarray(features, np.float32) - self.evaluator.eval_mean) / self.evaluator.eval_std
    return self.evaluator.motion_embeddings(x, lengths)

  def embed_text(self, batch):
    tokens = [str(t).split() for t in batch["tokens"]]
    word, pos, lens = self.word_vectorizer.encode_batch(tokens)
    return self.evaluator.text_embeddings(word, pos, lens)


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
