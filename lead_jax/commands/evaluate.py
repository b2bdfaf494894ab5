r"""Evaluate trained models with the T2M protocol and write the paper's Table 1 (or Table 3).

Rows: Real (the evaluator on ground truth), "MLD mode" (no projector) and "LEAD" (projector round
trip; only when --workdir is a projector stage). Each metric is the mean ±95% CI over
--replications (20 in the paper). --evaluator is either the published T2M evaluator `finest.tar`
(then --glove names the GloVe folder and --eval-mean/--eval-std its statistics) or the workdir of
an evaluator trained with `lead_jax.metrics.trainable_evaluator`.

--mti runs the paper's motion-textual-inversion protocol (Sec. 5.5, Table 3) instead: a seeded
random subset of --mti-size (100) test motions; for each, one token ("<mti-K>") is learnt from that
motion alone with `lead_jax.train.inversion` in each --mti-space (lead | mld | feat; steps, lr,
batch, segments from configs/inversion.py or --mti-config, --mti-steps / --mti-lr override) and
forgotten before the next motion; --replications samples per motion are generated from
--mti-template ("a person <*>", <*> = the token) at the motion's length, without and with the
projector. Rows: Real, MTI_<space>, MTI_<space> w/ project; columns R@3, FID, MM-Dist, Diversity
(text = the motion's ground-truth caption, FID against the subset's ground truth).

Examples:
  lead-jax evaluate --workdir runs/projector --evaluator deps/t2m/t2m/text_mot_match/model/finest.tar \
      --glove deps/glove --eval-mean deps/t2m/t2m/Comp_v6_KLD01/meta/mean.npy \
      --eval-std deps/t2m/t2m/Comp_v6_KLD01/meta/std.npy --out eval/
  lead-jax evaluate --workdir runs/projector --evaluator runs/evaluator_demo --replications 3 --out eval/
  lead-jax evaluate --workdir runs/projector --evaluator runs/evaluator_demo --mti \
      --mti-space lead mld feat --mti-size 100 --mti-steps 20 --mti-template "a person <*>" --out mti/
Writes OUT/table.md and OUT/table.json (per-replication values, settings).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from lead_jax.commands import pipeline_args
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
  pipeline_args.add_matmul_dtype_argument(parser)
  parser.add_argument("--replications", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
  parser.add_argument("--guidance", type=float, default=7.5)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--mm-prompts", type=int, default=100)
  parser.add_argument("--mm-repeats", type=int, default=30)
  parser.add_argument("--mti", action="store_true", help="the MTI protocol of Table 3 on a subset")
  parser.add_argument("--mti-size", type=int, default=100, help="motions in the MTI subset")
  parser.add_argument("--mti-space", nargs="+", choices=("lead", "mld", "feat"), default=["lead"],
                      help="inversion objective(s); one pair of table rows each")
  parser.add_argument("--mti-template", default="a person <*>",
                      help="generation prompt; <*> is replaced by the motion's token")
  parser.add_argument("--mti-init-word", default="move",
                      help="word initialising every token ('' = mean of the token table)")
  parser.add_argument("--mti-steps", type=int, default=None, help="Adam steps (config: 20)")
  parser.add_argument("--mti-lr", type=float, default=None, help="Adam learning rate (config)")
  parser.add_argument("--mti-config", default=None,
                      help="inversion config file (default configs/inversion.py)")


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
  from lead_jax.metrics import embedders  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(args.evaluator)
  if path.is_dir():
    from lead_jax import workdir  # pylint: disable=import-outside-toplevel
    return embedders.TrainedEmbedder(workdir.load_trained_evaluator(path), mean, std)
  from lead_jax.convert import t2m_ckpt  # pylint: disable=import-outside-toplevel
  if not (args.eval_mean and args.eval_std and args.glove):
    raise ConfigError("the T2M evaluator needs --glove, --eval-mean and --eval-std. "
                      + t2m_ckpt.EVALUATOR_HINT + " " + t2m_ckpt.GLOVE_HINT)
  wv = t2m_ckpt.WordVectorizer(args.glove)
  evaluator = t2m_ckpt.load_t2m_evaluator(path, args.eval_mean, args.eval_std)
  return embedders.T2MEmbedder(evaluator, wv)


def mti_settings(args: argparse.Namespace):
  """`mti.MTISettings` from the --mti-* flags over the inversion config."""
  from lead_jax.evaluation import mti  # pylint: disable=import-outside-toplevel
  from lead_jax.train import inversion  # pylint: disable=import-outside-toplevel
  if args.mti_size < 2:
    raise ConfigError(f"--mti-size must be >= 2, found {args.mti_size}")
  if inversion.PLACEHOLDER not in args.mti_template:
    raise ConfigError(f"--mti-template must contain {inversion.PLACEHOLDER!r}, found "
                      f"{args.mti_template!r}")
  inv = inversion.InversionSettings.from_config(pipeline_args.inversion_config(args.mti_config),
                                                steps=args.mti_steps, learning_rate=args.mti_lr)
  return mti.MTISettings(inversion=inv, size=args.mti_size, spaces=tuple(args.mti_space),
                              template=args.mti_template, init_word=args.mti_init_word,
                              guidance_scale=args.guidance, steps=args.steps)


def run(args: argparse.Namespace) -> int:
  from lead_jax.evaluation import protocol  # pylint: disable=import-outside-toplevel
  from lead_jax.evaluation import mti as mti_protocol  # pylint: disable=import-outside-toplevel
  from lead_jax.evaluation import report  # pylint: disable=import-outside-toplevel
  from lead_jax.generate import Pipeline  # pylint: disable=import-outside-toplevel
  mti = mti_settings(args) if args.mti else None
  pipe = Pipeline.from_workdir(args.workdir, data_dir=args.data_dir or None,
                               matmul_dtype=args.matmul_dtype)
  mean, std = np.asarray(pipe.mean, np.float32), np.asarray(pipe.std, np.float32)
  embedder = load_embedder(args, mean, std)
  config = _eval_config(args.workdir, args.data_dir, args.batch_size)
  batches = protocol.stream_batches(config, pipe.text_encoder, args.split)
  progress = lambda s: print(s, file=sys.stderr)
  if mti is not None:
    settings = protocol.ProtocolSettings(replications=args.replications, seed=args.seed,
                                         mm_prompts=0)
    result = mti_protocol.evaluate_mti(embedder, pipe, batches, settings, mti, mean, std,
                                       progress)
    md, js = report.write_report(
        result, args.out, report.TABLE3_COLUMNS,
        f"MTI protocol on {result['settings']['mti']['size']} {args.split} motions (Table 3)")
  else:
    common = dict(guidance_scale=args.guidance, steps=args.steps)
    methods = {"MLD mode": protocol.pipeline_generator(pipe, False, **common)}
    if pipe.has_projector:
      methods["LEAD"] = protocol.pipeline_generator(pipe, True, **common)
    settings = protocol.ProtocolSettings(
        replications=args.replications, seed=args.seed, mm_prompts=args.mm_prompts,
        mm_repeats=args.mm_repeats)
    result = protocol.evaluate(embedder, batches, methods, settings, mean, std, progress=progress)
    md, js = report.write_report(result, args.out, report.TABLE1_COLUMNS,
                                   "Text-to-motion (Table 1 layout)")
  print(md.read_text())
  print(f"wrote {md} and {js}")
  return 0
