"""The MTI protocol (paper Sec. 5.5, Table 3): one token learnt per test motion, then generation.

A seeded random subset of the split; for each of its motions one placeholder token is learnt from
that motion alone (`lead_jax.train.inversion`) and motions are generated from a template prompt
holding it, without and with the projector; R@3, FID, MM-Dist and diversity against the subset's
ground truth (text = each motion's ground-truth caption).

  result = evaluate_mti(embedder, pipe, batches_fn, ProtocolSettings(replications=20),
                        MTISettings(inversion_settings, size=100, spaces=("lead", "mld")), mean, std)
  report.write_report(result, "mti/", report.TABLE3_COLUMNS)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

import jax
import numpy as np

from lead_jax.errors import ConfigError, InputError
from lead_jax.evaluation.protocol import (BatchesFn, ProtocolSettings, Split, effective_sizes,
                                          embed_rows, replication_metrics)
from lead_jax.metrics import scores
from lead_jax.metrics.embedders import Embedder
from lead_jax.train import inversion

SUBSET_FIELDS = ("motion", "length", "text_emb", "tokens", "caption", "id")


@dataclasses.dataclass(frozen=True)
class MTISettings:
  """The MTI protocol: one token learnt per subset motion, then generation from `template`.

  `inversion` holds the optimiser settings (configs/inversion.py); its `space` is replaced by each
  of `spaces` and its `seed` by `inversion.seed + motion index`. `token` is formatted with the
  motion's index in the subset ("<mti-{index}>" -> "<mti-7>"); `template` must contain "<*>".
  """
  inversion: inversion.InversionSettings
  size: int = 100
  spaces: tuple[str, ...] = ("lead",)
  template: str = "a person <*>"
  init_word: str = "move"              # coarse one-word descriptor ("" = mean of the token table)
  token: str = "<mti-{index}>"
  guidance_scale: float = 7.5
  steps: int = 50                      # DDIM steps of generation


def select_subset(batches: Iterable[Mapping[str, Any]], mean: np.ndarray, std: np.ndarray,
                  size: int, seed: int) -> Split:
  """A uniformly random subset of `size` valid rows of one pass (seeded reservoir sampling, in
  stream order), as a `Split` whose `batches` is one batch of those rows."""
  if size < 1:
    raise InputError(f"the MTI subset size must be >= 1, found {size}")
  rng = np.random.default_rng(seed)
  picked: list[tuple[int, dict[str, np.ndarray]]] = []
  seen = 0
  for batch in batches:
    arrays = {k: np.asarray(v) for k, v in batch.items() if k in SUBSET_FIELDS}
    for i in np.flatnonzero(np.asarray(batch["valid"], bool)):
      row = {k: a[i] for k, a in arrays.items()}
      if len(picked) < size:
        picked.append((seen, row))
      else:
        j = int(rng.integers(0, seen + 1))
        if j < size:
          picked[j] = (seen, row)
      seen += 1
  if not picked:
    raise InputError("the evaluation split has no usable example (check data.eval_split and "
                     "data.min_len)")
  rows = [row for _, row in sorted(picked, key=lambda p: p[0])]
  t_max = max(r["motion"].shape[0] for r in rows)
  merged = {k: np.stack([r[k] for r in rows]) for k in rows[0] if k != "motion"}
  merged["motion"] = np.stack([np.pad(r["motion"], ((0, t_max - r["motion"].shape[0]), (0, 0)))
                               for r in rows])
  lengths = merged["length"].astype(np.int64)
  feats = (merged["motion"] * std + mean) * (np.arange(t_max)[None, :, None]
                                             < lengths[:, None, None])
  return Split([str(c) for c in merged["caption"]], lengths, feats.astype(np.float32), [merged])


def mti_row_names(space: str, has_projector: bool) -> list[str]:
  """Table-3 rows of one inversion space: without, then (when possible) with the projector."""
  return [f"MTI_{space}"] + ([f"MTI_{space} w/ project"] if has_projector else [])


def _mti_embeddings(embedder: Embedder, pipeline: Any, split: Split, replications: int,
                    mti: MTISettings, key: jax.Array, motions: list[dict[str, Any]],
                    progress: Callable[[str], None] | None) -> dict[str, np.ndarray]:
  """Per row name, evaluator embeddings `[N, replications, E]` of the motions generated with each
  motion's own token (its concept alone is passed to `encode_prompts`; nothing else knows it)."""
  n, t_max = len(split.lengths), split.gt_features.shape[1]
  variants = [False, True] if pipeline.has_projector else [False]
  generated: dict[str, np.ndarray] = {}
  for space in mti.spaces:
    names = mti_row_names(space, pipeline.has_projector)
    emb: dict[str, list[np.ndarray]] = {name: [] for name in names}
    inverter = inversion.Inverter(pipeline, dataclasses.replace(mti.inversion, space=space))
    for k in range(n):
      token, length = motions[k]["token"], int(split.lengths[k])
      run = inverter.invert([split.gt_features[k, :length]], token, mti.init_word or None,
                            seed=mti.inversion.seed + k)
      prompt = mti.template.replace(inversion.PLACEHOLDER, token)
      cond = pipeline.encode_prompts([prompt], [run.concept])  # once for both rows
      for name, use_projector in zip(names, variants):
        res = pipeline.generate([prompt], [length], jax.random.fold_in(key, k),
                                guidance_scale=mti.guidance_scale, steps=mti.steps,
                                use_projector=use_projector, num_samples=replications,
                                prompt_embeddings=cond)
        feats = np.asarray(res["features"], np.float32)
        feats = np.pad(feats, ((0, 0), (0, t_max - feats.shape[1]), (0, 0)))
        emb[name].append(embed_rows(embedder.embed_motion, feats, np.full(replications, length)))
      motions[k]["inversion"][space] = {
          "loss_first": float(run.losses[0]), "loss_last": float(run.losses[-1]),
          "fixed_batch_loss": [float(x) for x in run.eval_losses]}
      if progress is not None:
        progress(f"MTI_{space}: motion {k + 1}/{n} {token} ({split.captions[k]!r}): fixed-batch "
                 f"loss {run.eval_losses[0]:.4g} -> {run.eval_losses[1]:.4g}")
    for name in names:
      generated[name] = np.stack(emb[name])
  return generated


def evaluate_mti(embedder: Embedder, pipeline: Any, batches_fn: BatchesFn,
                 settings: ProtocolSettings, mti: MTISettings, mean: np.ndarray, std: np.ndarray,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
  """The paper's MTI protocol (Sec. 5.5, Table 3); returns `evaluate`'s result layout plus
  `motions` (id, caption, length, token and inversion losses of each subset motion).

  A seeded random subset of `mti.size` rows of one pass over the split (caption and crop drawn
  with `settings.seed`); for each motion and space, one token is learnt from that motion alone
  with `inversion.Inverter` (one compiled step per space) and used alone: its concept is passed to
  that motion's generation only. The motion's `settings.replications` samples come from
  `mti.template` with the token at the motion's length, with and without the projector (same
  noise, key `fold_in(key(seed), k)`). Per replication r: sample r of every motion, rows permuted
  with seed `seed + r`; R-precision and MM-Dist against the ground-truth caption embeddings, FID
  against the subset's ground-truth motions, diversity. Rows: 'Real' (no FID), then
  `mti_row_names` per space.
  """
  if inversion.PLACEHOLDER not in mti.template:
    raise ConfigError(f"the MTI template must contain {inversion.PLACEHOLDER!r}, found "
                      f"{mti.template!r}")
  if "{index}" not in mti.token:
    raise ConfigError(f"the MTI token pattern must contain '{{index}}', found {mti.token!r}")
  for space in mti.spaces:
    if space not in inversion.SPACES:
      raise ConfigError(f"MTI space must be one of {inversion.SPACES}, found {space!r}")
    if space == "lead" and not pipeline.has_projector:
      raise ConfigError("MTI space 'lead' needs the projector: give the projector's workdir, or "
                        "use the spaces mld / feat")
  if settings.replications < 1:
    raise ConfigError(f"replications must be >= 1, found {settings.replications}")
  split = select_subset(batches_fn(settings.seed), mean, std, mti.size, settings.seed)
  n = len(split.lengths)
  if n < 2:
    raise InputError(f"the MTI subset has {n} usable example(s); need at least 2")
  eff = effective_sizes(settings, n)
  text = embedder.embed_text(split.batches[0])
  gt = embed_rows(embedder.embed_motion, split.gt_features, split.lengths)
  ids = split.batches[0].get("id")
  motions = [{"id": str(ids[k]) if ids is not None else str(k), "caption": split.captions[k],
              "length": int(split.lengths[k]), "token": mti.token.format(index=k),
              "inversion": {}} for k in range(n)]
  generated = _mti_embeddings(embedder, pipeline, split, settings.replications, mti,
                              jax.random.key(settings.seed), motions, progress)
  per_row: dict[str, dict[str, list[float]]] = {"Real": {}, **{name: {} for name in generated}}
  for rep in range(settings.replications):
    rng = np.random.default_rng(settings.seed + rep)
    perm = rng.permutation(n)
    values = {"Real": replication_metrics(text[perm], gt[perm], gt, eff, rng)}
    del values["Real"]["FID"]  # Table 3 reports no FID for the ground truth
    for name, emb in generated.items():
      values[name] = replication_metrics(text[perm], emb[perm, rep], gt, eff, rng)
    for name, row in values.items():
      for k, v in row.items():
        per_row[name].setdefault(k, []).append(v)
  summary = {name: {k: dict(zip(("mean", "ci95"), scores.mean_and_ci(v)))
                    for k, v in rows.items()} for name, rows in per_row.items()}
  mti_settings = {"size": n, "requested_size": mti.size, "spaces": list(mti.spaces),
                  "template": mti.template, "init_word": mti.init_word, "token": mti.token,
                  "guidance_scale": mti.guidance_scale, "steps": mti.steps,
                  "inversion": mti.inversion.to_dict()}
  return {"settings": {**dataclasses.asdict(settings), "effective": eff, "mti": mti_settings},
          "rows": per_row, "summary": summary, "motions": motions}
