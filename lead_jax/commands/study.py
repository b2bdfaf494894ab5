r"""Run a reproducible study end to end: `lead-jax study bandai` trains every stage from scratch on
the Bandai Namco motion capture and measures the paper's claims (see
lead_jax/recipes/bandai_study.py for the steps and the OUT layout).

Usage:
  lead-jax study bandai --out study                 # the 2-hour study on 2 CPU cores
  lead-jax study bandai --out quick --quick         # tiny models, few clips (~10 minutes)
  lead-jax study bandai --out study --steps data,evaluator,vae

Each finished step is recorded in OUT/steps.json and skipped when the command is run again; an
interrupted step restarts (training resumes from its checkpoints). OUT/time_log.md keeps the
per-step times. The data come from --bandai (default: $LEAD_JAX_SHARED_DATA/bandai, else
../shared/data/bandai): dataset-1/, dataset-2/ and dataset-2-more.tar.xz (CC BY-NC 4.0, Bandai
Namco Research Inc.).
"""

from __future__ import annotations

import argparse
import os
import pathlib

STUDIES = ("bandai",)


def default_bandai_dir() -> str:
  return str(pathlib.Path(os.environ.get("LEAD_JAX_SHARED_DATA", "../shared/data")) / "bandai")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("study", choices=STUDIES, help="which study")
  parser.add_argument("--out", required=True, help="study folder (created; reused when rerun)")
  parser.add_argument("--quick", action="store_true",
                      help="the quick scale: few clips, tiny models (the CI path)")
  parser.add_argument("--steps", default=None,
                      help="comma-separated subset of data,evaluator,vae,denoiser,projector,lcm,"
                           "evaluate,ablations,tsne,mti,report (default: all, in order)")
  parser.add_argument("--bandai", default=None,
                      help="the Bandai Namco folder (default: $LEAD_JAX_SHARED_DATA/bandai or "
                           "../shared/data/bandai)")


def run(args: argparse.Namespace) -> int:
  from lead_jax.recipes import bandai_study  # pylint: disable=import-outside-toplevel
  bandai_study.run_study(args.out, args.bandai or default_bandai_dir(),
                         scale="quick" if args.quick else "full", steps=args.steps)
  return 0
