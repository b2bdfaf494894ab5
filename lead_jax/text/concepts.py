"""Concept files: a token learnt by motion textual inversion, with the text encoder it belongs to.

A concept is data (`lead-jax invert` writes one, `lead-jax sample --concept` reads it); generating
with it turns concepts into the `ExtraTokens` the text encoder tokenises with:

  concepts = [load_concept("dance-x.npz")]
  extra = as_extra_tokens(concepts, encoder)       # checks each concept against the encoder
  encoder.encode(["a person <dance-x>"], extra)
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence
from typing import Any
import zipfile

import numpy as np

from lead_jax.errors import InputError, MissingFileError, WeightsError
from lead_jax.text.base import ExtraTokens, TextEncoder


@dataclasses.dataclass
class Concept:
  """A learnt token: its input embedding and the text encoder it belongs to."""
  token: str
  embedding: np.ndarray  # [token_dim] float32
  encoder: str           # text encoder name ("clip", "minilm")
  token_dim: int         # width of the encoder's input token embeddings
  embed_dim: int         # width of its pooled output
  vocab_size: int        # rows of its pretrained token table
  init_word: str = ""
  settings: dict[str, Any] = dataclasses.field(default_factory=dict)
  losses: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.float32))

  def check_encoder(self, encoder: TextEncoder) -> None:
    """Raises `WeightsError` unless `encoder` is the one this concept was learnt with."""
    found = (encoder.name, int(encoder.token_dim), int(encoder.embed_dim), int(encoder.vocab_size))
    wanted = (self.encoder, self.token_dim, self.embed_dim, self.vocab_size)
    if found != wanted:
      raise WeightsError(f"concept {self.token!r} was learnt with text encoder (name, token width, "
                         f"embedding width, vocabulary) = {wanted}, but this pipeline's is {found}")
    if np.shape(self.embedding) != (self.token_dim,):
      raise WeightsError(f"concept {self.token!r}: embedding has shape {np.shape(self.embedding)}, "
                         f"expected ({self.token_dim},)")

  def save(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes the `.npz`; a non-finite embedding is refused (it would poison every prompt)."""
    path = pathlib.Path(path)
    if path.suffix != ".npz":
      raise InputError(f"concept file must end in .npz, found {path.name}")
    if not np.isfinite(self.embedding).all():
      raise InputError(f"concept {self.token!r}: the learnt embedding is not finite (NaN/inf); "
                       f"nothing written to {path}. Lower the learning rate and invert again.")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, token=np.asarray(self.token), embedding=np.asarray(self.embedding, np.float32),
             encoder=np.asarray(self.encoder), token_dim=np.asarray(self.token_dim),
             embed_dim=np.asarray(self.embed_dim), vocab_size=np.asarray(self.vocab_size),
             init_word=np.asarray(self.init_word), settings=np.asarray(json.dumps(self.settings)),
             losses=np.asarray(self.losses, np.float32))
    return path


CONCEPT_FIELDS = ("token", "embedding", "encoder", "token_dim", "embed_dim", "vocab_size")


def load_concept(path: str | pathlib.Path) -> Concept:
  """Reads a concept `.npz` written by `Concept.save` (`lead-jax invert`)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"concept file not found: {path}")
  try:
    with np.load(path, allow_pickle=False) as archive:
      data = dict(archive)
  except (ValueError, OSError, TypeError, AttributeError, EOFError, zipfile.BadZipFile) as e:
    raise InputError(f"{path}: not a readable concept .npz file ({type(e).__name__}: {e})") from e
  missing = [k for k in CONCEPT_FIELDS if k not in data]
  if missing:
    raise InputError(f"{path}: concept file lacks {missing} (found {sorted(data)})")
  embedding = np.asarray(data["embedding"], np.float32)
  if not np.isfinite(embedding).all():
    raise InputError(f"{path}: the concept's embedding is not finite (NaN/inf); invert again")
  return Concept(token=str(data["token"]), embedding=embedding,
                 encoder=str(data["encoder"]), token_dim=int(data["token_dim"]),
                 embed_dim=int(data["embed_dim"]), vocab_size=int(data["vocab_size"]),
                 init_word=str(data.get("init_word", "")),
                 settings=json.loads(str(data["settings"])) if "settings" in data else {},
                 losses=np.asarray(data.get("losses", np.zeros(0)), np.float32))


def as_extra_tokens(concepts: Sequence[Concept], encoder: TextEncoder) -> ExtraTokens:
  """The concepts' tokens and embeddings as `ExtraTokens` of `encoder` (each checked against it)."""
  for concept in concepts:
    concept.check_encoder(encoder)
  if not concepts:
    return encoder.no_extra_tokens()
  return ExtraTokens(tuple(c.token for c in concepts), np.stack([c.embedding for c in concepts]))
