"""Latents of a dataset split for Figure 2: the VAE posterior means and their projections, and
labels to colour them by.

  models = load_latent_models("runs/projector")          # projector + the VAE it was trained on
  split = encode_split(models, None, "test", max_motions=500, seed=0)
  split.vae [N, d], split.projected [N, E]
  labels = split_labels(split, "verb", top=8)            # or "content" (Bandai / DeepMimic ids)

Labels come from caption content: `caption_verb` (the main verb of a caption, from the HumanML3D
`word/POS` tokens, or our own tagger when a line has none), `clip_verb` (the majority over a
clip's captions) or `content_label` (the content field of Bandai / DeepMimic clip ids).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lead_jax import workdir as stage_io
from lead_jax.data import datasets, layout
from lead_jax.errors import ConfigError, InputError
from lead_jax.io.pos_tags import tag_caption


LIGHT_VERBS = frozenset(
    "be do have start begin stand appear seem look make get go keep continue try stop use take "
    "proceed".split())
_CONTENT_PATTERNS = (re.compile(r"^dataset-\d+_([a-z-]+)_[a-z-]+_\d+$"),  # Bandai
                     re.compile(r"^humanoid3d_([a-z_]+)$"))  # DeepMimic


def caption_verb(caption: Any) -> str | None:
  """The main verb (lemma) of a caption: a `lead_jax.data.layout.Caption` (from its `word/POS`
  tokens; from our own tagger when they hold no verb) or a plain string. None when it has none."""
  if isinstance(caption, str):
    text, pairs = caption, []
  else:
    text, pairs = caption.text, list(zip(caption.tokens, caption.pos))
  verbs = [w.lower() for w, tag in pairs if tag == "VERB"]
  if not verbs:
    verbs = [w for w, tag in tag_caption(text) if tag == "VERB"]
  content = [v for v in verbs if v not in LIGHT_VERBS]
  return (content or verbs or [None])[0]


def clip_verb(captions: Sequence[Any]) -> str:
  """The most frequent main verb over a clip's captions (ties: the earliest); 'none' if none."""
  verbs = [v for v in (caption_verb(c) for c in captions) if v]
  if not verbs:
    return "none"
  counts = collections.Counter(verbs)
  best = max(counts.values())
  return next(v for v in verbs if counts[v] == best)


def content_label(clip_id: str) -> str:
  """Content of a Bandai (`dataset-N_{content}_{style}_{id}`) or DeepMimic (`humanoid3d_{motion}`)
  clip id, mirrored copies (`M<id>`) included."""
  for candidate in (clip_id, clip_id[1:] if clip_id.startswith("M") else None):
    for pattern in _CONTENT_PATTERNS:
      match = pattern.match(candidate or "")
      if match:
        return match.group(1)
  raise InputError(f"clip id {clip_id!r} carries no content label (expected "
                   "dataset-N_{content}_{style}_{id} or humanoid3d_{motion}); colour by caption "
                   "verb instead (--label verb)")


def top_labels(labels: Sequence[str], count: int, other: str = "other") -> list[str]:
  """Keeps the `count` most frequent labels (ties: first seen), the rest become `other`."""
  counts = collections.Counter(labels)
  order = {label: i for i, label in reversed(list(enumerate(labels)))}
  kept = set(sorted(counts, key=lambda l: (-counts[l], order[l]))[:count])
  return [l if l in kept else other for l in labels]


# ---- latents of a dataset split ---------------------------------------------------------------
@dataclasses.dataclass
class LatentModels:
  """A projector stage's frozen VAE and projector (modules and parameter trees)."""
  vae: Any
  vae_params: Any
  projector: Any
  projector_params: Any
  config: ml_collections.ConfigDict  # the projector stage's config
  workdir: str


def load_latent_models(workdir: str | os.PathLike, vae_workdir: str | None = None) -> LatentModels:
  """The projector of `workdir` and the VAE it was trained against (`dependencies.vae_workdir`),
  both by the weight rule of `lead_jax.workdir.load_stage`. The denoiser and text encoder are not
  needed. Raises MissingFileError / WeightsError / ConfigError."""
  projector = stage_io.load_stage(workdir, "projector")
  vae = stage_io.load_stage(vae_workdir or stage_io.dependency_workdir(projector.config, "vae"),
                            "vae")
  if projector.module.latent_dim != vae.module.latent_dim:
    raise ConfigError(f"{workdir}: projector.latent_dim={projector.module.latent_dim} != "
                      f"vae.latent_dim={vae.module.latent_dim}")
  return LatentModels(vae.module, vae.params, projector.module, projector.params,
                      projector.config, str(workdir))


@dataclasses.dataclass
class SplitLatents:
  """Posterior means `vae [N, d]`, projected latents `projected [N, E]`, clip ids and captions."""
  ids: list[str]
  captions: list[tuple[Any, ...]]
  lengths: np.ndarray
  vae: np.ndarray
  projected: np.ndarray


@functools.partial(jax.jit, static_argnums=(0, 1))
def _encode_batch(vae, projector, vae_params, proj_params, motion, mask):
  mu = vae.apply({"params": vae_params}, motion, mask, None, method=vae.encode)[1]
  z_proj = projector.apply({"params": proj_params}, mu, method=projector.encode)
  return mu[:, 0], z_proj


def encode_split(models: LatentModels, data_dir: str | os.PathLike | None, split: str = "test",
                 *, max_motions: int = 500, seed: int = 0, batch_size: int = 64,
                 max_frames: int | None = None) -> SplitLatents:
  """Latents of up to `max_motions` clips of `split` (a seeded random subset, in id order).

  Each clip is normalised with the dataset's Mean/Std, cut to its first `max_frames` frames
  (default: the stage's `data.max_len`, at most the VAE's `max_len - 2`), padded and masked;
  `vae` is the posterior mean mu = E_vae(x) and `projected` is E_proj(mu).
  """
  data = models.config.data
  root = datasets.dataset_root(data.builder, data_dir or data.dir or None)
  dim = models.vae.nfeats
  mean, std = layout.load_stats(root, dim)
  present, _ = layout.available_ids(root, split)
  if not present:
    list(layout.iter_clips(root, split, dim))  # raises, naming the missing files
  if max_motions < 3:
    raise InputError(f"max_motions must be >= 3 for t-SNE, found {max_motions}")
  ids = sorted(present)
  if len(ids) > max_motions:
    chosen = np.random.default_rng(seed).choice(len(ids), max_motions, replace=False)
    ids = [ids[i] for i in sorted(chosen)]
  limit = models.vae.max_len - 2
  frames = int(min(max_frames or data.max_len, limit))
  if frames < 1:
    raise ConfigError(f"max_frames must be >= 1, found {frames}")
  batch_size = int(min(batch_size, len(ids)))
  clips = [layout.load_clip(root, i, dim) for i in ids]
  mus, projs = [], []
  for start in range(0, len(clips), batch_size):
    chunk = clips[start:start + batch_size]
    motion = np.zeros((batch_size, frames, dim), np.float32)
    mask = np.zeros((batch_size, frames), bool)
    mask[:, 0] = True  # padding rows: one frame, discarded
    for row, clip in enumerate(chunk):
      t = min(clip.length, frames)
      motion[row, :t] = (clip.motion[:t] - mean) / std
      mask[row, :t] = True
    mu, z_proj = _encode_batch(models.vae, models.projector, models.vae_params,
                               models.projector_params, jnp.asarray(motion), jnp.asarray(mask))
    mus.append(np.asarray(mu[:len(chunk)]))
    projs.append(np.asarray(z_proj[:len(chunk)]))
  return SplitLatents(ids=ids, captions=[c.captions for c in clips],
                      lengths=np.asarray([min(c.length, frames) for c in clips]),
                      vae=np.concatenate(mus).astype(np.float32),
                      projected=np.concatenate(projs).astype(np.float32))


def split_labels(latents: SplitLatents, kind: str = "verb", top: int = 8) -> list[str]:
  """A colour label per clip: `verb` (majority main verb of its captions) or `content` (from the
  clip id); all but the `top` most frequent become 'other'."""
  if kind == "verb":
    labels = [clip_verb(c) for c in latents.captions]
  elif kind == "content":
    labels = [content_label(i) for i in latents.ids]
  else:
    raise ConfigError(f"label kind must be 'verb' or 'content', found {kind!r}")
  return top_labels(labels, top)


# ---- the figure -------------------------------------------------------------------------------
