"""Stage 3: the LEAD projector P = (E_proj, D_proj) (paper Sec. 4, Eq. 7; reference §0).

Everything but the projector is frozen: the VAE gives z_vae = E_vae(x) of the training crop
(posterior sample, or its mean with `loss.latent='mean'`), encoded in the step
(`latent_cache.crops_per_clip=0`; VAE params in `frozen`) or sampled from the latent cache
(`lead_jax.train.latents`); the text encoder's caption embedding comes precomputed in the batch. With z_proj = E_proj(z_vae), z_hat = D_proj(z_proj):
  loss = w_rec * ||z_vae - z_hat||^2 + w_align * (1 - cos(z_proj, c_text)) + w_kl * KL_batch
(`lead_jax.models.projector_loss`; weights 4.7036, 2.1591, 0.0596; a weight of 0 removes the term,
giving the paper's noREC / noALIGN / noKL ablations). The architecture is `config.projector.arch`
('transformer' | 'skip' | 'mlp'). The denoiser is not needed to train the projector.

  from lead_jax.train import projector
  state = projector.train_and_evaluate(config, workdir)  # config: configs/projector_humanml3d.py
Evaluation: the three terms and the loss on `data.eval_split` (dropout off, posterior mean); each
batch's terms (the KL's batch statistics included) are over the valid rows of the global batch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lead_jax.config_loader import require_fields
from lead_jax.errors import ConfigError
from lead_jax.models import build_projector, init_params, projector_loss
from lead_jax.train import evaluation, latents
from lead_jax.train import mesh as mesh_lib
from lead_jax.train import stage
from lead_jax.train.state import TrainState
from lead_jax.train.step import LossFn, dropout_rng_impl, dropout_rngs, make_train_program

FIELDS = {"loss": ("w_rec", "w_align", "w_kl", "kl_eps", "latent"), "train": ("eval_batches",)}


def loss_weights(config) -> tuple[float, float, float]:
  """(w_rec, w_align, w_kl) of `config.loss` (0 removes a term)."""
  require_fields(config, {"loss": FIELDS["loss"]}, "lead_jax.train.projector")
  loss_cfg = config.loss
  return (float(loss_cfg.w_rec), float(loss_cfg.w_align), float(loss_cfg.w_kl))


def make_loss_fn(model, vae, config) -> LossFn:
  """`loss_fn(params, batch, frozen, key)`; `frozen = {'vae': params}` when the step encodes
  (`batch` with `motion`), `{}` when it samples the latent cache."""
  weights = loss_weights(config)
  eps, latent = float(config.loss.kl_eps), config.loss.latent
  rng_impl = dropout_rng_impl(config)

  def loss_fn(params, batch, frozen, key):
    k_latent, k_dropout = jax.random.split(key)
    z = latents.batch_latents(vae, frozen.get("vae"), batch, k_latent, latent).astype(jnp.float32)
    compute_dtype = batch["text_emb"].dtype  # the step's (floating batch entries are cast to it)
    z_proj, z_hat = model.apply({"params": params}, z.astype(compute_dtype),
                                deterministic=False, rngs=dropout_rngs(k_dropout, rng_impl))
    terms = projector_loss(z, z_proj.astype(jnp.float32), z_hat.astype(jnp.float32),
                           batch["text_emb"].astype(jnp.float32), weights=weights, eps=eps)
    return terms["loss"], {k: v for k, v in terms.items() if k != "loss"}

  return loss_fn


def make_eval_fn(model, vae, config, eval_stream, frozen, mesh):
  """`eval_fn(state) -> {loss, rec, align, kl}` averaged over evaluation batches (valid rows of the
  global batches); `frozen` on `mesh` (`mesh_lib.replicate`)."""
  require_fields(config, FIELDS, "lead_jax.train.projector.make_eval_fn")
  weights, limit = loss_weights(config), int(config.train.eval_batches)

  @jax.jit
  def eval_step(params, batch, frozen):
    z = latents.batch_latents(vae, frozen.get("vae"), batch, jax.random.key(0), "mean")
    z_proj, z_hat = model.apply({"params": params}, z)
    # Padding rows would bias the batch statistics of the KL term: weight rows by validity.
    valid = batch["valid"]
    keep = lambda x: jnp.where(valid.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0.0)
    n = jnp.maximum(jnp.sum(valid), 1)
    z2, zh2 = z.reshape(z.shape[0], -1), z_hat.reshape(z_hat.shape[0], -1)
    rec = jnp.sum(keep(jnp.square(z2 - zh2))) / (n * z2.shape[1])
    cos = jnp.sum(z_proj * batch["text_emb"], -1) / (
        jnp.maximum(jnp.linalg.norm(z_proj, axis=-1), 1e-6)
        * jnp.maximum(jnp.linalg.norm(batch["text_emb"], axis=-1), 1e-6))
    align = jnp.sum(keep(1.0 - cos)) / n
    mean_p, mean_q = jnp.sum(keep(z2), 0) / n, jnp.sum(keep(zh2), 0) / n
    var_p = jnp.sum(keep(jnp.square(z2 - mean_p)), 0) / n + 1e-6
    var_q = jnp.sum(keep(jnp.square(zh2 - mean_q)), 0) / n + 1e-6
    kl = jnp.mean(0.5 * (jnp.log(var_q / var_p) + (var_p + jnp.square(mean_p - mean_q)) / var_q
                         - 1.0))
    return {"rec": rec, "align": align, "kl": kl}

  def eval_fn(state: TrainState) -> dict[str, float]:
    sums: dict[str, float] = {}
    count = 0
    for batch in stage.eval_batches(eval_stream, limit):
      batch = mesh_lib.to_global_batch(batch, mesh)
      for k, v in mesh_lib.to_host(eval_step(state.params, batch, frozen)).items():
        sums[k] = sums.get(k, 0.0) + float(v)
      count += 1
    out = {k: v / max(count, 1) for k, v in sums.items()}
    out["loss"] = sum(w * out[k] for w, k in zip(weights, ("rec", "align", "kl")) if w != 0)
    return out

  return eval_fn


def generation_eval(config, text_encoder: Any, train_stream: Any, vae_stage: Any, model: Any):
  """The generation metrics of LEAD (the denoiser of `dependencies.denoiser_workdir`, then this
  projector's round trip) when `config.evaluation.evaluator` is set, else None."""
  if not evaluation.enabled(config):
    return None
  if not config.dependencies.denoiser_workdir:
    raise ConfigError("config.evaluation.evaluator is set but config.dependencies.denoiser_workdir "
                      "is empty: the projector's generation metrics sample with that denoiser")
  den = stage.load_dependency(config, "denoiser")
  return evaluation.for_stage(
      config, text_encoder, train_stream.null_text_emb,
      {"vae": vae_stage.module, "denoiser": den.module, "projector": model},
      {"vae": vae_stage.params, "denoiser": den.params}, "projector", den.config.scheduler)


def train_and_evaluate(config, workdir: str, *, text_encoder: Any = None) -> TrainState:
  """Trains (or resumes) the projector of `config` in `workdir` on the VAE checkpoint in
  `config.dependencies.vae_workdir`; `text_encoder` defaults to the one the config names."""
  mesh = stage.start_stage(config)
  model = build_projector(config.projector)
  vae_stage = stage.load_dependency(config, "vae")
  text_encoder = text_encoder or stage.load_text_encoder(config)
  train_stream, eval_stream = latents.latent_source(config, workdir, vae_stage, text_encoder)
  frozen = mesh_lib.replicate({} if latents.uses_cache(config) else {"vae": vae_stage.params},
                              mesh)
  program = make_train_program(
      config, mesh, lambda key: init_params("projector", model, key),
      make_loss_fn(model, vae_stage.module, config))
  eval_fn = None
  if eval_stream is not None:
    eval_fn = make_eval_fn(model, vae_stage.module, config, eval_stream, frozen, mesh)
  eval_fn = evaluation.combine(eval_fn, generation_eval(config, text_encoder, train_stream,
                                                        vae_stage, model))
  return stage.run_stage(config, workdir, program, train_stream, frozen, eval_fn, mesh)
