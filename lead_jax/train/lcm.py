"""Stage 2b: MotionLCM's latent consistency distillation of a trained denoiser (reference §6.1).

Three `LatentDenoiser`s of the config's `denoiser` section; the student's has MotionLCM's guidance
embedding (`denoiser.cond_proj_dim` 256, zero-initialised `time_embedding/cond_proj`):
  teacher  the trained MLD denoiser of `dependencies.denoiser_workdir` (frozen; no guidance input)
  online   the student being trained (`state.params`), initialised from the teacher
  target   the EMA of the online network with mu = `train.ema_decay` (0.95): `state.ema_params`,
           read by the loss as `frozen['target']` (`make_train_program(..., ema_in_frozen=...)`),
           also initialised from the teacher; checkpoints hold it as `ema_params`, so a workdir of
           this stage generates with the target (`lead_jax.workdir`'s weight rule)
Per batch, with the VAE and the text encoder frozen (caption embeddings precomputed in the batch):
  z       = VAE.encode(motion, mask) sampled (`loss.latent`)                       [B, 1, d]
  n ~ U{0..N-1}, t = (n + 1) k - 1, s = max(t - k, 0)       N = lcm.num_ddim_timesteps, k = T // N
  z_t     = sqrt(abar_t) z + sqrt(1 - abar_t) eps;  w ~ U[lcm.w_min, lcm.w_max]     [B]
  online  pred = c_skip(t) z_t + c_out(t) F(online(z_t, t, c, w))
  teacher x0 = x0_c + w (x0_c - x0_u), e = e_c + w (e_c - e_u)     (c_u = the "" embedding)
          z_s  = sqrt(abar'_n) x0 + sqrt(1 - abar'_n) e     abar'_n = abar_{t-k} (abar_0 at n = 0)
  target  tgt  = c_skip(s) z_s + c_out(s) F(target(z_s, s, c, w))   (no gradient)
  loss    mean(sqrt((pred - tgt)^2 + c^2) - c)                      Huber, c = loss.huber_c (0.001)
F(eps) = (z - sqrt(1 - abar) eps) / sqrt(abar); c_skip, c_out: the LCM boundary scalings
(`diffusion.lcm_boundary_scalings`: sigma_data 0.5, timestep scaling 10). MotionLCM V1 never
switches its teacher or target network to eval mode, so both run with dropout during distillation
(`lcm.teacher_dropout`, `lcm.target_dropout`, True in the paper configs); the frozen VAE runs
without dropout unless `loss.vae_dropout` (as in the denoiser stage, whose latents the teacher
learnt).
Randomness is split by purpose from the step key: latent, index, noise, w, and one dropout key per
network.

  from lead_jax.train import lcm
  state = lcm.train_and_evaluate(config, workdir)     # config: configs/lcm_humanml3d.py
Evaluation (fixed key per batch, no dropout): `huber` (the distillation loss) and `x0_mse`
(the online network's one-jump estimate of z from z_t against z) on `data.eval_split`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from lead_jax import workdir as stage_io
from lead_jax.config_loader import require_fields
from lead_jax.diffusion import (SchedulerState, add_noise, lcm_boundary_scalings, make_scheduler,
                                predict_x0)
from lead_jax.errors import ConfigError
from lead_jax.models import LatentDenoiser, abstract_params, build_denoiser, build_vae, init_params
from lead_jax.train import evaluation, latents, stage
from lead_jax.train.state import TrainState
from lead_jax.train.step import LossFn, TrainProgram, make_train_program

FIELDS = {"lcm": ("num_ddim_timesteps", "w_min", "w_max", "teacher_dropout", "target_dropout"),
          "loss": ("latent", "vae_dropout", "huber_c"), "train": ("eval_batches",),
          "denoiser": ("cond_proj_dim",),
          "scheduler": ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")}
TARGET = "target"  # the key of the target network's params in the loss's `frozen`


@struct.dataclass
class DDIMSolver:
  """The teacher's DDIM grid (MotionLCM's `DDIMSolver`).

  Attributes:
    timesteps: [N] int32 (n + 1) k - 1 for n = 0..N-1 ([19, 39, ..., 999] for N = 50 of 1000).
    alphas_cumprod_prev: [N] float32 abar of the timestep one DDIM step below (abar_0 for n = 0).
    skip: k = num_train_timesteps // N (static).
  """
  timesteps: jax.Array
  alphas_cumprod_prev: jax.Array
  skip: int = struct.field(pytree_node=False, default=20)

  @property
  def num_steps(self) -> int:
    return int(self.timesteps.shape[0])


def make_solver(scheduler: SchedulerState, num_ddim_timesteps: int) -> DDIMSolver:
  """The DDIM grid of `num_ddim_timesteps` steps over the scheduler's training timesteps."""
  total = scheduler.num_train_timesteps
  if not 1 <= int(num_ddim_timesteps) <= total:
    raise ConfigError(f"config.lcm.num_ddim_timesteps must be in [1, {total}], found "
                      f"{num_ddim_timesteps}")
  skip = total // int(num_ddim_timesteps)
  timesteps = np.round(np.arange(1, int(num_ddim_timesteps) + 1) * skip).astype(np.int64) - 1
  abar = np.asarray(scheduler.alphas_cumprod)
  prev = np.concatenate([abar[:1], abar[timesteps[:-1]]])
  return DDIMSolver(timesteps=jnp.asarray(timesteps, jnp.int32),
                    alphas_cumprod_prev=jnp.asarray(prev, jnp.float32), skip=skip)


def huber(pred: jax.Array, target: jax.Array, c: float) -> jax.Array:
  """MotionLCM's pseudo-Huber loss `mean(sqrt((pred - target)^2 + c^2) - c)`, float32."""
  diff = pred.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.mean(jnp.sqrt(jnp.square(diff) + c * c) - c)


def consistency_output(scheduler: SchedulerState, eps: jax.Array, t: jax.Array,
                       z_t: jax.Array) -> jax.Array:
  """The consistency function `c_skip(t) z_t + c_out(t) F(eps)` `[B, 1, d]` (t `[B]`)."""
  c_skip, c_out = lcm_boundary_scalings(scheduler, t)
  x0 = predict_x0(scheduler, eps, t, z_t)
  return c_skip[:, None, None] * z_t + c_out[:, None, None] * x0


def _apply(model: nn.Module, params: Any, z_t, t, text, key: jax.Array | None, guidance=None):
  """`model(z_t, t, text[, guidance])`, with dropout from `key` (None: deterministic)."""
  rngs = None if key is None else {"dropout": key}
  return model.apply({"params": params}, z_t, t, text, key is None, guidance, rngs=rngs)


@dataclasses.dataclass(frozen=True)
class Distillation:
  """The fixed pieces of one distillation step (modules and tables static or traced as given)."""
  student: LatentDenoiser
  teacher: LatentDenoiser
  scheduler: SchedulerState
  solver: DDIMSolver
  w_min: float
  w_max: float

  def targets(self, online_params: Any, teacher_params: Any, target_params: Any, z: jax.Array,
              text: jax.Array, null_text: jax.Array, key: jax.Array,
              dropout: tuple[bool, bool, bool] = (False, False, False)
              ) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """(online prediction, target, extras) `[B, 1, d]` for clean latents `z` and captions `text`
    `[B, E]`; `null_text [E]` is the unconditional embedding; `dropout` = which of (online,
    teacher, target) run with dropout. Extras: `t`, `s`, `w` `[B]`, `z_t`."""
    batch = z.shape[0]
    k_index, k_noise, k_w, k_online, k_teacher, k_target = jax.random.split(key, 6)
    index = jax.random.randint(k_index, (batch,), 0, self.solver.num_steps)
    t = self.solver.timesteps[index]
    s = jnp.maximum(t - self.solver.skip, 0)
    z_t = add_noise(self.scheduler, z, jax.random.normal(k_noise, z.shape, z.dtype), t)
    w = jax.random.uniform(k_w, (batch,), jnp.float32, self.w_min, self.w_max)
    wz = w[:, None, None].astype(z.dtype)

    eps = _apply(self.student, online_params, z_t, t, text, k_online if dropout[0] else None, w)
    pred = consistency_output(self.scheduler, eps, t, z_t)

    # The teacher's guided DDIM step from t to s, conditional and unconditional in one call.
    null = jnp.broadcast_to(null_text.astype(text.dtype), text.shape)
    eps_both = _apply(self.teacher, teacher_params, jnp.concatenate([z_t, z_t]),
                      jnp.concatenate([t, t]), jnp.concatenate([text, null]),
                      k_teacher if dropout[1] else None)
    eps_c, eps_u = eps_both[:batch], eps_both[batch:]
    x0_c = predict_x0(self.scheduler, eps_c, t, z_t)
    x0_u = predict_x0(self.scheduler, eps_u, t, z_t)
    x0 = x0_c + wz * (x0_c - x0_u)
    e = eps_c + wz * (eps_c - eps_u)
    abar_prev = self.solver.alphas_cumprod_prev[index][:, None, None]
    z_s = jnp.sqrt(abar_prev) * x0 + jnp.sqrt(1.0 - abar_prev) * e

    eps_target = _apply(self.student, target_params, z_s, s, text,
                        k_target if dropout[2] else None, w)
    target = jax.lax.stop_gradient(consistency_output(self.scheduler, eps_target, s, z_s))
    return pred, target, {"t": t, "s": s, "w": w, "z_t": z_t}


def clean_latents(vae: nn.Module, frozen: Mapping[str, Any], batch: Mapping[str, jax.Array],
                  key: jax.Array, config, train: bool = True) -> jax.Array:
  """The clean latents `[B, 1, d]` of a batch, the one place the stage gets them: sampled from the
  latent cache's posterior (a batch with `latent_mu`) or the frozen VAE's encode (`loss.latent`;
  dropout when `train` and `loss.vae_dropout`)."""
  return latents.batch_latents(vae, frozen.get("vae"), batch, key, config.loss.latent,
                               train and bool(config.loss.vae_dropout))


def make_loss_fn(distill: Distillation, vae: nn.Module, config) -> LossFn:
  """`loss_fn(params, batch, frozen, key)`; `frozen = {'vae', 'teacher', 'target', 'null_text_emb'}`
  (`target`: the EMA params, given by the shared step)."""
  require_fields(config, {k: FIELDS[k] for k in ("lcm", "loss")},
                 "lead_jax.train.lcm.make_loss_fn")
  c = float(config.loss.huber_c)
  dropout = (True, bool(config.lcm.teacher_dropout), bool(config.lcm.target_dropout))

  def loss_fn(params, batch, frozen, key):
    k_latent, k_distill = jax.random.split(key)
    z = clean_latents(vae, frozen, batch, k_latent, config)
    pred, target, extra = distill.targets(params, frozen["teacher"], frozen[TARGET], z,
                                          batch["text_emb"], frozen["null_text_emb"], k_distill,
                                          dropout)
    loss = huber(pred, target, c)
    return loss, {"huber": loss, "w_mean": jnp.mean(extra["w"])}

  return loss_fn


def make_eval_fn(distill: Distillation, vae: nn.Module, config, eval_stream, frozen):
  """`eval_fn(state) -> {huber, x0_mse}` over valid rows, fixed key per batch, no dropout."""
  require_fields(config, FIELDS, "lead_jax.train.lcm.make_eval_fn")
  c, limit = float(config.loss.huber_c), int(config.train.eval_batches)

  @jax.jit
  def eval_step(params, target_params, batch, frozen, key):
    k_latent, k_distill = jax.random.split(key)
    z = clean_latents(vae, frozen, batch, k_latent, config, train=False)
    pred, target, _ = distill.targets(params, frozen["teacher"], target_params, z,
                                      batch["text_emb"], frozen["null_text_emb"], k_distill)
    per_row = jnp.mean(jnp.sqrt(jnp.square(pred - target) + c * c) - c, axis=(1, 2))
    x0_err = jnp.mean(jnp.square(pred - z), axis=(1, 2))
    valid = batch["valid"].astype(jnp.float32)
    return jnp.sum(per_row * valid), jnp.sum(x0_err * valid), jnp.sum(valid)

  def eval_fn(state: TrainState) -> dict[str, float]:
    sums = np.zeros(3)
    for i, batch in enumerate(stage.eval_batches(eval_stream, limit)):
      inputs = ("latent_mu", "latent_logvar") if "latent_mu" in batch else ("motion", "mask")
      batch = {k: batch[k] for k in (*inputs, "text_emb", "valid")}
      sums += np.asarray(jax.device_get(eval_step(state.params, state.ema_params, batch, frozen,
                                                  jax.random.key(i))), np.float64)
    count = max(sums[2], 1.0)
    return {"huber": sums[0] / count, "x0_mse": sums[1] / count}

  return eval_fn


def _section(config, name: str) -> dict[str, Any]:
  node = config[name]
  return node.to_dict() if hasattr(node, "to_dict") else dict(node)


def load_teacher(config) -> stage_io.Stage:
  """The frozen teacher of `dependencies.denoiser_workdir`: an MLD denoiser stage whose
  architecture, noise schedule and text encoder are the student's (`config.denoiser` up to
  `cond_proj_dim`, `config.scheduler`, `config.text_encoder`); `ConfigError` naming the fields that
  differ otherwise."""
  workdir = stage_io.dependency_workdir(config, "denoiser")
  teacher = stage_io.load_stage(workdir, "denoiser")
  if teacher.kind != "denoiser" or teacher.module.cond_proj_dim:
    raise ConfigError(f"{workdir}: the teacher must be an MLD denoiser trained with "
                      f"classifier-free guidance, found a {teacher.kind} stage with cond_proj_dim="
                      f"{teacher.module.cond_proj_dim} (a consistency-distilled student)")
  diffs = []
  for name in ("denoiser", "scheduler", "text_encoder"):
    ours = _section(config, name)
    theirs = _section(teacher.config, name) if name in teacher.config else {}
    for field in sorted(set(ours) | set(theirs)):
      if name == "denoiser" and field == "cond_proj_dim":
        continue
      if ours.get(field) != theirs.get(field):
        diffs.append(f"{name}.{field}: teacher {theirs.get(field)!r}, config {ours.get(field)!r}")
  if diffs:
    raise ConfigError(f"the student's config does not match the teacher in {workdir} (set "
                      "--config.<section>.<field> to the teacher's value): " + "; ".join(diffs))
  return teacher


def student_from_teacher(teacher_params: Any, student: LatentDenoiser) -> dict[str, Any]:
  """The student's initial parameters (NumPy): the teacher's, plus the zero `cond_proj` kernel of
  the guidance embedding (so the student starts as the teacher at every w)."""
  flat_teacher = {jax.tree_util.keystr(p): v
                  for p, v in jax.tree_util.tree_leaves_with_path(teacher_params)}

  def leaf(path, shape):
    name = jax.tree_util.keystr(path)
    if name in flat_teacher:
      value = np.asarray(flat_teacher[name], np.float32)
      if value.shape != shape.shape:
        raise ConfigError(f"teacher parameter {name} has shape {value.shape}, the student's "
                          f"{shape.shape}")
      return value
    if "cond_proj" in name:
      return np.zeros(shape.shape, np.float32)
    raise ConfigError(f"the student has a parameter {name} that the teacher lacks")

  return jax.tree_util.tree_map_with_path(leaf, abstract_params("denoiser", student))


def start_from(program: TrainProgram, weights: Any) -> TrainProgram:
  """`program` whose `init` puts `weights` (NumPy) in the params and in the EMA (online and target
  both start from them; the optimiser state of AdamW does not depend on the values)."""
  def init(rng: jax.Array) -> TrainState:
    state = program.init(rng)
    place = lambda like: jax.tree.map(lambda w, x: jax.device_put(np.array(w), x.sharding),
                                      weights, like)
    return state.replace(params=place(state.params), ema_params=place(state.ema_params))
  return dataclasses.replace(program, init=init)


def train_and_evaluate(config, workdir: str, *, text_encoder: Any = None) -> TrainState:
  """Distils (or resumes distilling) the teacher of `config.dependencies.denoiser_workdir` into a
  consistency model in `workdir`, on the latents of `dependencies.vae_workdir`'s VAE;
  `text_encoder` defaults to the one the config names."""
  require_fields(config, FIELDS, "lead_jax.train.lcm.train_and_evaluate")
  if not int(config.denoiser.cond_proj_dim):
    raise ConfigError("config.denoiser.cond_proj_dim is 0: the student needs MotionLCM's guidance "
                      "embedding (256)")
  if not 0 <= float(config.lcm.w_min) <= float(config.lcm.w_max):
    raise ConfigError(f"need 0 <= config.lcm.w_min <= config.lcm.w_max, found "
                      f"{config.lcm.w_min}, {config.lcm.w_max}")
  mesh = stage.start_stage(config)
  vae, student = build_vae(config.vae), build_denoiser(config.denoiser)
  vae_stage = stage.load_dependency(config, "vae")
  teacher = load_teacher(config)
  text_encoder = text_encoder or stage.load_text_encoder(config)
  train_stream, eval_stream = latents.latent_source(config, workdir, vae_stage, text_encoder)
  frozen = {"teacher": teacher.params,
            "null_text_emb": jnp.asarray(train_stream.null_text_emb, jnp.float32)}
  if not latents.uses_cache(config):
    frozen["vae"] = vae_stage.params
  scheduler = make_scheduler(config.scheduler, "lcm", 1)
  distill = Distillation(student, teacher.module, scheduler,
                         make_solver(scheduler, int(config.lcm.num_ddim_timesteps)),
                         float(config.lcm.w_min), float(config.lcm.w_max))
  program = make_train_program(config, mesh, lambda key: init_params("denoiser", student, key),
                               make_loss_fn(distill, vae, config), ema_in_frozen=TARGET)
  program = start_from(program, student_from_teacher(teacher.params, student))
  eval_fn = None
  if eval_stream is not None:
    eval_fn = make_eval_fn(distill, vae, config, eval_stream, frozen)
  eval_fn = evaluation.combine(eval_fn, evaluation.for_stage(
      config, text_encoder, train_stream.null_text_emb, {"vae": vae, "denoiser": student},
      {"vae": vae_stage.params}, "lcm", config.scheduler))
  return stage.run_stage(config, workdir, program, train_stream, frozen, eval_fn, mesh)
