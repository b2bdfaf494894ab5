"""Classifier-free guided sampling of latents: one `lax.scan` over the scheduler's timesteps.

MLD's loop (reference §3.4) with the denoiser passed in explicitly:

  z_T ~ N(0, init_noise_sigma^2)                                    [B, 1, 256]
  for t, prev_t in zip(timesteps, prev_timesteps):                  (scanned, not a Python loop)
    eps_u, eps_c = split(denoise_fn(params, [z, z], [t, t], [uncond, cond]))   # uncond first
    eps = eps_u + s (eps_c - eps_u)
    z = step(state, eps, t, prev_t, z, key_i)

`denoise_fn(params, z_t [2B, ...], t [2B] int32, text_emb [2B, ...]) -> eps [2B, ...]` is an
argument, never a closure over params, so the whole sampler jits once per shape:

  sample = jax.jit(sample_latents, static_argnames=("denoise_fn", "latent_shape"))
  keys = motion_keys(key, prompt_ids, sample_ids)        # [N]: one noise stream per motion
  z0 = sample(denoiser_apply, params, keys, cond_emb, uncond_emb, make_scheduler(section, "ddim"))

With `uncond_emb=None` the denoiser runs once per step on the conditional batch only (no doubling):
MotionLCM's sampling, whose guidance scale lives inside the denoiser's input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lead_jax.diffusion import schedulers
from lead_jax.errors import ConfigError, InputError

DenoiseFn = Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]


def _broadcast_uncond(cond_emb: jax.Array, uncond_emb: jax.Array) -> jax.Array:
  """uncond [...] or [B, ...] -> [B, ...] matching cond [B, ...]."""
  if uncond_emb.shape == cond_emb.shape:
    return uncond_emb.astype(cond_emb.dtype)
  if uncond_emb.shape == cond_emb.shape[1:]:
    return jnp.broadcast_to(uncond_emb, cond_emb.shape).astype(cond_emb.dtype)
  raise InputError(f"uncond_emb has shape {tuple(uncond_emb.shape)}; expected "
                   f"{tuple(cond_emb.shape[1:])} or {tuple(cond_emb.shape)} to match cond_emb "
                   f"{tuple(cond_emb.shape)}")


def guided_eps(denoise_fn: DenoiseFn, params: Any, z: jax.Array, t: jax.Array,
               cond_emb: jax.Array, uncond_emb: jax.Array | None,
               scale: float | jax.Array) -> jax.Array:
  """Classifier-free guided noise prediction by batch doubling.

  Runs `denoise_fn` once on `[uncond; cond]` (uncond first, as MLD) and returns
  eps_u + scale * (eps_c - eps_u). With `uncond_emb=None`, returns the conditional prediction.

  Args:
    z: [B, ...] noisy latents. t: scalar or [B] int timesteps.
    cond_emb: [B, ...] text embeddings, e.g. [B, 768]. uncond_emb: [...] or [B, ...] (CLIP("")).
    scale: guidance scale s (a traced value is fine).
  Returns:
    eps [B, ...].
  """
  batch = z.shape[0]
  if cond_emb.shape[0] != batch:
    raise InputError(f"cond_emb has batch {cond_emb.shape[0]} but z has batch {batch} "
                     f"(cond_emb {tuple(cond_emb.shape)}, z {tuple(z.shape)})")
  t = jnp.broadcast_to(jnp.asarray(t, jnp.int32), (batch,))
  if uncond_emb is None:
    return denoise_fn(params, z, t, cond_emb)
  uncond_emb = _broadcast_uncond(cond_emb, jnp.asarray(uncond_emb))
  eps = denoise_fn(params, jnp.concatenate([z, z], 0), jnp.concatenate([t, t], 0),
                   jnp.concatenate([uncond_emb, cond_emb], 0))
  if eps.shape != (2 * batch,) + z.shape[1:]:
    raise InputError(f"denoise_fn returned shape {tuple(eps.shape)}; expected "
                     f"{(2 * batch,) + tuple(z.shape[1:])} (the doubled batch, latent shape)")
  eps_u, eps_c = eps[:batch], eps[batch:]
  return eps_u + scale * (eps_c - eps_u)


def motion_keys(key: jax.Array, prompt_ids: Any, sample_ids: Any) -> jax.Array:
  """Per-motion keys `[N]`: `fold_in(fold_in(key, prompt_id), sample_id)`.

  A motion's noise then depends on its prompt's id and its sample number only, not on the rest of
  the batch, its padding, or how many samples were asked for.
  """
  prompt_ids = jnp.asarray(prompt_ids, jnp.uint32)
  fold = jax.vmap(jax.random.fold_in)
  base = jnp.broadcast_to(key, prompt_ids.shape)
  return fold(fold(base, prompt_ids), jnp.asarray(sample_ids, jnp.uint32))


def is_stochastic(state: schedulers.SchedulerState) -> bool:
  """Whether a step of `state` draws noise (DDPM, LCM, DDIM with eta > 0)."""
  return state.kind in ("ddpm", "lcm") or (state.kind == "ddim" and state.eta > 0)


def sample_latents(denoise_fn: DenoiseFn, params: Any, keys: jax.Array, cond_emb: jax.Array,
                   uncond_emb: jax.Array | None, scheduler_state: schedulers.SchedulerState,
                   guidance_scale: float | jax.Array = 7.5,
                   latent_shape: tuple[int, ...] = (1, 256),
                   scheduler: str | None = None) -> jax.Array:
  """Samples clean latents z0 `[N, *latent_shape]` with guided DDIM / DDPM / LCM: one `lax.scan`.

  The one sampler of the library (generation, evaluation, textual inversion and benchmarks).

  Args:
    denoise_fn: `(params, z_t, t [B'], text_emb) -> eps`, the frozen denoiser's apply.
    params: its parameters (any pytree).
    keys: `[N]` per-motion keys (`motion_keys`): z_T of motion i is
      `init_noise_sigma * normal(keys[i], latent_shape)`, and a stochastic step s (DDPM, LCM, DDIM
      with eta > 0) draws `normal(fold_in(keys[i], s + 1), latent_shape)`.
    cond_emb: `[N, E]` (or `[N, ...]`) conditional text embeddings.
    uncond_emb: `[E]` or `[N, E]` unconditional embedding (CLIP("")) for classifier-free guidance
      by batch doubling, or None: the denoiser runs once per step on `cond_emb` only (MotionLCM,
      whose guidance scale is an input of the denoiser).
    scheduler_state: from `make_scheduler`; its timesteps are scanned.
    guidance_scale: s in eps_u + s (eps_c - eps_u); may be traced.
    latent_shape: per-motion latent shape (static).
    scheduler: "ddim" | "ddpm" | "lcm" or None; when given it must agree with the state's kind.
  Returns:
    z0 `[N, *latent_shape]` float32.
  """
  if scheduler is not None and scheduler != scheduler_state.kind:
    raise ConfigError(f"scheduler={scheduler!r} but scheduler_state was built for "
                      f"{scheduler_state.kind!r} (make_scheduler(section, {scheduler!r}, steps))")
  cond_emb = jnp.asarray(cond_emb)
  if cond_emb.ndim < 2:
    raise InputError(f"cond_emb must be [N, E], got shape {tuple(cond_emb.shape)}")
  if keys.shape != cond_emb.shape[:1]:
    raise InputError(f"keys has shape {tuple(keys.shape)}; expected one key per motion "
                     f"({cond_emb.shape[0]},) (see motion_keys)")
  latent_shape = tuple(int(d) for d in latent_shape)
  normal = jax.vmap(lambda k: jax.random.normal(k, latent_shape, jnp.float32))
  z_init = scheduler_state.init_noise_sigma * normal(keys)
  stochastic = is_stochastic(scheduler_state)

  def body(z, xs):
    t, prev_t, index = xs
    eps = guided_eps(denoise_fn, params, z, t, cond_emb, uncond_emb, guidance_scale)
    if eps.shape != z.shape:
      raise InputError(f"denoise_fn returned shape {tuple(eps.shape)}; expected {tuple(z.shape)}")
    noise = normal(jax.vmap(jax.random.fold_in, (0, None))(keys, index + 1)) if stochastic else None
    return schedulers.scheduler_step(scheduler_state, eps.astype(z.dtype), t, prev_t, z,
                                     noise=noise), None

  steps = jnp.arange(scheduler_state.num_inference_steps, dtype=jnp.uint32)
  z0, _ = jax.lax.scan(body, z_init, (scheduler_state.timesteps, scheduler_state.prev_timesteps,
                                      steps))
  return z0
