"""Checks of what a user asks to generate, and the static shapes the generation program runs at.

Shapes are bucketed so that different prompt counts, sample counts and lengths compile a handful
of programs only: the motion batch N and the prompt batch P are rounded up to powers of two, the
token length to a power of two >= 16 (when the encoder allows trimming padding), and the decoded
frames to a power of two >= 16, capped at the pipeline's `max_frames`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lead_jax.text.base import next_pow2
from lead_jax.errors import InputError
from lead_jax.text.base import ExtraTokens, TextEncoder, TokenBatch

MIN_FRAME_BUCKET = 16


def check_texts(texts: Sequence[str]) -> list[str]:
  """The prompts as a list; raises `InputError` for a bare string, an empty list or an empty
  prompt (the empty prompt is the unconditional embedding)."""
  if isinstance(texts, str):
    raise InputError(f"texts must be a list of prompts, found the string {texts!r}")
  texts = list(texts)
  if not texts:
    raise InputError("texts is empty: give at least one prompt")
  for i, t in enumerate(texts):
    if not isinstance(t, str) or not t.strip():
      raise InputError(f"prompt {i} is {t!r}: prompts must be non-empty strings (the empty prompt "
                       "is the unconditional embedding)")
  return texts


def check_lengths(lengths: int | Sequence[int], prompts: int, max_frames: int) -> np.ndarray:
  """`[P]` int64 frame counts from one int or P ints, each in [1, max_frames]."""
  if isinstance(lengths, (int, np.integer)) and not isinstance(lengths, bool):
    lengths = [int(lengths)] * prompts
  values = list(lengths) if not isinstance(lengths, (str, bytes)) else None
  if values is None or len(values) != prompts:
    raise InputError(f"lengths must be one integer or {prompts} integers (one per prompt), found "
                     f"{lengths!r}")
  for i, v in enumerate(values):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= int(v) <= max_frames:
      raise InputError(f"length of prompt {i} is {v!r}; lengths must be integers in "
                       f"[1, {max_frames}] frames (max_frames of this pipeline)")
  return np.asarray(values, np.int64)


def check_positive(name: str, value: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise InputError(f"{name} must be a positive integer, found {value!r}")
  return int(value)


def check_finite(name: str, value: float) -> float:
  if not math.isfinite(float(value)):
    raise InputError(f"{name} must be finite, found {value!r}")
  return float(value)


def frame_bucket(longest: int, max_frames: int) -> int:
  """Frames the program decodes: the power of two >= `longest` (at least 16), at most
  `max_frames` (frames past a motion's length are masked, so the bucket never changes a motion)."""
  return int(min(next_pow2(int(longest), MIN_FRAME_BUCKET), max_frames))


def tokenize_prompts(encoder: TextEncoder, texts: list[str], extra: ExtraTokens
                     ) -> tuple[TokenBatch, np.ndarray]:
  """Tokens of `texts` padded to a power-of-two batch (repeating row 0) and trimmed to a bucketed
  token length; and `[P]` flags of the prompts the tokenizer truncated."""
  batch = encoder.tokenize(texts, extra)
  encoder.check_ids(batch.ids, extra)
  truncated = encoder.truncated(texts, extra)
  batch = encoder.trim(batch)
  pad = next_pow2(len(texts)) - len(texts)
  rep = lambda a: np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
  return TokenBatch(ids=rep(batch.ids), attention_mask=rep(batch.attention_mask),
                    eos_index=rep(batch.eos_index)), truncated
