r"""Train one stage (VAE, denoiser, LEAD projector or evaluator) from a config, resuming from WORKDIR.

The stage is the config's `evaluator` section when it has one, else its last model section:
`projector`, else `denoiser`, else `vae` (override with --stage; `lead_jax.workdir.stage_kind`). Progress bar on stderr; scalars in WORKDIR/metrics.jsonl and
WORKDIR/tensorboard; checkpoints in WORKDIR/checkpoints (SIGTERM saves one before exiting).

Examples:
  lead-jax train --config=configs/vae_humanml3d.py --workdir=runs/vae \
      --config.data.dir=datasets/HumanML3D
  lead-jax train --config=configs/denoiser_humanml3d.py --workdir=runs/denoiser \
      --config.data.dir=datasets/HumanML3D --config.dependencies.vae_workdir=runs/vae \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
  lead-jax train --config=configs/evaluator_demo.py --workdir=runs/evaluator
  lead-jax train --config=configs/demo_vae.py --workdir=/tmp/demo_vae --multihost
"""

from __future__ import annotations

import argparse
import importlib

from lead_jax.config_loader import add_override_arguments, load_config
from lead_jax.errors import ConfigError

STAGES = ("vae", "denoiser", "projector", "evaluator")


def stage_of(config) -> str:
  """The stage a config trains (`lead_jax.workdir.stage_kind`)."""
  from lead_jax.workdir import stage_kind  # pylint: disable=import-outside-toplevel
  return stage_kind(config)


def train_stage(config, workdir: str, stage: str | None = None, **kwargs):
  """Runs `lead_jax.train.<stage>.train_and_evaluate(config, workdir, **kwargs)`."""
  stage = stage or stage_of(config)
  if stage not in STAGES:
    raise ConfigError(f"unknown stage {stage!r}; expected one of {STAGES}")
  module = importlib.import_module(f"lead_jax.train.{stage}")
  return module.train_and_evaluate(config, workdir, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", required=True,
                      help="config file with get_config() (optionally path:arg); override fields "
                           "with --config.section.field=value")
  parser.add_argument("--workdir", required=True,
                      help="run directory: checkpoints, metrics.jsonl, tensorboard/ (resumed)")
  parser.add_argument("--stage", choices=STAGES, default=None,
                      help="stage to train (default: inferred from the config's model sections)")
  parser.add_argument("--multihost", action="store_true",
                      help="call jax.distributed.initialize() first (same as config.multihost)")
  add_override_arguments(parser)


def run(args: argparse.Namespace) -> int:
  config = load_config(args.config, getattr(args, "config_overrides", []))
  if args.multihost:
    config.multihost = True
  state = train_stage(config, args.workdir, args.stage)
  print(f"trained {args.stage or stage_of(config)} to step {int(state.step)}; "
        f"checkpoints in {args.workdir}/checkpoints")
  return 0
