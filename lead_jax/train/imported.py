"""Stage workdirs from weights trained elsewhere (MLD's and MotionLCM's published checkpoints).

An imported stage is saved exactly as a trained one, at step 0: its `params`, a fresh optimiser
state of its config, the run's base key and the config. Every command then takes it like a
trained workdir (`sample`, `evaluate`, `plot-latents`, `invert`, a later stage's
`dependencies.<stage>_workdir`), and `lead-jax train` of its config continues from the imported
weights.

  stage = write_stage(vae_config, "mld/vae", vae_params, source="mld.ckpt")
"""

from __future__ import annotations

import os
from typing import Any

import jax

from lead_jax import checkpoints
from lead_jax import workdir as stage_io
from lead_jax.errors import InputError
from lead_jax.train.loop import save_checkpoint
from lead_jax.train.optim import make_optimizer
from lead_jax.train.state import TrainState


def write_stage(config, workdir: str | os.PathLike, params: Any, source: str) -> stage_io.Stage:
  """Saves `params` as step 0 of a new stage workdir with `config` (checked: the parameters must
  fit the config's model); returns the stage as `lead_jax.workdir.load_stage` reads it back."""
  workdir = os.fspath(workdir)
  if checkpoints.checkpoint_dir(workdir).is_dir() and any(
      checkpoints.checkpoint_dir(workdir).iterdir()):
    raise InputError(f"{workdir} already holds checkpoints; import into a new folder")
  kind = stage_io.stage_kind(config)
  target = stage_io.module_shapes(kind, stage_io.build_module(kind, config))
  checkpoints.check_matches(params, target, f"{source} -> {kind}")
  optimizer, _ = make_optimizer(config.optimizer, int(config.train.num_steps))
  state = TrainState.create(jax.tree.map(jax.numpy.asarray, params), optimizer,
                            rng=jax.random.key(int(config.seed)))
  with checkpoints.Checkpointer(workdir, max_to_keep=1) as ckpt:
    save_checkpoint(ckpt, state, config, None)
    ckpt.wait()
  return stage_io.load_stage(workdir, kind)
