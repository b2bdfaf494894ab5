"""The embedded default job, end to end, on a fresh machine with no data and no weights.

Usage:
  lead-jax demo --out demo            # everything (a few minutes on 2 CPU cores)
  lead-jax demo --out demo --steps-scale 0.2   # shorter training, for a smoke test

Stages (each reuses what an earlier run left in OUT):
  1. data:   import the 15 DeepMimic clips that ship inside the pybullet wheel into OUT/data
             (HumanML3D layout, captions from the clip names with paraphrases);
  2. motion: features -> joints round trip on every clip (error table), BVH export and re-read,
             a key-frame strip and an animation of the clips;
  3. train:  VAE, denoiser, its MotionLCM student and the LEAD projector with the tiny demo configs
             (MiniLM text encoder) in OUT/workdirs/{vae,denoiser,lcm,projector};
  4. sample: motions for a handful of prompts with and without the projector, and with the LCM
             student at 1 and 4 steps beside 50 DDIM steps (OUT/samples, index.json), loss curves,
             and OUT/report.md linking everything.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--out", required=True, help="output folder")
  parser.add_argument("--stages", default="data,motion,train,sample",
                      help="comma-separated subset of data,motion,train,sample")
  parser.add_argument("--steps-scale", type=float, default=1.0,
                      help="multiply every stage's training steps (e.g. 0.1 for a smoke test)")
  parser.add_argument("--seed", type=int, default=0, help="sampling seed")


def run(args: argparse.Namespace) -> int:
  from lead_jax.recipes import demo  # pylint: disable=import-outside-toplevel
  stages = [s.strip() for s in args.stages.split(",") if s.strip()]
  demo.run_demo(args.out, stages=stages, steps_scale=args.steps_scale, seed=args.seed)
  return 0
