"""Stage workdirs from weights trained elsewhere (MLD's and MotionLCM's published checkpoints).

An imported stage is saved exactly as a trained one, at step 0: its `params`, a fresh optimiser
state of its config, the run's base key and the config. Every command then takes it like a
trained workdir (`sample`, `evaluate`, `plot-latents`, `invert`, a later stage's
`dependencies.<stage>_workdir`), and `lead-jax train` of its config continues from the imported
weights.

  stages = import_checkpoint("mld", "mld.ckpt", "runs/mld", text_encoder_kind="clip",
                             text_encoder_path="deps/clip", data_dir="datasets/HumanML3D")
  stages = import_checkpoint("motionlcm", "motionlcm.ckpt", "runs/motionlcm", ...)  # vae, lcm
  stage = write_stage(vae_config, "mld/vae", vae_params, source="mld.ckpt")

Each imported stage's config is the repository's config of that stage and dataset
(`configs/<stage>_<dataset>.py`) with the model sections read from the checkpoint's tensors
(`lead_jax.convert.mld_ckpt.infer_sections`), the text encoder, the statistics folder and, for the
second stage, `dependencies.vae_workdir` = OUT/vae. A state dict cannot say pre- or post-norm:
MLD's and MotionLCM's released configs are post-norm, which the configs keep.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import jax

from lead_jax import checkpoints
from lead_jax import workdir as stage_io
from lead_jax.config_loader import load_config, repo_config
from lead_jax.convert import mld_ckpt, motionlcm_ckpt
from lead_jax.data import layout
from lead_jax.errors import ConfigError, InputError
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


# The stages each published checkpoint holds, in the order they are written.
CHECKPOINT_STAGES = {"mld": ("vae", "denoiser"), "motionlcm": ("vae", "lcm")}
DATASETS = {263: "humanml3d", 251: "kit"}


def read_checkpoint(kind: str, ckpt: str | os.PathLike, num_heads: int, allow_pickle: bool
                    ) -> tuple[dict[str, dict], dict[str, Any]]:
  """(model sections, {stage: params}) of MLD's or MotionLCM's published `.ckpt`."""
  if kind == "mld":
    sections, (vae, den) = mld_ckpt.read_mld_checkpoint(ckpt, num_heads=num_heads,
                                                        allow_pickle=allow_pickle)
    if den is None:
      raise ConfigError(f"{ckpt} holds a VAE only (no denoiser.* keys); MLD's release has both")
    return sections, {"vae": vae, "denoiser": den}
  if kind == "motionlcm":
    sections, vae, den = motionlcm_ckpt.read_motionlcm_checkpoint(ckpt, num_heads, allow_pickle)
    return sections, {"vae": vae, "lcm": den}
  raise ConfigError(f"checkpoint kind {kind!r}; expected one of {sorted(CHECKPOINT_STAGES)}")


def import_checkpoint(kind: str, ckpt: str | os.PathLike, out: str | os.PathLike, *,
                      text_encoder_kind: str, text_encoder_path: str, data_dir: str,
                      num_heads: int = 4, allow_pickle: bool = False
                      ) -> tuple[dict[str, dict], dict[str, stage_io.Stage]]:
  """MLD's (`kind='mld'`: OUT/vae, OUT/denoiser) or MotionLCM's (`'motionlcm'`: OUT/vae,
  OUT/lcm) published checkpoint as stage workdirs at step 0; returns (the model sections read,
  {stage: the stage loaded back}). `data_dir` holds the Mean.npy/Std.npy the stages use;
  `allow_pickle` reads a checkpoint that needs pickle (trusted files only)."""
  sections, params = read_checkpoint(kind, ckpt, num_heads, allow_pickle)
  nfeats = int(sections["vae"]["nfeats"])
  if nfeats not in DATASETS:
    raise ConfigError(f"{ckpt}: the VAE reads {nfeats} features, neither HumanML3D (263) nor "
                      "KIT-ML (251)")
  layout.load_stats(data_dir, nfeats)  # statistics of the VAE's width, checked before writing
  out = pathlib.Path(out).resolve()
  written = {}
  for stage in CHECKPOINT_STAGES[kind]:
    config = load_config(str(repo_config(f"{stage}_{DATASETS[nfeats]}.py")))
    config.text_encoder.kind = text_encoder_kind
    config.text_encoder.dim = int(sections["denoiser"]["text_dim"])
    for name in ("vae", "denoiser"):
      if name in config:
        config[name].update(sections[name])
    config.data.dir = str(data_dir)
    config.dependencies.text_encoder_path = str(text_encoder_path)
    if stage != "vae":
      config.dependencies.vae_workdir = str(out / "vae")
    written[stage] = write_stage(config, out / stage, params[stage], os.fspath(ckpt))
  return sections, written
