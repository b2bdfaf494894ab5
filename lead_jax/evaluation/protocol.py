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

MTI (paper Sec. 5.5, Table 3; `evaluate_mti`): a seeded random subset of the split; for each of its
motions one placeholder token is learnt from that motion alone (`lead_jax.inversion.invert`, the
text encoder's vocabulary restored afterwards) and motions are generated from a template prompt
holding it, without and with the projector; R@3, FID, MM-Dist and diversity against the subset's
ground truth (text = each motion's ground-truth caption).

  gen = pipeline_generator(Pipeline.from_workdir("runs/projector"), use_projector=True)
  result = evaluate(evaluator, batches_fn, {"LEAD": gen}, ProtocolSettings(replications=20))
  write_report(result, "eval/")                        # table.md + table.json
  result = evaluate_mti(evaluator, pipe, batches_fn, ProtocolSettings(replications=20),
                        MTISettings(InversionSettings(), size=100, spaces=("lead", "mld")), mean, std)
  write_report(result, "eval/", TABLE3_COLUMNS)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import pathlib
import tempfile
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import jax
import numpy as np

from lead_jax.errors import ConfigError, InputError
from lead_jax.metrics import scores

# captions [B], lengths [B] (frames), key -> de-normalised features [B, T >= max(lengths), D]
GenerateFn = Callable[[list[str], np.ndarray, jax.Array], np.ndarray]
# replication seed -> iterable of eval batches (lead_jax.data eval-stream batches)
BatchesFn = Callable[[int], Iterable[Mapping[str, Any]]]

TABLE1_COLUMNS = ("R@1", "R@2", "R@3", "FID", "MM-Dist", "Diversity", "MModality")
TABLE3_COLUMNS = ("R@3", "FID", "MM-Dist", "Diversity")


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


def pipeline_generator(pipeline: Any, use_projector: bool, guidance_scale: float = 7.5,
                       steps: int = 50, batch_size: int = 64) -> GenerateFn:
  """A `GenerateFn` over `Pipeline.generate` (chunks of `batch_size` prompts)."""
  def generate(captions, lengths, key):
    out, t_max = [], int(np.max(lengths))
    for i, start in enumerate(range(0, len(captions), batch_size)):
      sl = slice(start, start + batch_size)
      res = pipeline.generate(list(captions[sl]), [int(n) for n in lengths[sl]],
                              jax.random.fold_in(key, i), guidance_scale=guidance_scale,
                              steps=steps, use_projector=use_projector)
      f = res["features"]
      out.append(np.pad(f, ((0, 0), (0, t_max - f.shape[1]), (0, 0))))
    return np.concatenate(out)
  return generate


def stream_batches(config: Any, text_encoder: Any, split: str = "test") -> BatchesFn:
  """A `BatchesFn` over `lead_jax.data.make_eval_stream` with `data.eval_seed = seed`."""
  from lead_jax import data  # pylint: disable=import-outside-toplevel

  def batches(seed: int):
    cfg = config.copy_and_resolve_references() if hasattr(config, "copy_and_resolve_references") \
        else config
    with cfg.unlocked() if hasattr(cfg, "unlocked") else _null():
      cfg.data.eval_seed = int(seed)
    return iter(data.make_eval_stream(cfg, text_encoder, split=split))

  return batches


class _null:
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


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


def _embed_rows(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], features: np.ndarray,
                lengths: np.ndarray, batch_size: int = 64) -> np.ndarray:
  out = []
  for s in range(0, len(lengths), batch_size):
    f, l = features[s:s + batch_size], lengths[s:s + batch_size]
    out.append(fn(f * (np.arange(f.shape[1])[None, :, None] < l[:, None, None]), l))
  return np.concatenate(out)


def _effective(settings: ProtocolSettings, n: int) -> dict[str, int]:
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
    eff = _effective(settings, n)
    text = np.concatenate([embedder.embed_text(b) for b in split.batches])
    gt = _embed_rows(embedder.embed_motion, split.gt_features, split.lengths)
    # Real-row FID: a second, independent pass (other captions and crops) of the ground truth.
    other = collect_split(batches_fn(seed + 1_000_003), mean, std, settings.max_examples)
    gt_other = _embed_rows(embedder.embed_motion, other.gt_features, other.lengths)
    perm = rng.permutation(n)
    real = replication_metrics(text[perm], gt[perm], gt_other, eff, rng)
    for k, v in real.items():
      per_row["Real"].setdefault(k, []).append(v)
    for m_index, (name, generate) in enumerate(methods.items()):
      mkey = jax.random.fold_in(key, m_index)
      feats = generate(split.captions, split.lengths, jax.random.fold_in(mkey, 0))
      emb = _embed_rows(embedder.embed_motion, np.asarray(feats, np.float32), split.lengths)
      values = replication_metrics(text[perm], emb[perm], gt, eff, rng)
      if eff["mm_prompts"] >= 1 and eff["mm_times"] >= 1:
        pick = rng.choice(n, eff["mm_prompts"], replace=False)
        caps = [split.captions[i] for i in pick for _ in range(eff["mm_repeats"])]
        lens = np.repeat(split.lengths[pick], eff["mm_repeats"])
        mm_feats = generate(caps, lens, jax.random.fold_in(mkey, 1))
        mm_emb = _embed_rows(embedder.embed_motion, np.asarray(mm_feats, np.float32), lens)
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


# ---- motion textual inversion (paper Sec. 5.5, Table 3) --------------------------------------------
SUBSET_FIELDS = ("motion", "length", "text_emb", "tokens", "caption", "id")


@dataclasses.dataclass(frozen=True)
class MTISettings:
  """The MTI protocol: one token learnt per subset motion, then generation from `template`.

  `inversion` holds the optimiser settings (configs/inversion.py); its `space` is replaced by each
  of `spaces` and its `seed` by `inversion.seed + motion index`. `token` is formatted with the
  motion's index in the subset ("<mti-{index}>" -> "<mti-7>"); `template` must contain "<*>".
  """
  inversion: Any                       # lead_jax.inversion.InversionSettings
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


@contextlib.contextmanager
def isolated_tokens(text_encoder: Any) -> Iterator[None]:
  """Restores the encoder's tokenizer and placeholder rows on exit: tokens added (and embeddings
  set) inside the block are forgotten, so the next block gets the same fresh vocabulary and ids."""
  tokenizer = copy.deepcopy(text_encoder.tokenizer)
  extra = np.array(text_encoder.extra_embeddings, copy=True)
  try:
    yield
  finally:
    text_encoder.tokenizer = tokenizer
    text_encoder.extra_embeddings = extra


_CACHE_OPTIONS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                  "jax_persistent_cache_min_entry_size_bytes")


@contextlib.contextmanager
def persistent_compile_cache(directory: str | pathlib.Path | None = None) -> Iterator[None]:
  """JAX's persistent compilation cache in `directory` for the block (a temporary folder when
  None, unless JAX already has a cache folder configured); earlier settings come back on exit.

  `inversion.invert` jits a fresh step per call, so the in-memory cache misses on every motion;
  the steps of two motions lower to the same HLO, which this cache recognises (one compile in
  total instead of one per motion).
  """
  from jax.experimental.compilation_cache import compilation_cache  # pylint: disable=import-outside-toplevel
  if directory is None and jax.config.jax_compilation_cache_dir:
    yield
    return
  old = {name: getattr(jax.config, name) for name in _CACHE_OPTIONS}
  with contextlib.ExitStack() as stack:
    if directory is None:
      directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="lead_jax_mti_"))
    pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compilation_cache.reset_cache()
    try:
      yield
    finally:
      for name, value in old.items():
        jax.config.update(name, value)
      compilation_cache.reset_cache()


def mti_row_names(space: str, has_projector: bool) -> list[str]:
  """Table-3 rows of one inversion space: without, then (when possible) with the projector."""
  return [f"MTI_{space}"] + ([f"MTI_{space} w/ project"] if has_projector else [])


def _mti_embeddings(embedder: Embedder, pipeline: Any, split: Split, replications: int,
                    mti: MTISettings, key: jax.Array, motions: list[dict[str, Any]],
                    progress: Callable[[str], None] | None) -> dict[str, np.ndarray]:
  """Per row name, evaluator embeddings `[N, replications, E]` of the motions generated with each
  motion's own token (learnt, used and forgotten inside `isolated_tokens`)."""
  from lead_jax import inversion  # pylint: disable=import-outside-toplevel
  n, t_max = len(split.lengths), split.gt_features.shape[1]
  variants = [False, True] if pipeline.has_projector else [False]
  generated: dict[str, np.ndarray] = {}
  for space in mti.spaces:
    names = mti_row_names(space, pipeline.has_projector)
    emb: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for k in range(n):
      token, length = motions[k]["token"], int(split.lengths[k])
      inv_settings = dataclasses.replace(mti.inversion, space=space, seed=mti.inversion.seed + k)
      with isolated_tokens(pipeline.text_encoder):
        run = inversion.invert(pipeline, [split.gt_features[k, :length]], token,
                               mti.init_word or None, inv_settings)
        prompt = mti.template.replace(inversion.PLACEHOLDER, token)
        for name, use_projector in zip(names, variants):
          res = pipeline.generate([prompt], [length], jax.random.fold_in(key, k),
                                  guidance_scale=mti.guidance_scale, steps=mti.steps,
                                  use_projector=use_projector, num_samples=replications)
          feats = np.asarray(res["features"], np.float32)
          feats = np.pad(feats, ((0, 0), (0, t_max - feats.shape[1]), (0, 0)))
          emb[name].append(_embed_rows(embedder.embed_motion, feats,
                                       np.full(replications, length)))
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
                 progress: Callable[[str], None] | None = None,
                 compile_cache: str | pathlib.Path | None = None) -> dict[str, Any]:
  """The paper's MTI protocol (Sec. 5.5, Table 3); returns `evaluate`'s result layout plus
  `motions` (id, caption, length, token and inversion losses of each subset motion).

  A seeded random subset of `mti.size` rows of one pass over the split (caption and crop drawn
  with `settings.seed`); for each motion and space, one token is learnt from that motion alone
  with `inversion.invert` and used alone: the text encoder's vocabulary and placeholder rows are
  restored after each motion. The motion's `settings.replications` samples come from
  `mti.template` with the token at the motion's length, with and without the projector (same
  noise, key `fold_in(key(seed), k)`). Per replication r: sample r of every motion, rows permuted
  with seed `seed + r`; R-precision and MM-Dist against the ground-truth caption embeddings, FID
  against the subset's ground-truth motions, diversity. Rows: 'Real' (no FID), then
  `mti_row_names` per space. The inversions run under `persistent_compile_cache(compile_cache)`.
  """
  from lead_jax import inversion  # pylint: disable=import-outside-toplevel
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
  eff = _effective(settings, n)
  text = embedder.embed_text(split.batches[0])
  gt = _embed_rows(embedder.embed_motion, split.gt_features, split.lengths)
  ids = split.batches[0].get("id")
  motions = [{"id": str(ids[k]) if ids is not None else str(k), "caption": split.captions[k],
              "length": int(split.lengths[k]), "token": mti.token.format(index=k),
              "inversion": {}} for k in range(n)]
  with persistent_compile_cache(compile_cache):
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


def markdown_table(result: Mapping[str, Any], columns: Sequence[str] = TABLE1_COLUMNS,
                   title: str = "") -> str:
  """Table-1-style Markdown: one row per method, `mean ±ci` per metric ('-' when absent)."""
  arrows = {"FID": "↓", "MM-Dist": "↓", "Diversity": "→", "MModality": "↑"}
  head = ["Method"] + [f"{c} {arrows.get(c, '↑')}" for c in columns]
  lines = ([f"### {title}", ""] if title else []) + [
      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, row in result["summary"].items():
    cells = [name]
    for c in columns:
      cell = row.get(c)
      if cell is None or (name == "Real" and c == "MModality"):
        cells.append("-")
      else:
        cells.append(f"{cell['mean']:.3f} ±{cell['ci95']:.3f}")
    lines.append("| " + " | ".join(cells) + " |")
  s = result["settings"]
  eff = s.get("effective") or {}
  footer = (f"{s['replications']} replications, seed {s['seed']}; mean ±95% CI (1.96·std/√n). "
            f"R-precision groups of {eff.get('group_size')}, diversity "
            f"{eff.get('diversity_times')} pairs")
  if "MModality" in columns:
    footer += (f", MModality {eff.get('mm_prompts')} prompts × {eff.get('mm_repeats')} samples, "
               f"{eff.get('mm_times')} pairs")
  lines += ["", footer + "."]
  mti = s.get("mti")
  if mti:
    inv = mti["inversion"]
    lines += ["", f"MTI: one token learnt per motion ({mti['size']} test motions, subset seed "
              f"{s['seed']}) in space(s) {', '.join(mti['spaces'])}: {inv['steps']} Adam steps, lr "
              f"{inv['learning_rate']}, batch {inv['batch_size']} segments of {inv['segment_frames']} "
              f"frames, init word {mti['init_word']!r}; generated from {mti['template']!r} at the "
              f"motion's length ({mti['steps']} DDIM steps, guidance {mti['guidance_scale']}); text "
              "= the ground-truth caption; 'w/ project' = through the projector. Real has no FID "
              "(the generated rows' FID is against these ground-truth motions)."]
  return "\n".join(lines) + "\n"


def write_report(result: Mapping[str, Any], out_dir: str | pathlib.Path,
                 columns: Sequence[str] = TABLE1_COLUMNS, title: str = "", stem: str = "table"
                 ) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes `<stem>.md` and `<stem>.json` (full per-replication values) into `out_dir`."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  md, js = out / f"{stem}.md", out / f"{stem}.json"
  md.write_text(markdown_table(result, columns, title))
  js.write_text(json.dumps(result, indent=2, sort_keys=False, default=float))
  return md, js
