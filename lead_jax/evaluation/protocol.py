"""The T2M / MLD evaluation protocol (reference.md section 8.2): replications, tables, MModality.

One replication r (seed `seed + r`): an exact pass over the test split with one random caption and
crop per clip (the data stream's `eval_seed = seed + r`); embeddings of the ground-truth motions,
of the motions each method generates for those captions and lengths, and of the captions; all
rows permuted together; R-precision top-1..3 and MM-Dist in groups of 32, FID against the ground
truth, diversity over 300 pairs; MultiModality from `mm_prompts` captions x `mm_repeats`
generations, 10 pairs. Twenty replications give mean and 95% CI. The "Real" row is the evaluator
on ground truth (its FID compares two independent crops/captions of the test split).

Small splits (the embedded DeepMimic data) shrink the group size, diversity pairs and MModality
sizes to what the split allows; the sizes used are recorded in the result (`settings`).
The MTI protocol (Table 3) is `lead_jax.evaluation.mti`; tables are written by `report`.

  gen = pipeline_generator(Pipeline.from_workdir("runs/projector"), use_projector=True)
  result = evaluate(embedder, batches_fn, {"LEAD": gen}, ProtocolSettings(replications=20),
                    mean, std)
  report.write_report(result, "eval/")                 # table.md + table.json
  fast = Pipeline.from_workdir("runs/projector", denoiser_workdir="runs/lcm")
  methods = lcm_methods(fast, steps=(1, 2, 4))         # Table 5: MotionLCM / LEAD-MotionLCM rows
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

import jax
import ml_collections
import numpy as np

from lead_jax.errors import ConfigError, InputError
from lead_jax.metrics import scores
from lead_jax.metrics.embedders import Embedder
from lead_jax.train import inputs

# captions [B], lengths [B] (frames), key -> de-normalised features [B, T >= max(lengths), D]
GenerateFn = Callable[[list[str], np.ndarray, jax.Array], np.ndarray]
# replication seed -> iterable of eval batches (lead_jax.data eval-stream batches)
BatchesFn = Callable[[int], Iterable[Mapping[str, Any]]]



@dataclasses.dataclass(frozen=True)
class ProtocolSettings:
  replications: int = 20
  seed: int = 0
  group_size: int = 32
  top_k: int = 3
  diversity_times: int = 300
  mm_prompts: int = 100
  mm_repeats: int = 30
  mm_times: int = 10
  max_examples: int = 0      # 0: the whole split; N: the first N valid rows (MTI mini-subset)


class PromptEmbeddings:
  """The conditioning embeddings of captions under one pipeline's text encoder, each caption
  encoded once: the protocol generates from the same captions in every replication, for its
  MultiModality prompts and for every method over the pipeline, and at 1-4 sampling steps the text
  encoder is about 40% of a generation call (CLIP ViT-L/14, batch 32: `benchmarks/sampling.py
  --protocol`).

    table = PromptEmbeddings(pipe)
    emb = table(captions)                              # [N, E] float32
  Captions not yet seen are encoded (`Pipeline.encode_prompts`) in chunks of exactly `batch_size`
  (the last padded by repeating a caption): the text program's shapes are those of generation.
  """

  def __init__(self, pipeline: Any, batch_size: int = 64):
    self.pipeline = pipeline
    self.batch_size = int(batch_size)
    self._rows: dict[str, np.ndarray] = {}

  def __len__(self) -> int:
    return len(self._rows)

  def __call__(self, captions: Iterable[str]) -> np.ndarray:
    captions = list(captions)
    missing = list(dict.fromkeys(c for c in captions if c not in self._rows))
    for start in range(0, len(missing), self.batch_size):
      chunk = missing[start:start + self.batch_size]
      padded = chunk + chunk[:1] * (self.batch_size - len(chunk))
      self._rows.update(zip(chunk, self.pipeline.encode_prompts(padded)))
    width = int(self.pipeline.text_encoder.embed_dim)
    if not captions:
      return np.zeros((0, width), np.float32)
    return np.stack([self._rows[c] for c in captions])


def pipeline_generator(pipeline: Any, use_projector: bool, guidance_scale: float = 7.5,
                       steps: int = 50, batch_size: int = 64,
                       prompt_embeddings: PromptEmbeddings | None = None) -> GenerateFn:
  """A `GenerateFn` over `Pipeline.generate`: chunks of exactly `batch_size` prompts (the last one
  padded by repeating a prompt, its extra motions dropped), so generation compiles for one batch
  size whatever the number of items (and a few packed layouts: `lead_jax.models.packing`). The
  prompts' embeddings come from `prompt_embeddings` (each caption encoded once; pass one table to
  all the methods over the same pipeline), a new table if None."""
  if prompt_embeddings is None:
    prompt_embeddings = PromptEmbeddings(pipeline, batch_size)
  elif prompt_embeddings.pipeline.text_encoder is not pipeline.text_encoder:
    raise ConfigError("pipeline_generator: prompt_embeddings were made for another pipeline's "
                      "text encoder")

  def generate(captions, lengths, key):
    out, t_max = [], int(np.max(lengths))
    for i, start in enumerate(range(0, len(captions), batch_size)):
      caps = list(captions[start:start + batch_size])
      lens = [int(n) for n in lengths[start:start + batch_size]]
      count = len(caps)
      caps += caps[:1] * (batch_size - count)
      lens += lens[:1] * (batch_size - count)
      res = pipeline.generate(caps, lens, jax.random.fold_in(key, i),
                              guidance_scale=guidance_scale, steps=steps,
                              use_projector=use_projector,
                              prompt_embeddings=prompt_embeddings(caps))
      f = res["features"][:count]
      out.append(np.pad(f, ((0, 0), (0, t_max - f.shape[1]), (0, 0))))
    return np.concatenate(out)
  return generate


def lcm_methods(pipeline: Any, steps: tuple[int, ...] = (1, 2, 4), guidance_scale: float = 7.5,
                batch_size: int = 64, prompt_embeddings: PromptEmbeddings | None = None
                ) -> dict[str, GenerateFn]:
  """The rows of the paper's Table 5 from a pipeline whose denoiser is a consistency model
  (`Pipeline.from_workdir(projector_workdir, denoiser_workdir=lcm_workdir)`, or an LCM workdir):
  `MotionLCM (k steps)` (no projector) and, when the pipeline has a projector,
  `LEAD-MotionLCM (k steps)` (the projector round trip), for each k in `steps`, sampled with the
  LCM scheduler at `guidance_scale` (w = s - 1 embedded). The rows share `prompt_embeddings`
  (a new table if None; pass the Table 1 rows' table when the pipelines share a text encoder)."""
  if not pipeline.is_consistency_model:
    raise ConfigError(f"{pipeline.source or 'the pipeline'}: Table 5 needs a consistency-distilled "
                      "denoiser (an LCM stage's workdir, e.g. --lcm-workdir); this one is MLD's")
  methods: dict[str, GenerateFn] = {}
  table = PromptEmbeddings(pipeline, batch_size) if prompt_embeddings is None else prompt_embeddings
  for k in steps:
    label = f"({k} step{'s' if k > 1 else ''})"
    methods[f"MotionLCM {label}"] = pipeline_generator(pipeline, False, guidance_scale, k,
                                                       batch_size, table)
    if pipeline.has_projector:
      methods[f"LEAD-MotionLCM {label}"] = pipeline_generator(pipeline, True, guidance_scale, k,
                                                              batch_size, table)
  return methods


def stream_batches(config: ml_collections.ConfigDict, text_encoder: Any,
                   split: str = "test") -> BatchesFn:
  """A `BatchesFn` over the config's evaluation stream (`lead_jax.train.inputs`, either backend)
  with `data.eval_seed = seed`: the whole split on every process (the protocol's metrics need
  every row; several processes compute the same numbers)."""
  def batches(seed: int):
    cfg = config.copy_and_resolve_references()
    with cfg.unlocked():
      cfg.data.eval_seed = int(seed)
    return iter(inputs.make_eval_stream(cfg, text_encoder, split=split, process_index=0,
                                        process_count=1))

  return batches


@dataclasses.dataclass
class Split:
  """The valid rows of one pass: captions, token strings, lengths, GT features, text embeddings."""
  captions: list[str]
  lengths: np.ndarray
  gt_features: np.ndarray
  batches: list[dict[str, Any]]


def collect_split(batches: Iterable[Mapping[str, Any]], mean: np.ndarray, std: np.ndarray,
                  max_examples: int = 0) -> Split:
  """Valid rows of eval batches (motion de-normalised with the dataset `mean`/`std`)."""
  kept, captions, lengths, feats = [], [], [], []
  total = 0
  for batch in batches:
    valid = np.asarray(batch["valid"], bool)
    if max_examples:
      valid &= np.cumsum(valid) + total <= max_examples
    if not valid.any():
      continue
    total += int(valid.sum())
    rows = {k: np.asarray(v)[valid] for k, v in batch.items() if k in
            ("motion", "length", "text_emb", "tokens", "caption", "id")}
    kept.append(rows)
    captions += [str(c) for c in rows["caption"]]
    lengths.append(rows["length"].astype(np.int64))
    feats.append(rows["motion"] * std + mean)
  if not kept:
    raise InputError("the evaluation split has no usable example (check data.eval_split and "
                     "data.min_len)")
  t_max = max(f.shape[1] for f in feats)
  feats = [np.pad(f, ((0, 0), (0, t_max - f.shape[1]), (0, 0))) for f in feats]
  return Split(captions, np.concatenate(lengths), np.concatenate(feats).astype(np.float32), kept)


def embed_rows(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], features: np.ndarray,
                lengths: np.ndarray, batch_size: int = 64, frame_bucket: int = 64) -> np.ndarray:
  """`fn(features, lengths)` over `[N, T, D]` in chunks of exactly `batch_size` rows (the last one
  padded by repeating its first row) with frames padded to a multiple of `frame_bucket`, so the
  evaluator compiles once or twice per run whatever N and T; frames past each length are zero."""
  frames = -(-features.shape[1] // frame_bucket) * frame_bucket
  features = np.pad(features, ((0, 0), (0, frames - features.shape[1]), (0, 0)))
  out = []
  for s in range(0, len(lengths), batch_size):
    f, l = features[s:s + batch_size], lengths[s:s + batch_size]
    count, pad = len(l), batch_size - len(l)
    f, l = np.concatenate([f, np.repeat(f[:1], pad, 0)]), np.concatenate([l, np.repeat(l[:1], pad)])
    out.append(np.asarray(fn(f * (np.arange(frames)[None, :, None] < l[:, None, None]), l))[:count])
  return np.concatenate(out)


def effective_sizes(settings: ProtocolSettings, n: int) -> dict[str, int]:
  group = min(settings.group_size, n)
  return {"group_size": group, "top_k": min(settings.top_k, group),
          "diversity_times": min(settings.diversity_times, n - 1),
          "mm_prompts": min(settings.mm_prompts, n),
          "mm_repeats": settings.mm_repeats,
          "mm_times": min(settings.mm_times, max(settings.mm_repeats - 1, 0))}


def replication_metrics(text: np.ndarray, motion: np.ndarray, gt: np.ndarray,
                        eff: Mapping[str, int], rng: np.random.Generator) -> dict[str, float]:
  """R@k, MM-Dist, FID (vs `gt`), diversity of `motion` (rows already permuted)."""
  r = scores.r_precision(text, motion, eff["top_k"], eff["group_size"])
  out = {f"R@{k + 1}": v for k, v in enumerate(r)}
  out["MM-Dist"] = scores.mm_dist(text, motion, eff["group_size"])
  out["FID"] = scores.fid(gt, motion)
  out["Diversity"] = scores.diversity(motion, eff["diversity_times"], rng)
  return out


def evaluate(embedder: Embedder, batches_fn: BatchesFn, methods: Mapping[str, GenerateFn],
             settings: ProtocolSettings, mean: np.ndarray, std: np.ndarray,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
  """Runs the protocol; returns `{'settings', 'rows': {name: {metric: [values]}}, 'summary'}`.

  Rows: 'Real' then `methods` in order. Deterministic for fixed `settings.seed`.
  """
  per_row: dict[str, dict[str, list[float]]] = {"Real": {}}
  for name in methods:
    per_row[name] = {}
  eff = None
  for rep in range(settings.replications):
    seed = settings.seed + rep
    rng = np.random.default_rng(seed)
    key = jax.random.fold_in(jax.random.key(settings.seed), rep)
    split = collect_split(batches_fn(seed), mean, std, settings.max_examples)
    n = len(split.lengths)
    if n < 2:
      raise InputError(f"the evaluation split has {n} usable example(s); need at least 2")
    eff = effective_sizes(settings, n)
    text = np.concatenate([embedder.embed_text(b) for b in split.batches])
    gt = embed_rows(embedder.embed_motion, split.gt_features, split.lengths)
    # Real-row FID: a second, independent pass (other captions and crops) of the ground truth.
    other = collect_split(batches_fn(seed + 1_000_003), mean, std, settings.max_examples)
    gt_other = embed_rows(embedder.embed_motion, other.gt_features, other.lengths)
    perm = rng.permutation(n)
    real = replication_metrics(text[perm], gt[perm], gt_other, eff, rng)
    for k, v in real.items():
      per_row["Real"].setdefault(k, []).append(v)
    for m_index, (name, generate) in enumerate(methods.items()):
      mkey = jax.random.fold_in(key, m_index)
      feats = generate(split.captions, split.lengths, jax.random.fold_in(mkey, 0))
      emb = embed_rows(embedder.embed_motion, np.asarray(feats, np.float32), split.lengths)
      values = replication_metrics(text[perm], emb[perm], gt, eff, rng)
      if eff["mm_prompts"] >= 1 and eff["mm_times"] >= 1:
        pick = rng.choice(n, eff["mm_prompts"], replace=False)
        caps = [split.captions[i] for i in pick for _ in range(eff["mm_repeats"])]
        lens = np.repeat(split.lengths[pick], eff["mm_repeats"])
        mm_feats = generate(caps, lens, jax.random.fold_in(mkey, 1))
        mm_emb = embed_rows(embedder.embed_motion, np.asarray(mm_feats, np.float32), lens)
        values["MModality"] = scores.multimodality(
            mm_emb.reshape(eff["mm_prompts"], eff["mm_repeats"], -1), eff["mm_times"], rng)
      for k, v in values.items():
        per_row[name].setdefault(k, []).append(v)
    if progress is not None:
      progress(f"replication {rep + 1}/{settings.replications}: " + ", ".join(
          f"{name} FID {rows['FID'][-1]:.3f} R@1 {rows['R@1'][-1]:.3f}"
          for name, rows in per_row.items()))
  summary = {name: {k: dict(zip(("mean", "ci95"), scores.mean_and_ci(v)))
                    for k, v in rows.items()} for name, rows in per_row.items()}
  return {"settings": {**dataclasses.asdict(settings), "effective": eff}, "rows": per_row,
          "summary": summary}


def select_rows(result: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
  """`evaluate`'s result restricted to the 'Real' row and the rows `names` (in that order): one
  protocol pass scoring several tables' methods on the same replications, written as separate
  tables. Raises `InputError` for a name the result does not have."""
  names = ["Real", *[n for n in names if n != "Real"]]
  missing = [n for n in names if n not in result["rows"]]
  if missing:
    raise InputError(f"select_rows: no row(s) {missing} in the result (rows: {list(result['rows'])})")
  return {**result, "rows": {n: result["rows"][n] for n in names},
          "summary": {n: result["summary"][n] for n in names}}

