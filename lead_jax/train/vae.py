"""Stage 1: the MLD motion VAE (reference §2.5, §2.6).

Loss per batch (MLD's `update()` for stage 'vae'):
  lambda_rec   * SmoothL1(recon, motion)                         normalised features [B, T, D]
  lambda_joint * SmoothL1(joints(recon * Std + Mean), joints(motion * Std + Mean))   [B, T, J, 3]
  lambda_kl    * mean(0.5 * (mu^2 + exp(logvar) - 1) - 0.5 * logvar)    KL(N(mu, sigma) || N(0, 1))
SmoothL1 with beta 1, averaged over every element of the padded batch as MLD does (padded frames
are zero in both tensors and count in the denominator; their joints still differ through the root
trajectory, which MLD also lets leak). `loss.masked_mean=True` averages over valid frames instead.
The encoder samples z (reparameterised) and dropout is on, as in training mode.

  from lead_jax.train import vae
  state = vae.train_and_evaluate(config, workdir)      # config from configs/vae_humanml3d.py
Evaluation (`train.eval_every`): on `data.eval_split`, the posterior mean is decoded and
`rec_loss` (SmoothL1 of features, valid frames), `feat_mse` and `mpjpe` (mean joint error, metres,
valid frames) are reported.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.config_loader import require_fields
from lead_jax.models import build_vae, init_params
from lead_jax.motion import recover_from_ric
from lead_jax.train import mesh as mesh_lib
from lead_jax.train import stage
from lead_jax.train.state import TrainState
from lead_jax.train.step import LossFn, dropout_rng_impl, dropout_rngs, make_train_program

FIELDS = {"loss": ("lambda_rec", "lambda_joint", "lambda_kl", "masked_mean"),
          "dataset": ("joints_num",), "train": ("eval_batches",)}


def smooth_l1(x: jax.Array, y: jax.Array) -> jax.Array:
  """Elementwise SmoothL1 (Huber with beta 1): 0.5 d^2 if |d| < 1 else |d| - 0.5."""
  d = jnp.abs(x - y)
  return jnp.where(d < 1.0, 0.5 * d * d, d - 0.5)


def gaussian_kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """Mean over elements of KL(N(mu, exp(logvar)) || N(0, 1))."""
  return jnp.mean(0.5 * (mu * mu + jnp.exp(logvar) - 1.0) - 0.5 * logvar)


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of `values [B, T, ...]` over valid frames `mask [B, T]` (and all trailing elements)."""
  m = mask.reshape(mask.shape + (1,) * (values.ndim - 2)).astype(values.dtype)
  per_frame = np.prod(values.shape[2:])
  return jnp.sum(values * m) / jnp.maximum(jnp.sum(m) * per_frame, 1.0)


def make_loss_fn(model, config) -> LossFn:
  """`loss_fn(params, batch, frozen, key)`; `frozen` holds the dataset `mean`, `std` `[D]`."""
  require_fields(config, FIELDS, "lead_jax.train.vae.make_loss_fn")
  loss_cfg = config.loss
  joints_num = int(config.dataset.joints_num)
  masked = bool(loss_cfg.masked_mean)
  rng_impl = dropout_rng_impl(config)

  def loss_fn(params, batch: Mapping[str, jax.Array], frozen: Mapping[str, jax.Array],
              key: jax.Array):
    sample_key, dropout_key = jax.random.split(key)
    motion, mask = batch["motion"], batch["mask"]
    recon, _, mu, logvar = model.apply({"params": params}, motion, mask, sample_key,
                                       deterministic=False,
                                       rngs=dropout_rngs(dropout_key, rng_impl))
    recon, mu, logvar = (x.astype(jnp.float32) for x in (recon, mu, logvar))
    motion = motion.astype(jnp.float32)
    mean, std = frozen["mean"].astype(jnp.float32), frozen["std"].astype(jnp.float32)
    joints_rst = recover_from_ric(recon * std + mean, joints_num)
    joints_ref = recover_from_ric(motion * std + mean, joints_num)
    reduce = (lambda v: _masked_mean(v, mask)) if masked else jnp.mean
    rec = reduce(smooth_l1(recon, motion))
    joint = reduce(smooth_l1(joints_rst, joints_ref))
    kl = gaussian_kl(mu, logvar)
    loss = (loss_cfg.lambda_rec * rec + loss_cfg.lambda_joint * joint + loss_cfg.lambda_kl * kl)
    return loss, {"rec_feature": rec, "rec_joints": joint, "kl": kl}

  return loss_fn


def make_eval_step(model, joints_num: int):
  """Jitted `(params, batch, frozen) -> sums` of the reconstruction metrics over valid frames."""

  @jax.jit
  def eval_step(params, batch, frozen):
    motion, mask = batch["motion"], batch["mask"]
    frame_mask = mask & batch["valid"][:, None]
    _, mu, _ = model.apply({"params": params}, motion, mask, None, method=model.encode)
    recon = model.apply({"params": params}, mu, mask, method=model.decode)
    joints_rst = recover_from_ric(recon * frozen["std"] + frozen["mean"], joints_num)
    joints_ref = recover_from_ric(motion * frozen["std"] + frozen["mean"], joints_num)
    m = frame_mask.astype(jnp.float32)
    err = jnp.linalg.norm(joints_rst - joints_ref, axis=-1).mean(-1)  # [B, T]
    return {"frames": m.sum(),
            "rec_loss": jnp.sum(smooth_l1(recon, motion).mean(-1) * m),
            "feat_mse": jnp.sum(jnp.square(recon - motion).mean(-1) * m),
            "mpjpe": jnp.sum(err * m)}

  return eval_step


def make_eval_fn(model, config, eval_stream, frozen, mesh):
  """`eval_fn(state) -> {rec_loss, feat_mse, mpjpe}` averaged over the valid frames of the global
  evaluation batches, of the weights later stages will use (the EMA when the run keeps one:
  `lead_jax.workdir`'s rule). `frozen` is on `mesh` (`mesh_lib.replicate`)."""
  require_fields(config, FIELDS, "lead_jax.train.vae.make_eval_fn")
  eval_step = make_eval_step(model, int(config.dataset.joints_num))
  limit = int(config.train.eval_batches)

  def eval_fn(state: TrainState) -> dict[str, float]:
    params = state.ema_params if state.ema_params is not None else state.params
    totals: dict[str, float] = {}
    for batch in stage.eval_batches(eval_stream, limit):
      batch = {k: v for k, v in batch.items() if k in ("motion", "mask", "valid")}
      sums = mesh_lib.to_host(eval_step(params, mesh_lib.to_global_batch(batch, mesh), frozen))
      for k, v in sums.items():
        totals[k] = totals.get(k, 0.0) + float(v)
    frames = max(totals.pop("frames", 0.0), 1.0)
    return {k: v / frames for k, v in totals.items()}

  return eval_fn


def train_and_evaluate(config, workdir: str, *, text_encoder: Any = None) -> TrainState:
  """Trains (or resumes) the VAE of `config` in `workdir`; returns the final state.

  Captions are not used by this stage: unless a `text_encoder` is given, none is loaded.
  """
  mesh = stage.start_stage(config)
  model = build_vae(config.vae)
  train_stream, eval_stream = stage.stage_streams(config, text_encoder or stage.CaptionsUnused())
  mean, std = stage.dataset_stats(config)
  frozen = mesh_lib.replicate({"mean": np.asarray(mean, np.float32),
                               "std": np.asarray(std, np.float32)}, mesh)
  program = make_train_program(
      config, mesh, lambda key: init_params("vae", model, key), make_loss_fn(model, config))
  eval_fn = None
  if eval_stream is not None:
    eval_fn = make_eval_fn(model, config, eval_stream, frozen, mesh)
  return stage.run_stage(config, workdir, program, train_stream, frozen, eval_fn, mesh)
