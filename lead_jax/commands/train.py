r"""Train one stage (VAE, denoiser, LEAD projector, LCM distillation or evaluator) from a config,
resuming from WORKDIR.

The stage is the config's `evaluator` section when it has one, 'lcm' when it has an `lcm` section
(consistency distillation of `dependencies.denoiser_workdir`), else its last model section:
`projector`, else `denoiser`, else `vae` (override with --stage; `lead_jax.workdir.stage_kind`).
Progress bar on stderr; scalars in WORKDIR/metrics.jsonl and WORKDIR/tensorboard; checkpoints in
WORKDIR/checkpoints. Devices: `--config.mesh.data` x `--config.mesh.fsdp` (default: data parallel
over all; `lead_jax.train.mesh`).

Exit status: 0 when trained to `train.num_steps`; 143 after SIGTERM (a checkpoint is saved first;
run the same command again to resume), so `lead-jax train ... && lead-jax train ...` stops there;
2 on an error (another run holds WORKDIR/train.lock, a non-finite loss or state, a full disk, ...).
A later stage records the VAE step and fingerprint and the dataset statistics it trains with; a
resumed run, or a frozen stage, whose record differs from what is loaded now stops with an error
unless --allow-dependency-change (another step of the same VAE run only warns).

Examples:
  lead-jax train --config=configs/vae_humanml3d.py --workdir=runs/vae \
      --config.data.dir=datasets/HumanML3D
  lead-jax train --config=configs/denoiser_humanml3d.py --workdir=runs/denoiser \
      --config.data.dir=datasets/HumanML3D --config.dependencies.vae_workdir=runs/vae \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
  lead-jax train --config=configs/lcm_humanml3d.py --workdir=runs/lcm \
      --config.data.dir=datasets/HumanML3D --config.dependencies.vae_workdir=runs/vae \
      --config.dependencies.denoiser_workdir=runs/denoiser \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
  lead-jax train --config=configs/evaluator_demo.py --workdir=runs/evaluator
  lead-jax train --config=configs/demo_vae.py --workdir=/tmp/demo_vae --multihost
"""

from __future__ import annotations

import argparse
import sys

from lead_jax.config_loader import add_override_arguments, load_config
from lead_jax.workdir import KINDS, stage_kind


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", required=True,
                      help="config file with get_config() (optionally path:arg); override fields "
                           "with --config.section.field=value")
  parser.add_argument("--workdir", required=True,
                      help="run directory: checkpoints, metrics.jsonl, tensorboard/ (resumed)")
  parser.add_argument("--stage", choices=KINDS, default=None,
                      help="stage to train (default: inferred from the config's model sections)")
  parser.add_argument("--multihost", action="store_true",
                      help="call jax.distributed.initialize() first (same as config.multihost)")
  parser.add_argument("--allow-dependency-change", action="store_true",
                      help="accept a VAE / dataset statistics other than those recorded (same as "
                           "--config.dependencies.allow_changed=True)")
  add_override_arguments(parser)


EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a shell reports for a terminated job


def run(args: argparse.Namespace) -> int:
  from lead_jax.train import train_stage  # pylint: disable=import-outside-toplevel
  from lead_jax.train.loop import TrainingPreempted  # pylint: disable=import-outside-toplevel
  config = load_config(args.config, args.config_overrides)
  if args.multihost:
    config.multihost = True
  if args.allow_dependency_change:
    config.dependencies.allow_changed = True
  stage = args.stage or stage_kind(config)
  try:
    state = train_stage(config, args.workdir, stage)
  except TrainingPreempted as e:
    print(f"lead-jax train: {e}", file=sys.stderr)
    return EXIT_PREEMPTED
  print(f"trained {stage} to step {int(state.step)}; checkpoints in {args.workdir}/checkpoints")
  return 0
