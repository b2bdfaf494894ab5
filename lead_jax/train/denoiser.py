"""Stage 2: the MLD latent denoiser (reference §3.3, §5).

Per batch, with the VAE and the text encoder frozen (caption embeddings come precomputed in the
batch):
  z      = the frozen VAE's posterior sample of the batch's crop (`loss.latent='sample'`, MLD) or
           its mean ('mean'): encoded in the step (`latent_cache.crops_per_clip=0`, MLD; VAE
           params in `frozen`) or sampled from the latent cache (`lead_jax.train.latents`)
  text   = the empty caption's embedding with probability `loss.cfg_drop_prob` (0.1), else the
           caption's: classifier-free guidance training
  t ~ U{0..999}, eps ~ N(0, I), z_t = sqrt(abar_t) z + sqrt(1 - abar_t) eps   (scaled-linear DDPM)
  loss   = mean((denoiser(z_t, t, text) - eps)^2)
Randomness is split by purpose from the step key: latent, cfg, timestep, noise, dropout.
The frozen VAE runs without dropout unless `loss.vae_dropout` (re-encoding only).

  from lead_jax.train import denoiser
  state = denoiser.train_and_evaluate(config, workdir)   # config: configs/denoiser_humanml3d.py
Evaluation: epsilon MSE on `data.eval_split` with a fixed key per batch (same t and noise every
time), over the valid rows of the global batches; the cache's evaluation crops are the same.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.config_loader import require_fields
from lead_jax.diffusion import add_noise, make_scheduler, sample_timesteps
from lead_jax.models import build_denoiser, init_params
from lead_jax.train import evaluation, latents, stage
from lead_jax.train import mesh as mesh_lib
from lead_jax.train.state import TrainState
from lead_jax.train.step import LossFn, dropout_rng_impl, dropout_rngs, make_train_program

FIELDS = {"loss": ("cfg_drop_prob", "latent", "vae_dropout"), "train": ("eval_batches",),
          "scheduler": ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")}


def cfg_text(text_emb: jax.Array, null_emb: jax.Array, key: jax.Array, prob: float) -> jax.Array:
  """Replaces each row of `text_emb [B, E]` by `null_emb [E]` with probability `prob`."""
  drop = jax.random.bernoulli(key, prob, text_emb.shape[:1])
  return jnp.where(drop[:, None], null_emb[None].astype(text_emb.dtype), text_emb)


def make_loss_fn(model, vae, scheduler, config) -> LossFn:
  """`loss_fn(params, batch, frozen, key)`; `frozen = {'null_text_emb': [E]}` plus `'vae'` (its
  params) when the step encodes (`batch` with `motion`) rather than samples the cache."""
  require_fields(config, {"loss": FIELDS["loss"]}, "lead_jax.train.denoiser.make_loss_fn")
  loss_cfg = config.loss
  prob = float(loss_cfg.cfg_drop_prob)
  latent, vae_dropout = loss_cfg.latent, bool(loss_cfg.vae_dropout)
  rng_impl = dropout_rng_impl(config)

  def loss_fn(params, batch, frozen, key):
    k_latent, k_cfg, k_t, k_noise, k_dropout = jax.random.split(key, 5)
    z = latents.batch_latents(vae, frozen.get("vae"), batch, k_latent, latent, vae_dropout)
    text = cfg_text(batch["text_emb"], frozen["null_text_emb"], k_cfg, prob)
    t = sample_timesteps(k_t, z.shape[0], scheduler.num_train_timesteps)
    noise = jax.random.normal(k_noise, z.shape, z.dtype)
    z_t = add_noise(scheduler, z, noise, t)
    eps = model.apply({"params": params}, z_t, t, text, deterministic=False,
                      rngs=dropout_rngs(k_dropout, rng_impl))
    mse = jnp.mean(jnp.square(eps.astype(jnp.float32) - noise.astype(jnp.float32)))
    return mse, {"eps_mse": mse}

  return loss_fn


def make_eval_fn(model, vae, scheduler, config, eval_stream, frozen, mesh):
  """`eval_fn(state) -> {eps_mse}` over the valid rows of the global evaluation batches, a fixed
  key per batch (comparable across steps); `frozen` on `mesh` (`mesh_lib.replicate`)."""
  require_fields(config, FIELDS, "lead_jax.train.denoiser.make_eval_fn")
  latent, limit = config.loss.latent, int(config.train.eval_batches)

  @jax.jit
  def eval_step(params, batch, frozen, key):
    k_latent, k_t, k_noise = jax.random.split(key, 3)
    z = latents.batch_latents(vae, frozen.get("vae"), batch, k_latent, latent)
    t = sample_timesteps(k_t, z.shape[0], scheduler.num_train_timesteps)
    noise = jax.random.normal(k_noise, z.shape, z.dtype)
    eps = model.apply({"params": params}, add_noise(scheduler, z, noise, t), t, batch["text_emb"])
    per_row = jnp.mean(jnp.square(eps - noise), axis=(1, 2))
    valid = batch["valid"].astype(jnp.float32)
    return jnp.sum(per_row * valid), jnp.sum(valid)

  def eval_fn(state: TrainState) -> dict[str, float]:
    total, count = 0.0, 0.0
    for i, batch in enumerate(stage.eval_batches(eval_stream, limit)):
      batch = mesh_lib.to_global_batch(batch, mesh)
      s, n = mesh_lib.to_host(eval_step(state.params, batch, frozen, jax.random.key(i)))
      total, count = total + float(s), count + float(n)
    return {"eps_mse": total / max(count, 1.0)}

  return eval_fn


def train_and_evaluate(config, workdir: str, *, text_encoder: Any = None) -> TrainState:
  """Trains (or resumes) the denoiser of `config` in `workdir` on top of the VAE checkpoint in
  `config.dependencies.vae_workdir`; `text_encoder` defaults to the one the config names."""
  mesh = stage.start_stage(config)
  model = build_denoiser(config.denoiser)
  vae_stage = stage.load_dependency(config, "vae")
  text_encoder = text_encoder or stage.load_text_encoder(config)
  train_stream, eval_stream = latents.latent_source(config, workdir, vae_stage, text_encoder)
  frozen = {"null_text_emb": np.asarray(train_stream.null_text_emb, np.float32)}
  if not latents.uses_cache(config):
    frozen["vae"] = vae_stage.params
  frozen = mesh_lib.replicate(frozen, mesh)
  scheduler = make_scheduler(config.scheduler, "ddpm")
  program = make_train_program(
      config, mesh, lambda key: init_params("denoiser", model, key),
      make_loss_fn(model, vae_stage.module, scheduler, config))
  eval_fn = None
  if eval_stream is not None:
    eval_fn = make_eval_fn(model, vae_stage.module, scheduler, config, eval_stream, frozen, mesh)
  eval_fn = evaluation.combine(eval_fn, evaluation.for_stage(
      config, text_encoder, train_stream.null_text_emb,
      {"vae": vae_stage.module, "denoiser": model}, {"vae": vae_stage.params}, "denoiser",
      config.scheduler))
  return stage.run_stage(config, workdir, program, train_stream, frozen, eval_fn, mesh)
