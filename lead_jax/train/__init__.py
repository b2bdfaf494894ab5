"""Training: one trainer per stage over a shared mesh, optimiser, jitted step and loop.

  from lead_jax.train import train_stage
  state = train_stage(config, workdir)          # stage: config's `lead_jax.workdir.stage_kind`

Modules, one idea each:
  mesh.py            the ("data", "fsdp") device mesh and where arrays live on it
  optim.py           AdamW, learning-rate schedules, clipping, gradient accumulation
  step.py            the one jitted, donated train step (`make_train_program`), EMA, bf16 compute
  loop.py            resume, log, evaluate, checkpoint, SIGTERM (`run_training`)
  stage.py           a trainer's plumbing: start, frozen dependencies, data streams, run
  latents.py         frozen-VAE latents for the latent stages
  metric_writers.py  metrics.jsonl and TensorBoard event files
  vae.py, denoiser.py, projector.py, evaluator.py   the stages (loss, evaluation, train_and_evaluate)
  lcm.py             MotionLCM's consistency distillation of a trained denoiser (stage kind 'lcm')

Mesh (`config.mesh`, defaults in `configs/train_common.py:mesh_config`):
  mesh.data  devices on the data axis (-1 = every device `fsdp` leaves)
  mesh.fsdp  devices on the fsdp axis (1 = pure data parallelism)
The batch is split over both axes; params, optimiser state and EMA are split over 'fsdp' along
their largest dimension divisible by its size (replicated when none divides); frozen inputs are
replicated. Every layout computes the same step (`lead_jax.train.mesh`).
"""

from __future__ import annotations

from typing import Any

from lead_jax.errors import ConfigError
from lead_jax.train import denoiser, evaluator, lcm, projector, vae
from lead_jax.train.state import TrainState
from lead_jax.workdir import stage_kind

STAGES = {"vae": vae, "denoiser": denoiser, "projector": projector, "lcm": lcm,
          "evaluator": evaluator}


def train_stage(config, workdir: str, stage: str | None = None, **kwargs: Any) -> TrainState:
  """Trains (or resumes) `stage` (default: `lead_jax.workdir.stage_kind(config)`) of `config` in
  `workdir`: `lead_jax.train.<stage>.train_and_evaluate(config, workdir, **kwargs)`."""
  stage = stage or stage_kind(config)
  if stage not in STAGES:
    raise ConfigError(f"unknown stage {stage!r}; expected one of {tuple(STAGES)}")
  return STAGES[stage].train_and_evaluate(config, workdir, **kwargs)
