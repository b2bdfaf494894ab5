"""The Bandai Namco study (`lead-jax study bandai`): real motion capture, every stage trained from
scratch, the paper's claims measured at small scale; one command that resumes where it stopped.

  summary = run_study("study", "../shared/data/bandai")                      # scale 'full'
  summary = run_study("quick", "../shared/data/bandai", scale="quick", steps=("data", "vae"))

Steps (`STEPS`, run in this order; each is a function `step(study) -> outputs`):
  data       clips chosen for the scale, retargeted to the 22-joint skeleton at 20 fps, captioned
             with paraphrases, split by take; the held-out style kept apart (`_run_data`)
  evaluator  the trainable evaluator on the train split; its Real row (the protocol of
             `lead-jax evaluate`) and how well its embeddings separate contents and styles
  vae, denoiser, projector   the three stages with the study configs (`configs/study_bandai_*`)
  lcm, evaluate, ablations, tsne, mti, report   filled in once the MotionLCM, latent-cache and
             evaluation-protocol work lands (each raises NotImplementedError naming what it needs)

OUT layout:
  study.json        scale, Bandai folder, commit (a rerun must ask for the same scale)
  steps.json        per finished step: wall seconds, when, outputs (a finished step is skipped on
                    rerun; an interrupted one restarts, training resuming from its checkpoints)
  time_log.md       the per-step time log of the last run (also printed)
  raw/              dataset-2-more.tar.xz unpacked (full scale)
  data/             the dataset (HumanML3D layout, `heldout_*.txt`, `labels.json`)
  text_cache/       MiniLM caption embeddings, shared by the stages
  workdirs/<stage>/ checkpoints, metrics.jsonl, tensorboard
  results/          evaluator.json, evaluator.md, ...

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
from lead_jax.evaluation import protocol, report, tsne
from lead_jax.io import captions, importer
from lead_jax.metrics.embedders import TrainedEmbedder
from lead_jax.train import stage as stage_lib
from lead_jax.train import train_stage
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
    if stage in ("denoiser", "projector"):
      config.dependencies.vae_workdir = str(self.workdir("vae"))
    if stage == "projector":
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
  """The denoiser through the normal trainer (the latent cache of the training issue plugs in
  here once it lands)."""
  return train_study_stage(study, "denoiser")


def _run_projector(study: Study) -> dict:
  return train_study_stage(study, "projector")


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
# Steps filled in later (they need work of other issues).


def _pending(step: str, needs: str) -> Callable[[Study], dict]:
  def run(study: Study) -> dict:
    del study
    raise NotImplementedError(f"study step {step!r} is not written yet: it needs {needs}")
  run.__name__ = f"_run_{step}"
  return run


_run_lcm = _pending("lcm", "the MotionLCM student trainer (issue #14, lead_jax/train/lcm.py)")
_run_evaluate = _pending("evaluate", "the evaluation protocol of issue #13 (Table 1 and Table 5 "
                         "layouts: Real, MLD, LEAD, MLD-LCM / LEAD-LCM at 1, 2, 4 steps)")
_run_ablations = _pending("ablations", "projector variants (Table 6: arch transformer / skip / mlp,"
                          " noKL / noREC / noALIGN) trained and scored with the protocol")
_run_tsne = _pending("tsne", "VAE vs projector latents of the test clips by content and style "
                     "(lead_jax.evaluation.latents / tsne, Fig. 2)")
_run_mti = _pending("mti", "motion textual inversion of the held-out style from "
                    "heldout_examples.txt with the lead / mld / feat objectives (Tables 3, 4)")
_run_report = _pending("report", "docs/results/bandai.md from the step outputs")

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


def run_study(out: str | os.PathLike, bandai_dir: str | os.PathLike, scale: str = "full",
              steps: str | Sequence[str] | None = None) -> dict:
  """Runs the requested study `steps` (default all, in order) into `out`, skipping finished ones;
  returns steps.json's records."""
  requested = parse_steps(steps)
  study = open_study(out, bandai_dir, scale)
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
