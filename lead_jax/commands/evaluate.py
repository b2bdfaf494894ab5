"""Evaluate trained models with the T2M protocol and write the paper's Table 1 (or Table 3).

Rows: Real (the evaluator on ground truth), "MLD mode" (no projector) and "LEAD" (projector round
trip; only when --workdir is a projector stage). Each metric is the mean ±95% CI over
--replications (20 in the paper). --evaluator is either the published T2M evaluator `finest.tar`
(then --glove names the GloVe folder and --eval-mean/--eval-std its statistics) or the workdir of
an evaluator trained with `lead_jax.evaluation.trainable_evaluator`. --mti evaluates the Table 3
protocol (R@3, FID, MM-Dist, Diversity) on the first --mti-size (100) test motions.

Examples:
  lead-jax evaluate --workdir runs/projector --evaluator deps/t2m/t2m/text_mot_match/model/finest.tar \
      --glove deps/glove --eval-mean deps/t2m/t2m/Comp_v6_KLD01/meta/mean.npy \
      --eval-std deps/t2m/t2m/Comp_v6_KLD01/meta/std.npy --out eval/
  lead-jax evaluate --workdir runs/projector --evaluator runs/evaluator_demo --replications 3 --out eval/
Writes OUT/table.md and OUT/table.json (per-replication values, settings).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from lead_jax.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True, help="projector (LEAD) or denoiser (MLD) workdir")
  parser.add_argument("--evaluator", required=True, help="finest.tar or a trained-evaluator workdir")
  parser.add_argument("--out", required=True, help="output folder for table.md / table.json")
  parser.add_argument("--glove", default="", help="GloVe folder (our_vab_*) for the T2M evaluator")
  parser.add_argument("--eval-mean", default="", help="T2M evaluator mean.npy")
  parser.add_argument("--eval-std", default="", help="T2M evaluator std.npy")
  parser.add_argument("--data-dir", default="", help="dataset folder (default: the stage config's)")
  parser.add_argument("--split", default="test")
  parser.add_argument("--replications", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
  parser.add_argument("--guidance", type=float, default=7.5)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--mm-prompts", type=int, default=100)
  parser.add_argument("--mm-repeats", type=int, default=30)
  parser.add_argument("--mti", action="store_true", help="Table 3 protocol on a subset")
  parser.add_argument("--mti-size", type=int, default=100)


def _eval_config(workdir: str, data_dir: str, batch_size: int):
  import ml_collections  # pylint: disable=import-outside-toplevel
  from lead_jax import checkpoints  # pylint: disable=import-outside-toplevel
  config = ml_collections.ConfigDict(checkpoints.load_config(workdir))
  if "data" not in config:
    raise ConfigError(f"{workdir}: the saved config has no data section")
  if data_dir:
    config.data.dir = data_dir
  config.data.batch_size = batch_size
  config.data.prefetch = 0
  return config


def load_embedder(args, mean: np.ndarray, std: np.ndarray):
  """The protocol embedder named by --evaluator."""
  from lead_jax.evaluation import protocol  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(args.evaluator)
  if path.is_dir():
    from lead_jax.evaluation import trainable_evaluator  # pylint: disable=import-outside-toplevel
    return protocol.TrainedEmbedder(trainable_evaluator.load_trained_evaluator(str(path)),
                                    mean, std)
  from lead_jax.convert import t2m_ckpt  # pylint: disable=import-outside-toplevel
  from lead_jax.evaluation.t2m_evaluator import T2MEvaluator  # pylint: disable=import-outside-toplevel
  if not (args.eval_mean and args.eval_std and args.glove):
    raise ConfigError("the T2M evaluator needs --glove, --eval-mean and --eval-std. "
                      + t2m_ckpt.EVALUATOR_HINT + " " + t2m_ckpt.GLOVE_HINT)
  wv = t2m_ckpt.WordVectorizer(args.glove)
  evaluator = T2MEvaluator.from_files(str(path), args.eval_mean, args.eval_std)
  return protocol.T2MEmbedder(evaluator, wv)


def run(args: argparse.Namespace) -> int:
  from lead_jax.evaluation import protocol  # pylint: disable=import-outside-toplevel
  from lead_jax.pipeline import Pipeline  # pylint: disable=import-outside-toplevel
  pipe = Pipeline.from_workdir(args.workdir, data_dir=args.data_dir or None)
  mean, std = np.asarray(pipe.mean, np.float32), np.asarray(pipe.std, np.float32)
  embedder = load_embedder(args, mean, std)
  config = _eval_config(args.workdir, args.data_dir, args.batch_size)
  batches = protocol.stream_batches(config, pipe.text_encoder, args.split)
  common = dict(guidance_scale=args.guidance, steps=args.steps)
  methods = {"MLD mode": protocol.pipeline_generator(pipe, False, **common)}
  if pipe.has_projector:
    methods["LEAD"] = protocol.pipeline_generator(pipe, True, **common)
  settings = protocol.ProtocolSettings(
      replications=args.replications, seed=args.seed,
      mm_prompts=0 if args.mti else args.mm_prompts, mm_repeats=args.mm_repeats,
      max_examples=args.mti_size if args.mti else 0)
  result = protocol.evaluate(embedder, batches, methods, settings, mean, std,
                             progress=lambda s: print(s, file=sys.stderr))
  if args.mti:
    md, js = protocol.write_report(result, args.out, protocol.TABLE3_COLUMNS,
                                   f"MTI protocol on {args.mti_size} test motions (Table 3)")
  else:
    md, js = protocol.write_report(result, args.out, protocol.TABLE1_COLUMNS,
                                   "Text-to-motion (Table 1 layout)")
  print(md.read_text())
  print(f"wrote {md} and {js}")
  return 0
