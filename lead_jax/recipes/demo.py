"""The embedded default job (`lead-jax demo`): data, motion round trip, training, sampling, report.

Every stage writes into one output folder and skips work an earlier run already finished, so an
interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from lead_jax.config_loader import load_config, repo_config
from lead_jax.errors import ConfigError
from lead_jax.generate import Pipeline
from lead_jax.io import bvh, export, importer, render
from lead_jax.io.generated import save_generation
from lead_jax.motion import features as motion_features
from lead_jax.motion.skeleton import get_skeleton
from lead_jax.text import load_text_encoder
from lead_jax.train import train_stage

ALL_STAGES = ("data", "motion", "train", "sample")


def _log(message: str) -> None:
  print(f"[demo] {message}", flush=True)


def build_embedded_dataset(data_dir: pathlib.Path) -> dict:
  """Imports the DeepMimic clips of the pybullet wheel into `data_dir` (once)."""
  report_path = data_dir / "import_report.json"
  if report_path.exists() and (data_dir / "Mean.npy").exists():
    _log(f"data: reusing {data_dir}")
    return json.loads(report_path.read_text())
  _log("data: importing the DeepMimic clips shipped in pybullet")
  report = importer.import_deepmimic_dataset(data_dir, progress=True)
  _log(f"data: kept {len(report['kept'])} clips, skipped {len(report['skipped'])}, "
       f"failed {len(report['failures'])} -> {data_dir}")
  return report


def motion_round_trip(data_dir: pathlib.Path, out_dir: pathlib.Path) -> dict:
  """joints -> features -> joints on every stored clip; BVH export and re-read; a key-frame strip.

  The stored joints are canonical (floor, origin, facing +Z), so `extract_features` followed by
  `recover_from_ric` must give them back (minus the last frame); the BVH written from them is read
  back with our reader and forward kinematics.
  """

  out_dir.mkdir(parents=True, exist_ok=True)
  ids = sorted(p.stem for p in (data_dir / "new_joints").glob("*.npy"))
  recover = jax.jit(motion_features.recover_from_ric, static_argnums=1)
  names = get_skeleton("t2m").joint_names
  rows = []
  for clip_id in ids:
    joints = np.load(data_dir / "new_joints" / f"{clip_id}.npy")
    feats = np.asarray(motion_features.extract_features(joints, "t2m"))
    recovered = np.asarray(recover(feats, 22))
    bvh_path = out_dir / f"{clip_id}.bvh"
    export.joints_to_bvh(joints, bvh_path)
    motion = bvh.read_bvh(bvh_path)
    order = [motion.skeleton.joint_names.index(n) for n in names]
    reread = bvh.forward_kinematics(motion)[:, order]  # BVH joints are written depth first
    rows.append({
        "id": clip_id, "frames": int(joints.shape[0]),
        "ric_max_err_m": float(np.abs(recovered - joints[:-1]).max()),
        "bvh_max_err_m": float(np.abs(reread - joints).max()),
        "height_m": float(joints[..., 1].max()),
        "distance_m": float(np.linalg.norm(joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]])),
        "bvh": bvh_path.name,
    })
  strip_ids = ids[: min(4, len(ids))]
  strip = [np.load(data_dir / "new_joints" / f"{i}.npy") for i in strip_ids]
  render.render_strip(strip, out_dir / "clips_strip.png", captions=strip_ids)
  result = {"clips": rows, "strip": "clips_strip.png"}
  (out_dir / "round_trip.json").write_text(json.dumps(result, indent=2) + "\n")
  worst_ric = max(r["ric_max_err_m"] for r in rows)
  worst_bvh = max(r["bvh_max_err_m"] for r in rows)
  _log(f"motion: {len(rows)} clips; joints->features->joints max error {worst_ric:.2e} m, "
       f"BVH write/read max error {worst_bvh:.2e} m")
  return result


DEMO_STAGE_CONFIGS = (("vae", "demo_vae.py"), ("denoiser", "demo_denoiser.py"),
                      ("lcm", "demo_lcm.py"), ("projector", "demo_projector.py"))
# LCM steps generated beside the 50 DDIM steps of the denoiser.
LCM_STEPS = (1, 4)


def demo_stage_config(stage: str, config_path: str, data_dir: pathlib.Path,
                      workdirs: pathlib.Path, steps_scale: float):
  """The tiny demo config of `stage`, reading `data_dir` (all clips) and chained to `workdirs`."""
  config = load_config(str(repo_config(config_path)))
  config.data.builder = "motion_folder"
  config.data.dir = str(data_dir)
  config.data.split = "all"  # 15 clips: train on every clip, evaluate on the test split
  config.train.num_steps = max(1, int(round(config.train.num_steps * steps_scale)))
  config.train.checkpoint_every = config.train.num_steps
  config.train.eval_every = config.train.num_steps
  if stage != "vae":
    config.dependencies.vae_workdir = str(workdirs / "vae")
  if stage in ("projector", "lcm") and "denoiser_workdir" in config.dependencies:
    config.dependencies.denoiser_workdir = str(workdirs / "denoiser")  # the LCM's teacher
  return config


def train_demo_stages(data_dir: pathlib.Path, workdirs: pathlib.Path, steps_scale: float) -> dict:
  """Trains VAE, denoiser, its LCM student and the projector in turn (each resumes or skips if
  already done)."""
  text_encoder = load_text_encoder("minilm")
  result = {}
  for stage, config_path in DEMO_STAGE_CONFIGS:
    config = demo_stage_config(stage, config_path, data_dir, workdirs, steps_scale)
    start = time.time()
    _log(f"train: {stage} ({config.train.num_steps} steps) -> {workdirs / stage}")
    kwargs = {} if stage == "vae" else {"text_encoder": text_encoder}
    state = train_stage(config, str(workdirs / stage), stage, **kwargs)
    result[stage] = {"steps": int(state.step), "seconds": round(time.time() - start, 1),
                     "workdir": str(workdirs / stage), "metrics": str(workdirs / stage / "metrics.jsonl")}
  return result


DEMO_PROMPTS = (
    ("a person walks forward.", 60),
    ("a person runs forward.", 60),
    ("a person jumps forward.", 60),
    ("a person does a backflip.", 60),
    ("a person does a cartwheel.", 60),
    ("a person kicks with the right leg.", 60),
)


def sample_demo_motions(pipe: Any, out_dir: pathlib.Path, seed: int,
                        prompts: Sequence[tuple[str, int]] = DEMO_PROMPTS) -> list[dict]:
  """Generates each prompt with the projector (LEAD) and without it (MLD) with `pipe` (the
  projector stage's `Pipeline`); writes index.json."""

  texts, lengths = [p for p, _ in prompts], [n for _, n in prompts]
  index = []
  for use_projector, prefix in ((True, "lead_"), (False, "mld_")):
    start = time.time()
    result = pipe.generate(texts, lengths, jax.random.key(seed), use_projector=use_projector)
    index += save_generation(result, out_dir, name_prefix=prefix)
    _log(f"sample: {len(texts)} prompts, projector {'on' if use_projector else 'off'}, "
         f"{time.time() - start:.1f} s")
  for entry in index:
    joints = np.load(out_dir / entry["joints"])
    entry["root_displacement_m"] = round(float(np.linalg.norm(joints[-1, 0, [0, 2]] -
                                                              joints[0, 0, [0, 2]])), 3)
    entry["max_lowest_foot_height_m"] = round(float(joints[:, [7, 8, 10, 11], 1].min(1).max()), 3)
  (out_dir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
  return index


def _timed_generate(pipe: Any, texts: list[str], lengths: list[int], seed: int,
                    repeats: int = 3, **kwargs: Any) -> tuple[dict, float, float]:
  """(result, seconds of the first call (compilation included), median seconds of `repeats`
  further calls)."""
  start = time.time()
  pipe.generate(texts, lengths, jax.random.key(seed), **kwargs)
  first = time.time() - start
  seconds = []
  for _ in range(repeats):
    start = time.time()
    result = pipe.generate(texts, lengths, jax.random.key(seed), **kwargs)
    seconds.append(time.time() - start)
  return result, first, float(np.median(seconds))


def sample_fast_motions(pipe: Any, lcm_workdir: str | pathlib.Path, out_dir: pathlib.Path,
                        seed: int, steps: Sequence[int] = LCM_STEPS,
                        prompts: Sequence[tuple[str, int]] = DEMO_PROMPTS) -> dict:
  """The demo prompts (LEAD: projector on) with the 50 DDIM steps of `pipe`'s denoiser and with
  its consistency-distilled student at each of `steps` LCM steps (the same projector and VAE);
  seconds per call (6 prompts, median of 3 calls after compilation) and the files. Writes
  fast_index.json."""
  texts, lengths = [p for p, _ in prompts], [n for _, n in prompts]
  fast = Pipeline.from_workdir(pipe.source, denoiser_workdir=str(lcm_workdir))
  runs = {"ddim50": (pipe, {"scheduler": "ddim", "steps": 50})}
  runs.update({f"lcm{k}": (fast, {"scheduler": "lcm", "steps": k}) for k in steps})
  result = {"methods": {}, "entries": {}}
  for name, (each, kwargs) in runs.items():
    out, first, seconds = _timed_generate(each, texts, lengths, seed, **kwargs)
    result["methods"][name] = {"seconds": round(seconds, 3),
                               "compile_seconds": round(max(first - seconds, 0.0), 1), **kwargs}
    if name != "ddim50":  # the DDIM motions are sample_demo_motions' lead_* files
      result["entries"][name] = save_generation(out, out_dir, name_prefix=f"{name}_")
    _log(f"sample: {name} {seconds:.3f} s per call ({len(texts)} prompts)")
  lead = [e for e in json.loads((out_dir / "index.json").read_text()) if e["projector"]]
  result["entries"]["ddim50"] = lead
  rows, captions = [], []
  for i in range(min(3, len(texts))):
    for name in runs:
      rows.append(np.load(out_dir / result["entries"][name][i]["joints"]))
      captions.append(f"{name}: {texts[i]}")
  render.render_strip(rows, out_dir / "fast_strip.png", captions=captions, num_frames=6)
  (out_dir / "fast_index.json").write_text(json.dumps(result, indent=1) + "\n")
  return result


def compare_precisions(pipe: Any, seed: int,
                       prompts: Sequence[tuple[str, int]] = DEMO_PROMPTS) -> dict:
  """The demo prompts (LEAD) with `pipe` (float32) and with bfloat16 matmuls, same seed: how far
  the joints move (metres, over valid frames) and the seconds per call after compilation."""

  texts, lengths = [p for p, _ in prompts], [n for _, n in prompts]
  pipes = {"float32": pipe,
           "bfloat16": Pipeline.from_workdir(pipe.source, matmul_dtype="bfloat16")}
  joints, seconds = {}, {}
  for dtype, each in pipes.items():
    each.generate(texts, lengths, jax.random.key(seed))  # compile (float32: cached by sampling)
    start = time.time()
    out = each.generate(texts, lengths, jax.random.key(seed))
    seconds[dtype] = round(time.time() - start, 3)
    joints[dtype], mask = out["joints"], out["mask"]
  dist = np.linalg.norm(joints["bfloat16"] - joints["float32"], axis=-1)[mask]  # [frames, J]
  result = {"seconds": seconds, "mean_joint_diff_m": round(float(dist.mean()), 5),
            "max_joint_diff_m": round(float(dist.max()), 5)}
  _log(f"precision: bfloat16 vs float32 joints mean {result['mean_joint_diff_m']} m, max "
       f"{result['max_joint_diff_m']} m; {seconds}")
  return result


def plot_loss_curves(workdirs: pathlib.Path, path: pathlib.Path) -> pathlib.Path:
  """One panel per stage: the training loss terms of metrics.jsonl against the step."""
  import matplotlib  # pylint: disable=import-outside-toplevel  (heavy, plots only)
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel  (heavy, plots only)
  stages = [name for name, _ in DEMO_STAGE_CONFIGS if (workdirs / name / "metrics.jsonl").exists()]
  fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(4.5 * max(1, len(stages)), 3.4))
  axes = np.atleast_1d(axes)
  skip = {"lr", "grad_norm", "param_norm", "steps_per_sec", "step", "w_mean"}
  for ax, stage in zip(axes, stages):
    rows = [json.loads(line) for line in (workdirs / stage / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    rows = [r for r in rows if "loss" in r]
    for key in sorted({k for r in rows for k in r} - skip):
      if key.startswith("eval/"):
        continue
      steps = [r["step"] for r in rows if key in r]
      ax.plot(steps, [r[key] for r in rows if key in r], label=key, lw=1.2)
    ax.set_title(stage)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def write_report(out: pathlib.Path, summary: dict) -> pathlib.Path:
  """OUT/report.md linking the data, round trip, training curves and generated motions."""
  lines = ["# lead-jax demo report", ""]
  data = summary.get("data")
  if data:
    lines += ["## Data", "",
              f"{len(data['kept'])} DeepMimic clips imported into `data/` (HumanML3D layout); "
              f"skipped: {len(data['skipped'])}, failed: {len(data['failures'])}.", ""]
  motion = summary.get("motion")
  if motion:
    lines += ["## Motion round trip", "", "| clip | frames | joints->features->joints max err (m) | "
              "BVH write/read max err (m) | height (m) | distance (m) |", "|---|---|---|---|---|---|"]
    for r in motion["clips"]:
      lines.append(f"| {r['id']} | {r['frames']} | {r['ric_max_err_m']:.1e} | "
                   f"{r['bvh_max_err_m']:.1e} | {r['height_m']:.2f} | {r['distance_m']:.2f} |")
    lines += ["", f"![clips](motion/{motion['strip']})", ""]
  train = summary.get("train")
  if train:
    lines += ["## Training", "", "| stage | steps | seconds | metrics |", "|---|---|---|---|"]
    for stage, r in train.items():
      lines.append(f"| {stage} | {r['steps']} | {r['seconds']} | "
                   f"`{pathlib.Path(r['metrics']).relative_to(out)}` |")
    lines += ["", "![loss curves](loss_curves.png)", ""]
  index = summary.get("sample")
  if index:
    lines += ["## Generated motions", "",
              "Each prompt with the LEAD projector round trip (`lead_*`) and without it (MLD mode, "
              "`mld_*`); all files are listed in `samples/index.json`.", "",
              "| prompt | projector | root displacement (m) | highest lowest-foot (m) | "
              "animation | BVH |", "|---|---|---|---|---|---|"]
    for e in index:
      anim = f"[gif](samples/{e['animation']})" if e["animation"] else "-"
      bvh = f"[bvh](samples/{e['bvh']})" if e["bvh"] else "-"
      lines.append(f"| {e['prompt']} | {'on' if e['projector'] else 'off'} | "
                   f"{e['root_displacement_m']:.2f} | {e['max_lowest_foot_height_m']:.2f} | "
                   f"{anim} | {bvh} |")
    lines += ["", "![samples](samples/strip.png)", ""]
  fast = summary.get("fast")
  if fast:
    methods = fast["methods"]
    names = list(methods)
    label = lambda n: ("DDIM 50 steps" if n == "ddim50" else f"LCM {methods[n]['steps']} step"
                       + ("s" if methods[n]["steps"] > 1 else ""))
    lines += ["## Fast sampling (MotionLCM)", "",
              "The LEAD prompts with the denoiser's 50 DDIM steps and with its "
              "consistency-distilled student (`workdirs/lcm`, MotionLCM's distillation) at "
              + ", ".join(str(methods[n]["steps"]) for n in names if n != "ddim50")
              + " LCM steps; same projector and VAE.", "",
              "| prompt | " + " | ".join(label(n) for n in names) + " |",
              "|---|" + "---|" * len(names)]
    for i, entry in enumerate(fast["entries"]["ddim50"]):
      cells = []
      for n in names:
        anim = fast["entries"][n][i]["animation"]
        cells.append(f"[gif](samples/{anim})" if anim else "-")
      lines.append(f"| {entry['prompt']} | " + " | ".join(cells) + " |")
    lines.append("| seconds per call (6 prompts, compiled) | "
                 + " | ".join(f"{methods[n]['seconds']:.3f}" for n in names) + " |")
    lines.append("| compilation (s) | "
                 + " | ".join(f"{methods[n]['compile_seconds']:.1f}" for n in names) + " |")
    lines += ["", "![DDIM vs LCM](samples/fast_strip.png)", ""]
  prec = summary.get("precision")
  if prec:
    lines += ["## Matmul precision", "",
              "The LEAD prompts again with bfloat16 matmuls (float32 accumulation; `--matmul-dtype "
              "bfloat16`), same seed: joints differ from float32 by "
              f"{1000 * prec['mean_joint_diff_m']:.1f} mm on average, "
              f"{1000 * prec['max_joint_diff_m']:.1f} mm at most; seconds per call (6 prompts, "
              f"after compilation): float32 {prec['seconds']['float32']}, bfloat16 "
              f"{prec['seconds']['bfloat16']}.", ""]
  lines += [f"Total time: {summary.get('seconds', 0)} s.", ""]
  path = out / "report.md"
  path.write_text("\n".join(lines))
  return path


def run_demo(out: str | pathlib.Path, stages: Sequence[str] = ALL_STAGES, steps_scale: float = 1.0,
             seed: int = 0) -> dict:
  """Runs the demo stages into `out`; returns a summary dict (also written to summary.json)."""
  unknown = [s for s in stages if s not in ALL_STAGES]
  if unknown:
    raise ConfigError(f"unknown demo stage(s) {unknown}; choose from {list(ALL_STAGES)}")
  out = pathlib.Path(out).resolve()  # stage configs record absolute dependency workdirs
  out.mkdir(parents=True, exist_ok=True)
  data_dir = out / "data"
  summary: dict = {"stages": list(stages)}
  start = time.time()
  if "data" in stages or not (data_dir / "Mean.npy").exists():
    summary["data"] = build_embedded_dataset(data_dir)
  if "motion" in stages:
    summary["motion"] = motion_round_trip(data_dir, out / "motion")
  if "train" in stages:
    summary["train"] = train_demo_stages(data_dir, out / "workdirs", steps_scale)
  if "sample" in stages:
    pipe = Pipeline.from_workdir(out / "workdirs" / "projector")
    summary["sample"] = sample_demo_motions(pipe, out / "samples", seed)
    summary["fast"] = sample_fast_motions(pipe, out / "workdirs" / "lcm", out / "samples", seed)
    summary["precision"] = compare_precisions(pipe, seed)
    lead = [e for e in summary["sample"] if e["projector"]]
    render.render_strip([np.load(out / "samples" / e["joints"]) for e in lead],
                        out / "samples" / "strip.png", captions=[e["prompt"] for e in lead],
                        num_frames=6)
  if (out / "workdirs").exists():
    plot_loss_curves(out / "workdirs", out / "loss_curves.png")
  summary["seconds"] = round(time.time() - start, 1)
  write_report(out, summary)
  (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
  _log(f"done in {summary['seconds']} s -> {out}")
  return summary
