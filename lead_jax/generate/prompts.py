"""Checks of what a user asks to generate, and the static shapes the generation program runs at.

Shapes are bucketed so that different prompt counts, sample counts and lengths compile a handful
of programs only: the motion batch N and the prompt batch P are rounded up to powers of two, the
token length to a multiple of 8 >= 16 (when the encoder allows trimming padding: the longest
prompt's tokens, not the encoder's 77-token context), and the decoded frames to a power of two
>= 16 up to 64 frames, then to a multiple of 32, capped at the pipeline's `max_frames`. Padding is
masked, so a bucket never changes a motion; finer buckets cut the work of short batches (a 90-frame
motion decodes 96 frames, not 128 or 196).

The generation program packs (`lead_jax.models.packing`); padding prompts and motions take no
slots, and the transformers' per-token work runs on the packings' compact tokens (the real slots,
their count rounded up by `packing.compact_size`), only attention in the rows. Motions
(`pack_motions`): rows of the frame bucket, the row count a multiple of N/8
(`MOTION_ROW_BUCKETS`): a VAE row costs its attention (~8 ms at 196 frames, full size). Prompts
(`pack_prompts`; the rules live in `lead_jax.text.base`, which `TextEncoder.encode` packs by too):
rows of `TOKEN_ROW` (64) tokens, or of the longest prompt's token bucket when longer, or of fewer
when all the tokens fit in fewer (`token_row_bucket`), the row count a multiple of P/4
(`PROMPT_ROW_BUCKETS`): a CLIP row of 64 slots costs ~1 ms of attention, so
coarse row buckets cost little and keep the text program's shapes few. Random evaluation batches
run a few programs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lead_jax.errors import InputError
from lead_jax.models import packing
from lead_jax.text.base import (PROMPT_ROW_BUCKETS, ExtraTokens, PackedTokens, TextEncoder,
                                TokenBatch, next_pow2, token_bucket, token_row_bucket)

MIN_FRAME_BUCKET = 16
FRAME_STEP = 32     # frame buckets above 64 frames: multiples of this
MOTION_ROW_BUCKETS = 8   # packed motions: the row count is a multiple of N / this


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
  """Frames the program decodes: the power of two >= `longest` (at least 16) up to 64, above that
  the multiple of 32 >= `longest`; at most `max_frames` (frames past a motion's length are masked,
  so the bucket never changes a motion)."""
  longest = int(longest)
  if longest <= 4 * MIN_FRAME_BUCKET:
    bucket = next_pow2(longest, MIN_FRAME_BUCKET)
  else:
    bucket = -(-longest // FRAME_STEP) * FRAME_STEP
  return int(min(bucket, max_frames))


def tokenize_prompts(encoder: TextEncoder, texts: list[str], extra: ExtraTokens
                     ) -> tuple[TokenBatch, np.ndarray]:
  """Tokens of `texts` padded to a power-of-two batch (repeating row 0) and trimmed to a bucketed
  token length (`token_bucket` of the longest prompt, when `encoder.trim_padding`: padding cannot
  change a causal CLIP's or a masked mean pool's feature); and `[P]` flags of the prompts the
  tokenizer truncated."""
  batch = encoder.tokenize(texts, extra)
  encoder.check_ids(batch.ids, extra)
  truncated = encoder.truncated(texts, extra)
  if encoder.trim_padding:
    length = token_bucket(int(np.asarray(batch.attention_mask).sum(axis=1).max()),
                          batch.ids.shape[1])
    batch = TokenBatch(ids=batch.ids[:, :length], attention_mask=batch.attention_mask[:, :length],
                       eos_index=batch.eos_index)
  pad = next_pow2(len(texts)) - len(texts)
  rep = lambda a: np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
  return TokenBatch(ids=rep(batch.ids), attention_mask=rep(batch.attention_mask),
                    eos_index=rep(batch.eos_index)), truncated


def pack_prompts(encoder: TextEncoder, texts: list[str], extra: ExtraTokens
                 ) -> tuple[PackedTokens, np.ndarray]:
  """Tokens of `texts` packed (`TextEncoder.pack_tokens`) in rows of `token_row_bucket` slots,
  with padding prompts (no tokens) up to a power-of-two count P; and `[P]` flags of the prompts
  the tokenizer truncated."""
  batch = encoder.tokenize(texts, extra)
  encoder.check_ids(batch.ids, extra)
  truncated = encoder.truncated(texts, extra)
  capacity = token_row_bucket(encoder.token_lengths(batch), batch.ids.shape[1])
  return encoder.pack_tokens(batch, capacity, next_pow2(len(texts)),
                             PROMPT_ROW_BUCKETS), truncated


def pack_motions(lengths: np.ndarray, max_frames: int) -> packing.Packing:
  """Motions of `lengths` frames (0: padding) packed in rows of `frame_bucket(longest)` slots."""
  return packing.pack(np.asarray(lengths), frame_bucket(int(np.max(lengths)), max_frames),
                      MOTION_ROW_BUCKETS)
