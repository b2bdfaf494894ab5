"""The Bandai Namco study (`lead-jax study bandai`): real motion capture, every stage trained from
scratch, the paper's claims measured at small scale; one command that resumes where it stopped.

  summary = run_study("study", "../shared/data/bandai")                      # scale 'full'
  summary = run_study("quick", "../shared/data/bandai", scale="quick", steps=("data", "vae"))

Steps (`STEPS`, run in this order; each is a function `step(study) -> outputs`):
  data       clips chosen for the scale, retargeted to the 22-joint skeleton at 20 fps, captioned
             with paraphrases, split by take; the held-out style kept apart (`_run_data`)
  evaluator  the trainable evaluator on the train split; its Real row (the protocol of
             `lead-jax evaluate`) and how well its embeddings separate contents and styles
  vae, denoiser, projector, lcm   the stages with the study configs (`configs/study_bandai_*`;
             denoiser and projector on the latent cache, the LCM student distilled from the
             study denoiser)
  evaluate   Table 1 (Real, MLD, LEAD) and Table 5 (MotionLCM / LEAD-MotionLCM at 1, 2, 4 steps):
             the protocol of `lead-jax evaluate` on the test split with the study's evaluator,
             one pass scoring both tables' methods on the same replications
  ablations  Table 6: the projector variants of `study.ablations` (`ABLATIONS`), LEAD rows
  tsne       Fig. 2: VAE vs projector latents of the test clips by content and by style
  mti        Tables 3/4: one token of the held-out style per objective (lead, mld, feat), scored
             against the style's held-out test clips (FID, style retrieval)
  report     results/bandai.md from the outputs of the finished steps

OUT layout:
  study.json        scale, Bandai folder, commit (a rerun must ask for the same scale)
  steps.json        per finished step: wall seconds, when, outputs (a finished step is skipped on
                    rerun; an interrupted one restarts, training resuming from its checkpoints)
  time_log.md       the per-step time log of the last run (also printed)
  raw/              dataset-2-more.tar.xz unpacked (full scale)
  data/             the dataset (HumanML3D layout, `heldout_*.txt`, `labels.json`)
  text_cache/       MiniLM caption embeddings, shared by the stages
  xla_cache/        compiled XLA programs (`use_compilation_cache`), reused across steps and reruns
  workdirs/<stage>/ checkpoints, metrics.jsonl, tensorboard
  results/          evaluator.{json,md}, evaluate.{json,md}, ablations.md + ablations/<v>.json,
                    fig2_{content,style}.{png,json,npz}, mti.{json,md}, bandai.md

The Bandai Namco Research Motion Dataset is CC BY-NC 4.0 (Bandai Namco Research Inc.; attribution
required, non-commercial use only); nothing of it enters the repository.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from lead_jax.config_loader import load_config
from lead_jax.data import layout
from lead_jax.errors import ConfigError, InputError, MissingFileError
from lead_jax.evaluation import latents, protocol, report, tsne
from lead_jax.generate import Pipeline
from lead_jax.io import captions, importer
from lead_jax.metrics import scores
from lead_jax.metrics.embedders import TrainedEmbedder
from lead_jax.train import stage as stage_lib
from lead_jax.train import train_stage
from lead_jax.train.inversion import Inverter, InversionSettings
from lead_jax.workdir import load_trained_evaluator

STEPS = ("data", "evaluator", "vae", "denoiser", "projector", "lcm", "evaluate", "ablations",
         "tsne", "mti", "report")
# What each step reads from earlier ones (a requested step whose prerequisite never finished is a
# ConfigError naming it).
PREREQUISITES: dict[str, tuple[str, ...]] = {
    "data": (), "evaluator": ("data",), "vae": ("data",), "denoiser": ("vae",),
    "projector": ("vae", "denoiser"), "lcm": ("denoiser",),
    "evaluate": ("evaluator", "projector", "lcm"), "ablations": ("evaluator", "projector"),
    "tsne": ("projector",), "mti": ("evaluator", "projector"), "report": ("data",),
}
STUDY_CONFIG = "configs/study_bandai.py"
# Table 6 variants (`study.ablations` picks which run): overrides of the study projector config
# (`lead_jax.models.projector` arch; `lead_jax.train.projector` loss weights, 0 = term off).
ABLATIONS: dict[str, dict[str, Any]] = {
    "transformer": {},                    # the study projector, retrained at the ablation budget
    "skip": {"projector.arch": "skip"},
    "mlp": {"projector.arch": "mlp"},
    "noKL": {"loss.w_kl": 0.0},
    "noREC": {"loss.w_rec": 0.0},
    "noALIGN": {"loss.w_align": 0.0},
}
TRAINED_STAGES = ("evaluator", "vae", "denoiser", "projector")


def _log(message: str) -> None:
  print(f"[study] {message}", flush=True)


def _repo_file(relative: str) -> pathlib.Path:
  """A file of the repository (configs live beside the package)."""
  return pathlib.Path(__file__).resolve().parents[2] / relative


def _write_json(path: pathlib.Path, value: Any) -> None:
  """Writes JSON atomically (a temporary file renamed over `path`)."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(value, indent=2, default=float) + "\n")
  os.replace(tmp, path)


def _commit() -> str | None:
  """The repository's commit (with `+dirty` when files changed), None outside a git checkout."""
  root = _repo_file(".")
  try:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                           text=True, check=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return head + ("+dirty" if dirty else "")


@dataclasses.dataclass
class Study:
  """One study folder: where things go, the study config, the Bandai source, shared resources."""
  out: pathlib.Path
  bandai_dir: pathlib.Path
  config: ml_collections.ConfigDict   # configs/study_bandai.py get_config(scale)
  records: dict[str, dict] = dataclasses.field(default_factory=dict)  # steps.json
  _text_encoder: Any = None

  @property
  def scale(self) -> str:
    return self.config.scale

  @property
  def data_dir(self) -> pathlib.Path:
    return self.out / "data"

  @property
  def raw_dir(self) -> pathlib.Path:
    return self.out / "raw"

  @property
  def results_dir(self) -> pathlib.Path:
    return self.out / "results"

  def workdir(self, stage: str) -> pathlib.Path:
    return self.out / "workdirs" / stage

  def relative(self, path: pathlib.Path) -> str:
    return str(pathlib.Path(path).relative_to(self.out))

  def stage_config(self, stage: str) -> ml_collections.ConfigDict:
    """The study config of a trained stage at this scale, reading OUT/data, chained to OUT's
    workdirs, its caption embeddings cached in OUT/text_cache."""
    path = self.config.stage_configs[stage]
    config = load_config(f"{_repo_file(path)}:{self.scale}")
    config.data.dir = str(self.data_dir)
    config.data.text_cache_dir = str(self.out / "text_cache")
    if stage in ("denoiser", "projector", "lcm"):
      config.dependencies.vae_workdir = str(self.workdir("vae"))
    if stage in ("projector", "lcm"):
      config.dependencies.denoiser_workdir = str(self.workdir("denoiser"))
    return config

  def text_encoder(self, config: ml_collections.ConfigDict) -> Any:
    """The frozen MiniLM caption encoder, loaded once per study run."""
    if self._text_encoder is None:
      self._text_encoder = stage_lib.load_text_encoder(config)
    return self._text_encoder


# ----------------------------------------------------------------------------------------------
# Step `data`.


def unpack_archive(archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
  """Unpacks `archive` (.tar.xz) into `dest` once (a `.complete` marker; a partial unpack is
  redone); returns `dest`."""
  marker = dest / ".complete"
  if marker.exists():
    return dest
  if not archive.is_file():
    raise MissingFileError(f"Bandai archive not found: {archive}")
  if dest.exists():
    shutil.rmtree(dest)
  dest.mkdir(parents=True)
  with tarfile.open(archive, "r:*") as tar:
    members = tar.getmembers()
    for member in tqdm(members, desc=f"unpack {archive.name}", unit="file"):
      tar.extract(member, dest, filter="data")
  marker.write_text(f"{archive}\n")
  return dest


def source_files(study: Study) -> list[pathlib.Path]:
  """The BVH files of the configured sources (dataset-2-more unpacked into OUT/raw when used)."""
  cfg, root = study.config, study.bandai_dir
  files: list[pathlib.Path] = []
  for source in cfg.sources:
    folder = root / source / "data"
    if not folder.is_dir():
      raise MissingFileError(f"Bandai source {source!r}: {folder} not found (is --bandai the "
                             f"folder holding dataset-1/, dataset-2/ and {cfg.archive}?)")
    files += sorted(folder.glob("*.bvh"))
  if cfg.use_archive:
    unpacked = unpack_archive(root / cfg.archive, study.raw_dir / pathlib.Path(cfg.archive).name
                              .removesuffix(".tar.xz"))
    files += sorted(unpacked.rglob("*.bvh"))
  stems = collections.Counter(f.stem for f in files)
  duplicates = [s for s, n in stems.items() if n > 1]
  if duplicates:
    raise InputError(f"Bandai files with the same name in several sources: {duplicates[:5]}")
  return files


def _hash_order(stem: str, seed: int) -> str:
  return hashlib.sha1(f"{seed}:{stem}".encode("utf-8")).hexdigest()


def select_clips(files: Sequence[pathlib.Path], cfg: ml_collections.ConfigDict
                 ) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
  """(training clips, held-out clips) of the scale: `clips_per_group` per (dataset, content,
  style) in a seeded hash order (0 = all); held out = the style `heldout_style` or an alias."""
  groups: dict[tuple, list[pathlib.Path]] = collections.defaultdict(list)
  for f in files:
    label = captions.parse_bandai_stem(f.stem)
    groups[(label.dataset, label.content, label.style)].append(f)
  heldout_styles = {cfg.heldout_style, *cfg.heldout_aliases}
  keep, held = [], []
  for (_, _, style), group in sorted(groups.items()):
    group = sorted(group, key=lambda f: _hash_order(f.stem, cfg.seed))
    if cfg.clips_per_group:
      group = group[:cfg.clips_per_group]
    (held if style in heldout_styles else keep).extend(group)
  if not any(captions.parse_bandai_stem(f.stem).style == cfg.heldout_style for f in held):
    raise ConfigError(f"study.heldout_style {cfg.heldout_style!r}: no clip of that style in the "
                      f"sources {tuple(cfg.sources)}")
  return sorted(keep), sorted(held)


def heldout_lists(ids: Sequence[str], cfg: ml_collections.ConfigDict
                  ) -> dict[str, list[str]]:
  """The held-out split files: `heldout_examples` (one clip of `heldout_style` per content of
  `heldout_example_contents`, then any, in seeded hash order), `heldout_test` (the other clips of
  that style) and `heldout_aliases` (clips of the alias styles)."""
  main = sorted((i for i in ids if captions.parse_bandai_stem(i).style == cfg.heldout_style),
                key=lambda i: _hash_order(i, cfg.seed))
  examples: list[str] = []
  for content in cfg.heldout_example_contents:
    found = [i for i in main if captions.parse_bandai_stem(i).content == content
             and i not in examples]
    if found and len(examples) < cfg.heldout_examples:
      examples.append(found[0])
  for i in main:
    if len(examples) >= cfg.heldout_examples:
      break
    if i not in examples:
      examples.append(i)
  if len(examples) < cfg.heldout_examples or len(main) <= len(examples):
    raise InputError(f"held-out style {cfg.heldout_style!r}: {len(main)} clips imported, need "
                     f"{cfg.heldout_examples} examples and at least one test clip")
  return {"heldout_examples": sorted(examples),
          "heldout_test": sorted(i for i in main if i not in examples),
          "heldout_aliases": sorted(i for i in ids if i not in main)}


def _base_id(clip_id: str) -> str:
  """The take of a clip id: mirrored copies `M<id>` belong to `<id>`."""
  return clip_id[1:] if clip_id.startswith("Mdataset-") else clip_id


def clip_labels(data_dir: pathlib.Path, split_names: Sequence[str]) -> dict[str, dict]:
  """{id: {dataset, content, style, take, split}} of every id listed in `split_names`; raises
  InputError if a take is listed in two splits."""
  labels: dict[str, dict] = {}
  split_of_take: dict[str, str] = {}
  for name in split_names:
    for clip_id in layout.read_split_ids(data_dir, name):
      take = _base_id(clip_id)
      if split_of_take.setdefault(take, name) != name:
        raise InputError(f"take {take} is in splits {split_of_take[take]!r} and {name!r}")
      label = captions.parse_bandai_stem(take)
      labels[clip_id] = {**dataclasses.asdict(label), "split": name}
  return labels


def _move_clips(src: pathlib.Path, dst: pathlib.Path, ids: Sequence[str]) -> None:
  for sub, suffix in (("new_joint_vecs", ".npy"), ("new_joints", ".npy"), ("texts", ".txt")):
    for clip_id in ids:
      os.replace(src / sub / f"{clip_id}{suffix}", dst / sub / f"{clip_id}{suffix}")


def _counts(labels: Mapping[str, dict], split: str, key: str) -> dict[str, int]:
  return dict(sorted(collections.Counter(v[key] for v in labels.values()
                                         if v["split"] == split).items()))


def _run_data(study: Study) -> dict:
  """Imports the clips of the scale into OUT/data (written to OUT/data.partial, then renamed)."""
  cfg = study.config
  files = source_files(study)
  train_files, held_files = select_clips(files, cfg)
  _log(f"data: {len(files)} Bandai files; importing {len(train_files)} for training and "
       f"{len(held_files)} held out (styles {cfg.heldout_style}, {', '.join(cfg.heldout_aliases)})")
  partial = study.out / "data.partial"
  if partial.exists():
    shutil.rmtree(partial)
  options = {"joint_map": cfg.joint_map, "unit": None}
  captioner = captions.get_captioner(cfg.captions)
  start = time.time()
  common = dict(options=options, min_len=cfg.min_len, mirror=cfg.mirror, seed=cfg.seed,
                workers=cfg.workers, progress=True)
  main = importer.import_clips("bvh", train_files, partial, captioner, **common)
  held = importer.import_clips("bvh", held_files, partial / "heldout.partial", captioner,
                               **common)
  import_seconds = time.time() - start
  held_ids = sorted(held["kept"])
  _move_clips(partial / "heldout.partial", partial, held_ids)
  shutil.rmtree(partial / "heldout.partial")
  lists = heldout_lists(held_ids, cfg)
  for name, ids in lists.items():
    (partial / f"{name}.txt").write_text("".join(i + "\n" for i in ids))
  labels = clip_labels(partial, ("train", "val", "test") + tuple(lists))
  heldout_styles = {cfg.heldout_style, *cfg.heldout_aliases}
  leaked = [i for i, v in labels.items()
            if v["split"] in ("train", "val", "test") and v["style"] in heldout_styles]
  if leaked:
    raise InputError(f"held-out clips in the training splits: {leaked[:5]}")
  _write_json(partial / "labels.json", labels)
  if study.data_dir.exists():
    shutil.rmtree(study.data_dir)
  os.replace(partial, study.data_dir)

  lengths = np.array([main["kept"][i] for i in main["kept"]] + [held["kept"][i] for i in held_ids])
  skipped = {**main["skipped"], **held["skipped"], **main["failures"], **held["failures"]}
  splits = {name: len(layout.read_split_ids(study.data_dir, name))
            for name in ("train", "val", "test") + tuple(lists)}
  outputs = {
      "data_dir": study.relative(study.data_dir),
      "files": len(files), "selected": len(train_files) + len(held_files),
      "kept": int(lengths.size), "skipped": len(skipped),
      "skipped_reasons": dict(list(sorted(skipped.items()))[:20]),
      "splits": splits,
      "train_by_content": _counts(labels, "train", "content"),
      "train_by_style": _counts(labels, "train", "style"),
      "test_by_content": _counts(labels, "test", "content"),
      "test_by_style": _counts(labels, "test", "style"),
      "heldout_examples": lists["heldout_examples"],
      "frames": {"min": int(lengths.min()), "median": float(np.median(lengths)),
                 "max": int(lengths.max()), "total": int(lengths.sum()),
                 "hours": round(float(lengths.sum()) / 20.0 / 3600.0, 3)},
      "min_len": cfg.min_len,
      "import_seconds_per_clip": round(import_seconds / max(len(train_files) + len(held_files),
                                                            1), 4),
  }
  _log(f"data: kept {outputs['kept']} clips ({outputs['frames']['hours']} h at 20 fps), skipped "
       f"{outputs['skipped']}; splits {splits}")
  return outputs


# ----------------------------------------------------------------------------------------------
# Training steps.


def _last_metrics(workdir: pathlib.Path) -> dict[str, float]:
  """The last value of every metric in `workdir/metrics.jsonl`, and the median seconds per step
  of the logged intervals (`steps_per_sec`, compilation excluded)."""
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return {}
  last: dict[str, float] = {}
  rates = []
  for line in path.read_text().splitlines():
    if not line.strip():
      continue
    row = json.loads(line)
    last.update({k: v for k, v in row.items() if isinstance(v, (int, float))})
    if "steps_per_sec" in row and row["steps_per_sec"] > 0:
      rates.append(1.0 / row["steps_per_sec"])
  if rates:
    last["seconds_per_step"] = float(np.median(rates))
  last.pop("steps_per_sec", None)
  return last


def train_study_stage(study: Study, stage: str) -> dict:
  """Trains (or resumes) `stage` with its study config into OUT/workdirs/<stage>."""
  config = study.stage_config(stage)
  workdir = study.workdir(stage)
  kwargs = {} if stage == "vae" else {"text_encoder": study.text_encoder(config)}
  _log(f"{stage}: {config.train.num_steps} steps, batch {config.data.batch_size} -> {workdir}")
  state = train_stage(config, str(workdir), stage, **kwargs)
  metrics = _last_metrics(workdir)
  return {"workdir": study.relative(workdir), "steps": int(state.step),
          "params": int(sum(np.size(x) for x in jax.tree.leaves(state.params))),
          "seconds_per_step": metrics.pop("seconds_per_step", None),
          "final": {k: v for k, v in metrics.items() if k != "step"}}


def _run_vae(study: Study) -> dict:
  return train_study_stage(study, "vae")


def _run_denoiser(study: Study) -> dict:
  return train_study_stage(study, "denoiser")


def _run_projector(study: Study) -> dict:
  return train_study_stage(study, "projector")


def _run_lcm(study: Study) -> dict:
  """MotionLCM's student distilled from the study denoiser (the teacher) over the study VAE."""
  return train_study_stage(study, "lcm")


# ----------------------------------------------------------------------------------------------
# Step `evaluator`.


def _majority(labels: Sequence[str]) -> float:
  return max(collections.Counter(labels).values()) / len(labels)


def label_retrieval(text: np.ndarray, motion: np.ndarray, labels: Sequence[str]) -> float:
  """Fraction of captions whose nearest motion embedding (Euclidean, over the whole split) has
  the caption's own label (content or style): retrieval at the level of a label, not a clip."""
  text, motion = np.asarray(text, np.float64), np.asarray(motion, np.float64)
  d = (text ** 2).sum(-1)[:, None] - 2.0 * text @ motion.T + (motion ** 2).sum(-1)[None, :]
  labels = np.asarray(labels)
  return float(np.mean(labels[np.argmin(d, axis=1)] == labels))


def evaluator_separation(embedder: TrainedEmbedder, batches: Callable[[int], Any],
                         mean: np.ndarray, std: np.ndarray, seed: int, k: int) -> dict:
  """How the evaluator's embeddings of one pass over the test split separate contents and styles:
  k-NN accuracy (leave-one-out) and silhouette of the motion embeddings by label, the caption ->
  nearest-motion label accuracy, and the majority-class rate each accuracy compares with."""
  split = protocol.collect_split(batches(seed), mean, std)
  motion = protocol.embed_rows(embedder.embed_motion, split.gt_features, split.lengths)
  text = np.concatenate([embedder.embed_text(b) for b in split.batches])
  ids = [str(i) for b in split.batches for i in b["id"]]
  parsed = [captions.parse_bandai_stem(_base_id(i)) for i in ids]
  out: dict[str, Any] = {"clips": len(ids)}
  for key in ("content", "style"):
    labels = [getattr(p, key) for p in parsed]
    sep = tsne.separation(motion, labels, k=k)
    out[key] = {"labels": len(set(labels)), "knn_accuracy": sep["knn_accuracy"],
                "silhouette": sep["silhouette"], "majority_rate": _majority(labels),
                "text_to_motion_accuracy": label_retrieval(text, motion, labels)}
  return out


def _evaluator_markdown(real: Mapping[str, Any], sep: Mapping[str, Any], outputs: Mapping) -> str:
  lines = ["## Evaluator", "",
           f"Trainable evaluator (`configs/study_bandai_evaluator.py`), {outputs['steps']} steps on "
           "the train split; the protocol's Real row on the test split:", "",
           report.markdown_table(real).rstrip(), "",
           f"Separation on one pass over the test split ({sep['clips']} clips, k = "
           f"{outputs['knn_k']}):", "",
           "| label | classes | k-NN accuracy | silhouette | caption -> nearest motion | "
           "majority class |", "|---|---|---|---|---|---|"]
  for key in ("content", "style"):
    s = sep[key]
    lines.append(f"| {key} | {s['labels']} | {s['knn_accuracy']:.3f} | {s['silhouette']:.3f} | "
                 f"{s['text_to_motion_accuracy']:.3f} | {s['majority_rate']:.3f} |")
  return "\n".join(lines) + "\n"


def _run_evaluator(study: Study) -> dict:
  """Trains the evaluator, then its Real row (`protocol.evaluate`, no methods) and separation."""
  outputs = train_study_stage(study, "evaluator")
  config = study.stage_config("evaluator")
  encoder = study.text_encoder(config)
  mean, std = layout.load_stats(study.data_dir)
  embedder = TrainedEmbedder(load_trained_evaluator(study.workdir("evaluator")), mean, std)
  batches = protocol.stream_batches(config, encoder, split="test")
  settings = protocol.ProtocolSettings(replications=int(study.config.replications),
                                       seed=int(study.config.seed))
  real = protocol.evaluate(embedder, batches, {}, settings, mean, std,
                           progress=lambda m: _log(f"evaluator: Real row, {m}"))
  sep = evaluator_separation(embedder, batches, mean, std, int(study.config.seed),
                             int(study.config.knn_k))
  outputs["knn_k"] = int(study.config.knn_k)
  study.results_dir.mkdir(parents=True, exist_ok=True)
  _write_json(study.results_dir / "evaluator.json", {"real": real, "separation": sep})
  (study.results_dir / "evaluator.md").write_text(_evaluator_markdown(real, sep, outputs))
  outputs["real"] = {k: v["mean"] for k, v in real["summary"]["Real"].items()}
  outputs["separation"] = sep
  _log(f"evaluator: Real R@1 {outputs['real']['R@1']:.3f}, FID {outputs['real']['FID']:.3f}; "
       f"k-NN content {sep['content']['knn_accuracy']:.3f} (majority "
       f"{sep['content']['majority_rate']:.3f}), style {sep['style']['knn_accuracy']:.3f} "
       f"(majority {sep['style']['majority_rate']:.3f})")
  return outputs


# ----------------------------------------------------------------------------------------------
# Shared by the evaluation steps: the trained evaluator, the test stream, pipelines, methods.


@dataclasses.dataclass
class Scoring:
  """The study's trained evaluator and a `BatchesFn` over a split (one item per clip)."""
  embedder: TrainedEmbedder
  batches: protocol.BatchesFn
  mean: np.ndarray
  std: np.ndarray


def scoring(study: Study, split: str = "test") -> Scoring:
  """The trained evaluator (`TrainedEmbedder`) and the evaluation stream of `split` (the
  evaluator config's data section: crops of <= data.max_len frames, MiniLM captions)."""
  config = study.stage_config("evaluator")
  mean, std = layout.load_stats(study.data_dir)
  embedder = TrainedEmbedder(load_trained_evaluator(study.workdir("evaluator")), mean, std)
  batches = protocol.stream_batches(config, study.text_encoder(config), split=split)
  return Scoring(embedder, batches, mean, std)


def pipeline(study: Study, workdir: pathlib.Path,
             denoiser_workdir: pathlib.Path | None = None) -> Pipeline:
  """`Pipeline.from_workdir` of a study stage (projector: LEAD; denoiser_workdir=lcm: the LCM
  student under that projector), sharing the study's text encoder."""
  encoder = study.text_encoder(study.stage_config("denoiser"))
  return Pipeline.from_workdir(workdir, denoiser_workdir=denoiser_workdir and str(denoiser_workdir),
                               text_encoder=encoder)


def protocol_settings(study: Study, replications: int, multimodality: bool = True
                      ) -> protocol.ProtocolSettings:
  cfg = study.config
  return protocol.ProtocolSettings(
      replications=int(replications), seed=int(cfg.seed),
      mm_prompts=int(cfg.mm_prompts) if multimodality else 0, mm_repeats=int(cfg.mm_repeats))


def table1_methods(study: Study, pipe: Pipeline, *, mld: bool = True, label: str = "",
                   prompt_embeddings: protocol.PromptEmbeddings | None = None
                   ) -> dict[str, protocol.GenerateFn]:
  """The Table 1 rows of a LEAD pipeline: 'MLD' (its denoiser without the projector) and 'LEAD'
  (with it), DDIM `ddim_steps`; `label` is appended to the names ('LEAD (noKL)'). The rows share
  `prompt_embeddings` (a new table if None)."""
  cfg = study.config
  table = (protocol.PromptEmbeddings(pipe, int(cfg.eval_batch_size)) if prompt_embeddings is None
           else prompt_embeddings)
  common = dict(guidance_scale=float(cfg.guidance_scale), steps=int(cfg.ddim_steps),
                batch_size=int(cfg.eval_batch_size), prompt_embeddings=table)
  methods = {"MLD": protocol.pipeline_generator(pipe, False, **common)} if mld else {}
  methods["LEAD" + label] = protocol.pipeline_generator(pipe, True, **common)
  return methods


def _score(study: Study, score: Scoring, methods: Mapping[str, protocol.GenerateFn],
           settings: protocol.ProtocolSettings, what: str) -> dict:
  result = protocol.evaluate(score.embedder, score.batches, methods, settings, score.mean,
                             score.std, progress=lambda m: _log(f"{what}: {m}"))
  result["settings"].update({"protocol": "clip", "items": None, "split": "test",
                             "evaluator": {"kind": "trained", "path": study.relative(
                                 study.workdir("evaluator"))}, **report.provenance()})
  return result


def _means(result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
  return {row: {k: v["mean"] for k, v in metrics.items()}
          for row, metrics in result["summary"].items()}


# ----------------------------------------------------------------------------------------------
# Step `evaluate` (Tables 1 and 5).


def _run_evaluate(study: Study) -> dict:
  """Table 1 (Real, MLD, LEAD) and Table 5 (MotionLCM / LEAD-MotionLCM at `lcm_steps`) on the
  test split, `replications` replications, with the study's trained evaluator."""
  cfg, score = study.config, scoring(study)
  settings = protocol_settings(study, cfg.replications)
  lead = pipeline(study, study.workdir("projector"))
  fast = pipeline(study, study.workdir("projector"), study.workdir("lcm"))
  table = protocol.PromptEmbeddings(lead, int(cfg.eval_batch_size))  # one text encoder
  methods1 = table1_methods(study, lead, prompt_embeddings=table)
  methods5 = protocol.lcm_methods(fast, tuple(int(k) for k in cfg.lcm_steps),
                                  float(cfg.guidance_scale), int(cfg.eval_batch_size), table)
  # One protocol pass for both tables: the same replications (captions, crops, Real row).
  both = _score(study, score, {**methods1, **methods5}, settings, "Tables 1 and 5")
  table1 = protocol.select_rows(both, methods1)
  table5 = protocol.select_rows(both, methods5)
  study.results_dir.mkdir(parents=True, exist_ok=True)
  _write_json(study.results_dir / "evaluate.json", {"table1": table1, "table5": table5})
  (study.results_dir / "evaluate.md").write_text(
      report.markdown_table(table1, title="Table 1 layout: text-to-motion on the test split")
      + "\n" + report.markdown_table(table5, title="Table 5 layout: MotionLCM students"))
  return {"table1": _means(table1), "table5": _means(table5),
          "replications": int(cfg.replications), "ddim_steps": int(cfg.ddim_steps)}


# ----------------------------------------------------------------------------------------------
# Step `ablations` (Table 6).


def _override(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  *path, field = dotted.split(".")
  section = config
  for name in path:
    section = section[name]
  if field not in section:
    raise ConfigError(f"ablation override {dotted!r}: the projector config has no such field")
  section[field] = value


def ablation_config(study: Study, variant: str) -> ml_collections.ConfigDict:
  """The study projector config with `variant`'s overrides (`study_bandai.ABLATIONS`), trained
  `ablation_steps` steps."""
  if variant not in ABLATIONS:
    raise ConfigError(f"study.ablations: unknown variant {variant!r}; choose from "
                      f"{', '.join(ABLATIONS)}")
  config = study.stage_config("projector")
  for dotted, value in ABLATIONS[variant].items():
    _override(config, dotted, value)
  steps = int(study.config.ablation_steps)
  config.train.update(num_steps=steps, checkpoint_every=steps, eval_every=steps)
  # Same VAE, data and crops as the study projector: its latent banks serve every variant (the
  # bank key checks that), instead of each variant encoding its own (~80 s each at full scale).
  config.latent_cache.dir = str(study.workdir("projector") / "latent_cache")
  return config


def _run_ablations(study: Study) -> dict:
  """Each variant of `ablations` trained into workdirs/ablation_<name> and scored with a LEAD
  row (`ablation_replications`, no MultiModality); results/ablations/<name>.json per variant
  (a rerun skips finished variants scored at the configured replications; a variant scored at
  other replications is scored again, its training resuming from its finished checkpoint),
  results/ablations.md."""
  cfg = study.config
  folder = study.results_dir / "ablations"
  folder.mkdir(parents=True, exist_ok=True)
  settings = protocol_settings(study, cfg.ablation_replications, multimodality=False)
  score, rows = None, {}
  for variant in cfg.ablations:
    path = folder / f"{variant}.json"
    scored = json.loads(path.read_text())["settings"]["replications"] if path.exists() else None
    if scored != int(cfg.ablation_replications):
      workdir = study.workdir(f"ablation_{variant}")
      config = ablation_config(study, variant)
      _log(f"ablations: {variant} {dict(ABLATIONS[variant])}, {config.train.num_steps} steps")
      state = train_stage(config, str(workdir), "projector",
                          text_encoder=study.text_encoder(config))
      score = score or scoring(study)
      pipe = pipeline(study, workdir)
      result = _score(study, score, table1_methods(study, pipe, mld=False, label=f" ({variant})"),
                      settings, f"ablation {variant}")
      result["variant"] = {"name": variant, "overrides": dict(ABLATIONS[variant]),
                           "steps": int(state.step), "workdir": study.relative(workdir),
                           "params": int(sum(np.size(x) for x in jax.tree.leaves(state.params)))}
      _write_json(path, result)
    rows[variant] = json.loads(path.read_text())
  merged = {"settings": next(iter(rows.values()))["settings"],
            "summary": {name: r["summary"][name] for r in rows.values()
                        for name in r["summary"] if name != "Real"}}
  skipped = [v for v in ABLATIONS if v not in cfg.ablations]
  (study.results_dir / "ablations.md").write_text(
      report.markdown_table(merged, report.TABLE1_COLUMNS[:-1],
                            "Table 6 layout: projector ablations (LEAD rows)")
      + f"\nVariants run: {', '.join(cfg.ablations)} ({cfg.ablation_steps} training steps each, "
      f"the study projector config otherwise); not run: {', '.join(skipped) or 'none'}.\n")
  return {"run": list(cfg.ablations), "not_run": skipped, "steps": int(cfg.ablation_steps),
          "replications": int(cfg.ablation_replications),
          "rows": {name: {k: v["mean"] for k, v in m.items()}
                   for name, m in merged["summary"].items()},
          "params": {v: r["variant"]["params"] for v, r in rows.items()}}


# ----------------------------------------------------------------------------------------------
# Step `tsne` (Fig. 2).


def _run_tsne(study: Study) -> dict:
  """VAE posterior means vs projector latents of the test clips, t-SNE coloured by content and by
  style (results/fig2_content.png, fig2_style.png + .json with silhouettes, + .npz)."""
  cfg = study.config
  models = latents.load_latent_models(study.workdir("projector"))
  split = latents.encode_split(models, study.data_dir, "test",
                               max_motions=int(cfg.tsne_max_motions), seed=int(cfg.seed))
  labels = json.loads((study.data_dir / "labels.json").read_text())
  outputs: dict[str, Any] = {"motions": len(split.ids)}
  for key in ("content", "style"):
    names = [labels[i][key] for i in split.ids]
    summary = tsne.latent_figure(split, names, study.results_dir / f"fig2_{key}.png",
                                 seed=int(cfg.seed), num_iters=int(cfg.tsne_iters),
                                 title=f"t-SNE of {len(names)} test clips by {key}")
    outputs[key] = {"figure": f"fig2_{key}.png", "panels": summary["panels"],
                    "labels": len(set(names))}
  return outputs


# ----------------------------------------------------------------------------------------------
# Step `mti` (Tables 3 and 4).


def mti_prompt(token: str | None, content: str) -> str:
  """'a person <token> walks.': the token (if any) before the content's first verb phrase."""
  return " ".join(["a person"] + ([token] if token else []) + [captions.BANDAI_VERBS[content][0]]) + "."


def _heldout_clips(study: Study, name: str, max_frames: int) -> list[layout.Clip]:
  clips = [layout.load_clip(study.data_dir, i) for i in layout.read_split_ids(study.data_dir, name)]
  return [dataclasses.replace(c, motion=c.motion[:max_frames]) for c in clips]


def style_retrieval(generated: np.ndarray, reference: np.ndarray, ref_styles: Sequence[str],
                    ref_contents: Sequence[str], style: str, contents: Sequence[str]
                    ) -> dict[str, float]:
  """Fraction of generated motions whose nearest reference embedding (Euclidean) is of `style`,
  and whose nearest reference is of the prompt's content (`contents`, one per motion)."""
  d = ((generated[:, None, :] - reference[None, :, :]) ** 2).sum(-1)
  nearest = np.argmin(d, axis=1)
  return {"style_retrieval": float(np.mean(np.asarray(ref_styles)[nearest] == style)),
          "content_retrieval": float(np.mean(np.asarray(ref_contents)[nearest]
                                             == np.asarray(contents)))}


def _mti_generate(study: Study, pipe: Pipeline, prompts: Sequence[str], lengths: np.ndarray,
                  use_projector: bool, concepts: Sequence[Any], sample: int) -> np.ndarray:
  cfg = study.config
  out, size = [], int(cfg.eval_batch_size)
  for i, start in enumerate(range(0, len(prompts), size)):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(int(cfg.seed)), sample), i)
    res = pipe.generate(list(prompts[start:start + size]), lengths[start:start + size], key,
                        guidance_scale=float(cfg.guidance_scale), steps=int(cfg.mti_ddim_steps),
                        use_projector=use_projector, concepts=concepts)
    out.append(np.pad(res["features"], ((0, 0), (0, pipe.max_frames - res["features"].shape[1]),
                                        (0, 0))))
  return np.concatenate(out).astype(np.float32)


def _run_mti(study: Study) -> dict:
  """One token `mti_token` learnt from heldout_examples.txt with each objective of `mti_spaces`
  (`Inverter`, configs/inversion.py with `mti_steps` steps); for each clip of heldout_test.txt,
  `mti_samples` motions from `mti_prompt(token, its content)` at its length, without and with the
  projector; rows without the token ('a person walks.') as the baseline. Per sample: FID of the
  generated set against the held-out test clips (study evaluator) and style / content retrieval
  against the references = the test split's clips and the held-out test clips."""
  cfg = study.config
  pipe = pipeline(study, study.workdir("projector"))
  score = scoring(study)
  examples = _heldout_clips(study, "heldout_examples", pipe.max_frames)
  tests = _heldout_clips(study, "heldout_test", pipe.max_frames)
  refs = [c for c in (layout.load_clip(study.data_dir, i) for i in
                      layout.read_split_ids(study.data_dir, "test"))]
  refs = [dataclasses.replace(c, motion=c.motion[:pipe.max_frames]) for c in refs] + tests
  embed = lambda clips: protocol.embed_rows(
      score.embedder.embed_motion,
      np.stack([np.pad(c.motion, ((0, pipe.max_frames - c.length), (0, 0))) for c in clips]),
      np.asarray([c.length for c in clips]))
  real, reference = embed(tests), embed(refs)
  ref_labels = [captions.parse_bandai_stem(_base_id(c.id)) for c in refs]
  contents = [captions.parse_bandai_stem(c.id).content for c in tests]
  lengths = np.asarray([c.length for c in tests])
  base = InversionSettings.from_config(load_config(str(_repo_file("configs/inversion.py"))),
                                       steps=int(cfg.mti_steps))
  variants: dict[str, list[Any]] = {"no token": []}    # row name -> concepts
  losses = {}
  for space in cfg.mti_spaces:
    run = Inverter(pipe, dataclasses.replace(base, space=space)).invert(
        [c.motion for c in examples], cfg.mti_token, cfg.mti_init_word or None)
    losses[space] = {"first": float(run.losses[0]), "last": float(run.losses[-1]),
                     "fixed_batch": [float(x) for x in run.eval_losses]}
    variants[f"MTI_{space}"] = [run.concept]
  rows: dict[str, dict[str, list[float]]] = {}
  for name, concepts in variants.items():
    prompts = [mti_prompt(cfg.mti_token if concepts else None, c) for c in contents]
    for use_projector in (False, True):
      row = rows.setdefault(name + (" w/ project" if use_projector else ""), {})
      for sample in range(int(cfg.mti_samples)):
        emb = protocol.embed_rows(
            score.embedder.embed_motion,
            _mti_generate(study, pipe, prompts, lengths, use_projector, concepts, sample), lengths)
        values = {"FID": scores.fid(real, emb), **style_retrieval(
            emb, reference, [l.style for l in ref_labels], [l.content for l in ref_labels],
            cfg.heldout_style, contents)}
        for k, v in values.items():
          row.setdefault(k, []).append(v)
      _log(f"mti: {name}{' w/ project' if use_projector else ''}: FID "
           f"{np.mean(row['FID']):.3f}, style retrieval {np.mean(row['style_retrieval']):.3f}")
  summary = {name: {k: dict(zip(("mean", "ci95"), scores.mean_and_ci(v))) for k, v in r.items()}
             for name, r in rows.items()}
  result = {"settings": {"replications": int(cfg.mti_samples), "seed": int(cfg.seed),
                         "examples": [c.id for c in examples], "test_clips": len(tests),
                         "reference_clips": len(refs), "token": cfg.mti_token,
                         "prompt": mti_prompt(cfg.mti_token, "walk"),
                         "inversion": base.to_dict(), "ddim_steps": int(cfg.mti_ddim_steps)},
            "rows": rows, "summary": summary, "losses": losses}
  _write_json(study.results_dir / "mti.json", result)
  (study.results_dir / "mti.md").write_text(_mti_markdown(result, study))
  return {"rows": {n: {k: v["mean"] for k, v in m.items()} for n, m in summary.items()},
          "losses": losses, "test_clips": len(tests), "examples": result["settings"]["examples"]}


def _mti_markdown(result: Mapping[str, Any], study: Study) -> str:
  s, cfg = result["settings"], study.config
  lines = ["### Tables 3/4 layout: motion textual inversion of the held-out style", "",
           "| Method | FID ↓ | style retrieval ↑ | content retrieval ↑ |", "|---|---|---|---|"]
  for name, row in result["summary"].items():
    cells = [f"{row[k]['mean']:.3f} ±{row[k]['ci95']:.3f}"
             for k in ("FID", "style_retrieval", "content_retrieval")]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", f"One token {s['token']} learnt from the {len(s['examples'])} held-out "
            f"`{cfg.heldout_style}` clips of heldout_examples.txt ({s['inversion']['steps']} Adam "
            f"steps, lr {s['inversion']['optimizer']['learning_rate']}) per objective; for each of "
            f"the {s['test_clips']} clips of heldout_test.txt, one motion per sample from "
            f"\"a person {s['token']} <its content's verb>.\" (e.g. \"{s['prompt']}\") at its "
            f"length ({s['ddim_steps']} DDIM steps); 'no token': the same prompts without the "
            "token. FID: the generated set against the held-out test clips (study evaluator). "
            f"Style retrieval: fraction of generated motions whose nearest evaluator embedding "
            f"among {s['reference_clips']} real clips (the test split and the held-out test clips) "
            f"is of style `{cfg.heldout_style}`; content retrieval: whose nearest has the prompt's "
            f"content. Mean ±95% CI over {s['replications']} samples."]
  return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Step `report`.

ATTRIBUTION = ("Data: the Bandai Namco Research Motion Dataset (dataset-1, dataset-2), Bandai Namco "
               "Research Inc., CC BY-NC 4.0 (https://github.com/BandaiNamcoResearchInc/"
               "Bandai-Namco-Research-Motiondataset); non-commercial use only, none of it is in "
               "the repository.")
SECTIONS = (("evaluator", "evaluator.md"), ("evaluate", "evaluate.md"),
            ("ablations", "ablations.md"), ("mti", "mti.md"))


def _compare(rows: Mapping[str, Any], new: str, base: str, metric: str) -> str | None:
  """'LEAD FID 1.234 is inside MLD's 95% interval 1.300 ±0.100 (better)' or None."""
  if new not in rows or base not in rows or metric not in rows[new]:
    return None
  a, b = rows[new][metric], rows[base][metric]
  inside = abs(a["mean"] - b["mean"]) <= b["ci95"]
  lower_better = metric in ("FID", "MM-Dist")
  better = (a["mean"] < b["mean"]) == lower_better
  return (f"{new} {metric} {a['mean']:.3f} is {'inside' if inside else 'outside'} {base}'s 95% "
          f"interval {b['mean']:.3f} ±{b['ci95']:.3f} ({'better' if better else 'worse'} on "
          "the mean)")


def reading(study: Study) -> str:
  """Facts computed from the step outputs: LEAD against MLD's intervals, LEAD-MotionLCM against
  MotionLCM, the latents' silhouettes, the best MTI objective, the best ablation."""
  facts: list[str] = []
  res = study.results_dir
  if (res / "evaluate.json").exists():
    tables = json.loads((res / "evaluate.json").read_text())
    rows = tables["table1"]["summary"]
    facts += [f for m in ("FID", "R@1") if (f := _compare(rows, "LEAD", "MLD", m))]
    rows5 = tables["table5"]["summary"]
    for k in study.config.lcm_steps:
      label = f"({k} step{'s' if k > 1 else ''})"
      fact = _compare(rows5, f"LEAD-MotionLCM {label}", f"MotionLCM {label}", "FID")
      if fact:
        facts.append(fact)
  tsne_out = study.records.get("tsne", {}).get("outputs")
  if tsne_out:
    for key in ("content", "style"):
      panels = tsne_out[key]["panels"]
      vae, proj = panels["vae"]["latent_silhouette"], panels["projected"]["latent_silhouette"]
      if vae is not None and proj is not None:
        facts.append(f"by {key}, the projector latents' silhouette is {proj:.3f} against the VAE "
                     f"latents' {vae:.3f} ({'higher' if proj > vae else 'not higher'})")
  mti_out = study.records.get("mti", {}).get("outputs")
  if mti_out:
    rows = mti_out["rows"]
    best = max(rows, key=lambda n: rows[n]["style_retrieval"])
    facts.append(f"MTI: the highest style retrieval is {best}'s "
                 f"{rows[best]['style_retrieval']:.3f} (no token: "
                 f"{rows['no token']['style_retrieval']:.3f}, no token w/ project: "
                 f"{rows['no token w/ project']['style_retrieval']:.3f})")
  abl = study.records.get("ablations", {}).get("outputs")
  if abl and abl["rows"]:
    best = min(abl["rows"], key=lambda n: abl["rows"][n]["FID"])
    facts.append(f"among the ablations run ({', '.join(abl['run'])}), the lowest FID is "
                 f"{best}'s {abl['rows'][best]['FID']:.3f}")
  if not facts:
    return "No evaluation step has finished yet.\n"
  return ("Reading (generated from the numbers; the prose is the author's): " +
          "; ".join(facts) + ".\n")


def _sizes_table(study: Study) -> str:
  lines = ["| stage | parameters | steps | seconds per step |", "|---|---|---|---|"]
  for stage in TRAINED_STAGES + ("lcm",):
    out = study.records.get(stage, {}).get("outputs")
    if out:
      sps = out.get("seconds_per_step")
      lines.append(f"| {stage} | {out['params']:,} | {out['steps']} | "
                   f"{'-' if sps is None else f'{sps:.3f}'} |")
  return "\n".join(lines) + "\n"


def _tsne_section(study: Study) -> str:
  out = study.records.get("tsne", {}).get("outputs")
  if not out:
    return "Not run.\n"
  lines = [f"t-SNE of the {out['motions']} test clips (VAE posterior means vs projector latents).",
           ""]
  for key in ("content", "style"):
    lines += [f"![Fig. 2 by {key}]({out[key]['figure']})", ""]
  lines += ["| colour | latents | silhouette (latent space) | silhouette (t-SNE plane) | "
            "k-NN accuracy (latent space) |", "|---|---|---|---|---|"]
  fmt = lambda v: "-" if v is None else f"{v:.3f}"
  for key in ("content", "style"):
    for panel, p in out[key]["panels"].items():
      lines.append(f"| {key} ({out[key]['labels']}) | {panel} | {fmt(p['latent_silhouette'])} | "
                   f"{fmt(p['silhouette'])} | {fmt(p['latent_knn_accuracy'])} |")
  return "\n".join(lines) + "\n"


def _run_report(study: Study) -> dict:
  """results/bandai.md: every finished step's tables and figures (paths relative to it), the
  command, commit, scale, time log, model sizes, the attribution and a generated reading."""
  meta = json.loads((study.out / "study.json").read_text())
  data = study.records["data"]["outputs"]
  command = "lead-jax study bandai --out OUT" + (" --quick" if study.scale == "quick" else "")
  parts = [f"# LEAD on the Bandai Namco motion capture ({study.scale} scale)", "",
           reading(study), f"Command: `{command}`; commit `{meta['commit']}` (study created "
           f"{meta['created']}; report written at commit `{_commit()}`).", "", ATTRIBUTION, "",
           "## Data", "",
           f"{data['kept']} clips ({data['frames']['hours']} h at 20 fps), splits by take "
           f"{data['splits']}; held-out style `{study.config.heldout_style}` (and aliases "
           f"{', '.join(study.config.heldout_aliases)}) out of every training split.", "",
           "## Model sizes", "", _sizes_table(study),
           "## Wall time per step", "", time_log(study, {}, [s for s in STEPS if s != "report"]),
           "(the report step itself is not counted)", ""]
  for step, name in SECTIONS:
    path = study.results_dir / name
    parts += [path.read_text() if path.exists() else f"## {step}\n\nNot run.\n", ""]
  parts += ["## Fig. 2 layout: latents", "", _tsne_section(study)]
  study.results_dir.mkdir(parents=True, exist_ok=True)
  out = study.results_dir / "bandai.md"
  out.write_text("\n".join(parts))
  return {"report": study.relative(out), "reading": reading(study).strip()}


STEP_FUNCTIONS: dict[str, Callable[[Study], dict]] = {
    "data": _run_data, "evaluator": _run_evaluator, "vae": _run_vae, "denoiser": _run_denoiser,
    "projector": _run_projector, "lcm": _run_lcm, "evaluate": _run_evaluate,
    "ablations": _run_ablations, "tsne": _run_tsne, "mti": _run_mti, "report": _run_report,
}


# ----------------------------------------------------------------------------------------------
# The runner.


def parse_steps(steps: str | Sequence[str] | None) -> list[str]:
  """'data,vae' / a sequence / None (every step) -> the steps in study order."""
  if steps is None:
    return list(STEPS)
  names = [s.strip() for s in (steps.split(",") if isinstance(steps, str) else steps) if s.strip()]
  unknown = [s for s in names if s not in STEPS]
  if unknown or not names:
    raise ConfigError(f"unknown study step(s) {unknown or names}; choose from {', '.join(STEPS)}")
  return [s for s in STEPS if s in names]


def open_study(out: str | os.PathLike, bandai_dir: str | os.PathLike, scale: str) -> Study:
  """The study in `out` (created): a folder made at another scale is a ConfigError."""
  out = pathlib.Path(out).resolve()
  bandai_dir = pathlib.Path(bandai_dir).resolve()
  config = load_config(f"{_repo_file(STUDY_CONFIG)}:{scale}")
  out.mkdir(parents=True, exist_ok=True)
  meta_path = out / "study.json"
  if meta_path.exists():
    meta = json.loads(meta_path.read_text())
    if meta["scale"] != scale:
      raise ConfigError(f"{out} holds a {meta['scale']!r} study; rerun with that scale or use "
                        f"another --out (asked for {scale!r})")
  else:
    meta = {"scale": scale, "bandai_dir": str(bandai_dir), "commit": _commit(),
            "created": datetime.datetime.now().isoformat(timespec="seconds")}
    _write_json(meta_path, meta)
  records_path = out / "steps.json"
  records = json.loads(records_path.read_text()) if records_path.exists() else {}
  return Study(out=out, bandai_dir=bandai_dir, config=config, records=records)


def time_log(study: Study, ran: Mapping[str, float], steps: Sequence[str]) -> str:
  """Markdown table: each requested step, whether it ran now or was reused, its seconds."""
  lines = ["| step | status | wall seconds |", "|---|---|---|"]
  total = 0.0
  for step in steps:
    record = study.records.get(step)
    if step in ran:
      status, seconds = "ran", ran[step]
    elif record:
      status, seconds = f"reused (finished {record['finished']})", record["seconds"]
    else:
      status, seconds = "not run", 0.0
    total += seconds
    lines.append(f"| {step} | {status} | {seconds:.1f} |")
  lines.append(f"| total | | {total:.1f} |")
  return "\n".join(lines) + "\n"


def use_compilation_cache(out: pathlib.Path) -> str:
  """JAX's persistent compilation cache in `out/xla_cache` (unless the caller chose one with
  JAX_COMPILATION_CACHE_DIR or `jax_compilation_cache_dir`); returns the directory in use.

  The evaluation steps build a Pipeline per stage and variant (Tables 1, 5 and 6), whose programs
  are the same XLA programs for the same packed shapes: the cache compiles each once per study, and
  a rerun after an interruption reuses them.
  """
  current = jax.config.jax_compilation_cache_dir
  if current:
    return str(current)
  path = out / "xla_cache"
  path.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(path))
  from jax.experimental.compilation_cache import compilation_cache  # pylint: disable=import-outside-toplevel
  compilation_cache.reset_cache()  # re-read the directory if something compiled before
  return str(path)


def run_study(out: str | os.PathLike, bandai_dir: str | os.PathLike, scale: str = "full",
              steps: str | Sequence[str] | None = None) -> dict:
  """Runs the requested study `steps` (default all, in order) into `out`, skipping finished ones;
  returns steps.json's records. Compiled programs are cached in `out/xla_cache`
  (`use_compilation_cache`)."""
  requested = parse_steps(steps)
  study = open_study(out, bandai_dir, scale)
  _log(f"XLA compilation cache: {use_compilation_cache(study.out)}")
  ran: dict[str, float] = {}
  try:
    for number, step in enumerate(requested, start=1):
      if step in study.records:
        _log(f"step {number}/{len(requested)} {step}: finished in a previous run "
             f"({study.records[step]['seconds']:.1f} s), skipped")
        continue
      missing = [p for p in PREREQUISITES[step] if p not in study.records]
      if missing:
        raise ConfigError(f"study step {step!r} needs {', '.join(missing)} first: add them to "
                          f"--steps (finished so far: {', '.join(study.records) or 'none'})")
      _log(f"step {number}/{len(requested)} {step} ({study.scale})")
      start = time.time()
      outputs = STEP_FUNCTIONS[step](study)
      ran[step] = round(time.time() - start, 1)
      study.records[step] = {
          "seconds": ran[step],
          "finished": datetime.datetime.now().isoformat(timespec="seconds"),
          "outputs": outputs}
      _write_json(study.out / "steps.json", study.records)
      _log(f"step {step} finished in {ran[step]:.1f} s")
  finally:
    log = time_log(study, ran, requested)
    (study.out / "time_log.md").write_text(log)
    print(log, flush=True)
  return study.records
