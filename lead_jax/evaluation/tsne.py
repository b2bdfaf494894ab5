"""t-SNE of VAE latents and of projected latents (the paper's Figure 2, right), with a number.

The numerics are scikit-learn's: `tsne` is `sklearn.manifold.TSNE` (exact gradient, random start,
sklearn's schedule: 250 early-exaggerated iterations, then the rest), `silhouette_samples` is
`sklearn.metrics.silhouette_samples` (`silhouette_score` its mean) and `knn_accuracy` votes over
the leave-one-out neighbours of `sklearn.neighbors.NearestNeighbors`. The embedding is
deterministic for a fixed seed.

Colours come from caption content: `caption_verb` (the main verb of a caption, from the
HumanML3D `word/POS` tokens, or our own tagger when a line has none), `clip_verb` (the majority
over a clip's captions) or `content_label` (the content field of Bandai / DeepMimic clip ids).

  from lead_jax.evaluation import tsne
  y, kl = tsne.tsne(x, seed=0, perplexity=30.0)                   # [N, 2], final KL
  s = tsne.silhouette_score(y, labels)
  latents = tsne.encode_split(models, data_dir, "test", max_motions=500, seed=0)
  tsne.latent_figure(latents, labels, "fig2.png", seed=0)         # + fig2.json, fig2.npz
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import manifold, metrics, neighbors

from lead_jax.errors import ConfigError, InputError

# sklearn's TSNE runs 250 iterations with early exaggeration before the main phase.
EXAGGERATION_ITERS = 250


# ---- t-SNE ------------------------------------------------------------------------------------
def _check_points(x: Any, what: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[0] < 3:
    raise InputError(f"{what} input must be [N, D] with N >= 3 points, found shape {x.shape}")
  if not np.all(np.isfinite(x)):
    raise InputError(f"{what} input has {int(np.sum(~np.isfinite(x)))} non-finite values")
  return x


def tsne(x: Any, seed: int = 0, *, dim: int = 2, perplexity: float = 30.0,
         num_iters: int = 1000, early_exaggeration: float = 12.0) -> tuple[np.ndarray, float]:
  """t-SNE embedding of `x [N, D]` -> (`y [N, dim]` float32, the final KL divergence).

  `sklearn.manifold.TSNE` with the exact gradient, a random start (`1e-4 * normal`, seeded by
  `seed`) and sklearn's 'auto' learning rate, max(N / early_exaggeration / 4, 50); `num_iters`
  counts all iterations, the first 250 with early exaggeration. O(N^2) time and memory per
  iteration: meant for a few thousand points.
  """
  x = _check_points(x, "t-SNE")
  if not 1.0 <= float(perplexity) < x.shape[0] - 1:
    raise InputError(f"perplexity must be in [1, N - 1) = [1, {x.shape[0] - 1}) for N = "
                     f"{x.shape[0]} points, found {perplexity}")
  if num_iters <= EXAGGERATION_ITERS:
    raise InputError(f"t-SNE needs num_iters > {EXAGGERATION_ITERS} (the early-exaggeration "
                     f"iterations), found {num_iters}")
  model = manifold.TSNE(n_components=dim, perplexity=float(perplexity),
                        early_exaggeration=float(early_exaggeration), learning_rate="auto",
                        max_iter=int(num_iters), init="random", method="exact",
                        random_state=int(seed))
  y = model.fit_transform(x)
  return y.astype(np.float32), float(model.kl_divergence_)


# ---- separation -------------------------------------------------------------------------------
def _label_codes(labels: Sequence[Any], n: int) -> tuple[np.ndarray, int]:
  labels = list(labels)
  if len(labels) != n:
    raise InputError(f"got {len(labels)} labels for {n} points")
  _, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
  return codes.reshape(-1), int(codes.max()) + 1 if n else 0


def silhouette_samples(x: Any, labels: Sequence[Any]) -> np.ndarray:
  """Per-point silhouette `[N]` (Euclidean): (b - a) / max(a, b) with a the mean distance to the
  other points of its cluster and b the smallest mean distance to another cluster; 0 for
  singleton clusters (Rousseeuw 1987; `sklearn.metrics.silhouette_samples`)."""
  x = _check_points(x, "silhouette")
  codes, k = _label_codes(labels, x.shape[0])
  if not 2 <= k <= x.shape[0] - 1:
    raise InputError(f"silhouette needs 2 <= number of labels <= N - 1, found {k} labels for "
                     f"N = {x.shape[0]} points")
  return metrics.silhouette_samples(x, codes)


def silhouette_score(x: Any, labels: Sequence[Any]) -> float:
  """Mean silhouette of `x [N, D]` under `labels` (in [-1, 1]; higher = better separated)."""
  return float(np.mean(silhouette_samples(x, labels)))


def knn_accuracy(x: Any, labels: Sequence[Any], k: int = 5) -> float:
  """Leave-one-out k-NN label accuracy of `x [N, D]`: each point's label by majority vote of its
  `k` nearest other points (`sklearn.neighbors`); a tie goes to the nearest neighbour's label."""
  x = _check_points(x, "k-NN")
  n = x.shape[0]
  if not 1 <= k <= n - 1:
    raise InputError(f"k must be in [1, N - 1] = [1, {n - 1}], found {k}")
  codes, num = _label_codes(labels, n)
  # Without a query, kneighbors leaves each point out of its own neighbours; nearest first.
  nearest = neighbors.NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)
  rows = np.arange(n)
  votes = np.zeros((n, num))
  np.add.at(votes, (rows[:, None], codes[nearest]), 1.0)
  votes[rows, codes[nearest[:, 0]]] += 0.5  # tie-break only
  return float(np.mean(votes.argmax(axis=1) == codes))


# ---- labels from caption content --------------------------------------------------------------
# Verbs that rarely name the action when another verb is present ("stands and kicks",
# "starts to run", "is walking"); a caption with only such verbs keeps its first one.
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
    from lead_jax.io.pos_tags import tag_caption  # pylint: disable=import-outside-toplevel
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
  config: dict[str, Any]
  workdir: str


def load_latent_models(workdir: str | pathlib.Path, vae_workdir: str | None = None) -> LatentModels:
  """The projector of `workdir` and the VAE it was trained against (`dependencies.vae_workdir`),
  both by the weight rule of `lead_jax.workdir.load_stage`. The denoiser and text encoder are not
  needed. Raises MissingFileError / WeightsError / ConfigError."""
  from lead_jax import workdir as stage_io  # pylint: disable=import-outside-toplevel
  projector = stage_io.load_stage(workdir, "projector")
  vae = stage_io.load_stage(vae_workdir or stage_io.dependency_workdir(projector.config, "vae"),
                            "vae")
  if projector.module.latent_dim != vae.module.latent_dim:
    raise ConfigError(f"{workdir}: projector.latent_dim={projector.module.latent_dim} != "
                      f"vae.latent_dim={vae.module.latent_dim}")
  return LatentModels(vae.module, vae.params, projector.module, projector.params,
                      projector.config.to_dict(), str(workdir))


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


def encode_split(models: LatentModels, data_dir: str | pathlib.Path | None, split: str = "test",
                 *, max_motions: int = 500, seed: int = 0, batch_size: int = 64,
                 max_frames: int | None = None) -> SplitLatents:
  """Latents of up to `max_motions` clips of `split` (a seeded random subset, in id order).

  Each clip is normalised with the dataset's Mean/Std, cut to its first `max_frames` frames
  (default: the stage's `data.max_len`, at most the VAE's `max_len - 2`), padded and masked;
  `vae` is the posterior mean mu = E_vae(x) and `projected` is E_proj(mu).
  """
  from lead_jax.data import datasets, layout  # pylint: disable=import-outside-toplevel
  data = dict(models.config.get("data") or {})
  builder = data.get("builder") or "motion_folder"
  root = datasets.dataset_root(builder, data_dir or data.get("dir") or None)
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
  frames = int(min(max_frames or data.get("max_len") or limit, limit))
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
PANELS = (("vae", "VAE latents  $\\mu = E_{vae}(x)$"),
          ("projected", "projected latents  $E_{proj}(\\mu)$"))


def separation(points: np.ndarray, labels: Sequence[str], k: int = 5,
               other: str = "other") -> dict[str, float | None]:
  """Silhouette and k-NN accuracy over the points whose label is not `other` (None when fewer
  than 2 labels or too few points remain)."""
  keep = np.asarray([l != other for l in labels])
  kept = [l for l in labels if l != other]
  n, num = int(keep.sum()), len(set(kept))
  if num < 2 or n <= num:
    return {"silhouette": None, "knn_accuracy": None}
  return {"silhouette": silhouette_score(points[keep], kept),
          "knn_accuracy": knn_accuracy(points[keep], kept, k=min(k, n - 1))}


def latent_figure(latents: SplitLatents, labels: Sequence[str], out: str | pathlib.Path, *,
                  seed: int = 0, perplexity: float = 30.0, num_iters: int = 1000,
                  title: str = "") -> dict[str, Any]:
  """t-SNE of both latent sets, two panels side by side, written to `out` (PNG); writes the
  summary `out.json` (silhouette and k-NN accuracy per panel, in the t-SNE plane and in the
  latent space) and `out.npz` (latents, embeddings, labels, ids). Returns the summary."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  out = pathlib.Path(out)
  labels = list(labels)
  n = len(latents.ids)
  perplexity = float(min(perplexity, max((n - 2) / 3.0, 1.0)))  # sklearn-style guard for small N
  summary: dict[str, Any] = {"num_motions": n, "perplexity": perplexity, "num_iters": num_iters,
                             "seed": seed, "label_counts": dict(collections.Counter(labels)),
                             "panels": {}}
  embeddings = {}
  for name, _ in PANELS:
    points = getattr(latents, name)
    y, kl = tsne(points, seed, perplexity=perplexity, num_iters=num_iters)
    embeddings[name] = y
    tsne_sep, latent_sep = separation(y, labels), separation(points, labels)
    summary["panels"][name] = {"dim": int(points.shape[1]), "kl_divergence": kl,
                               "silhouette": tsne_sep["silhouette"],
                               "knn_accuracy": tsne_sep["knn_accuracy"],
                               "latent_silhouette": latent_sep["silhouette"],
                               "latent_knn_accuracy": latent_sep["knn_accuracy"]}

  names = list(dict.fromkeys(sorted(labels, key=lambda l: (l == "other", l))))
  cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
  colours = {l: ("0.75" if l == "other" else cmap(i % cmap.N)) for i, l in enumerate(names)}
  fig, axes = plt.subplots(1, 2, figsize=(12, 5.6))
  for ax, (name, heading) in zip(axes, PANELS):
    y = embeddings[name]
    for label in names:
      rows = np.asarray([l == label for l in labels])
      ax.scatter(y[rows, 0], y[rows, 1], s=10, color=colours[label],
                 label=f"{label} ({rows.sum()})", alpha=0.5 if label == "other" else 0.9,
                 linewidths=0)
    sil = summary["panels"][name]["silhouette"]
    ax.set_title(heading + ("" if sil is None else f"\nsilhouette {sil:.3f}"))
    ax.set_xticks([])
    ax.set_yticks([])
  axes[1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, markerscale=2)
  fig.suptitle(title or f"t-SNE of {n} motions (perplexity {perplexity:g})")
  fig.tight_layout()
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=120)
  plt.close(fig)
  out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
  np.savez(out.with_suffix(".npz"), ids=np.asarray(latents.ids), labels=np.asarray(labels),
           vae=latents.vae, projected=latents.projected, vae_tsne=embeddings["vae"],
           projected_tsne=embeddings["projected"])
  return summary
