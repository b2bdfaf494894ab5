"""Classifier-free guided sampling of latents: one `lax.scan` over the scheduler's timesteps.

MLD's loop (reference §3.4) with the denoiser passed in explicitly:

  z_T ~ N(0, init_noise_sigma^2)                                    [B, 1, 256]
  for t, prev_t in zip(timesteps, prev_timesteps):                  (scanned, not a Python loop)
    eps_u, eps_c = split(denoise_fn(params, [z, z], [t, t], [uncond, cond]))   # uncond first
    eps = eps_u + s (eps_c - eps_u)
    z = step(state, eps, t, prev_t, z, key_i)

`denoise_fn(params, z_t [2B, ...], t [2B] int32, text_emb [2B, ...]) -> eps [2B, ...]` is an
argument, never a closure over params, so the whole sampler jits once per shape:

  sample = jax.jit(sample_latents, static_argnames=("denoise_fn", "latent_shape", "scheduler"))
  z0 = sample(denoiser_apply, params, key, cond_emb, uncond_emb, make_ddim())

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


def sample_latents(denoise_fn: DenoiseFn, params: Any, key: jax.Array, cond_emb: jax.Array,
                   uncond_emb: jax.Array | None, scheduler_state: schedulers.SchedulerState,
                   guidance_scale: float | jax.Array = 7.5,
                   latent_shape: tuple[int, ...] = (1, 256),
                   scheduler: str | None = None) -> jax.Array:
  """Samples clean latents z0 [B, *latent_shape] with guided DDIM / DDPM / LCM.

  Args:
    denoise_fn: `(params, z_t, t [B'], text_emb) -> eps`, the frozen denoiser's apply.
    params: its parameters (any pytree).
    key: PRNG key: `noise_key, steps_key = split(key)`; z_T = init_noise(noise_key) and step i
      uses `split(steps_key, S)[i]` (unused by deterministic DDIM).
    cond_emb: [B, E] (or [B, ...]) conditional text embeddings.
    uncond_emb: [E] or [B, E] unconditional embedding (CLIP("")), or None for no guidance.
    scheduler_state: from `make_ddim` / `make_ddpm` / `make_lcm`; its timesteps are scanned.
    guidance_scale: s in eps_u + s (eps_c - eps_u); may be traced.
    latent_shape: per-sample latent shape (static).
    scheduler: "ddim" | "ddpm" | "lcm" or None; must agree with `scheduler_state.kind`.
  Returns:
    z0 [B, *latent_shape] float32.
  """
  kind = scheduler_state.kind
  if scheduler is not None and scheduler != kind:
    raise ConfigError(f"scheduler={scheduler!r} but scheduler_state was built for {kind!r} "
                      f"(use make_{scheduler})")
  cond_emb = jnp.asarray(cond_emb)
  if cond_emb.ndim < 2:
    raise InputError(f"cond_emb must be [B, E], got shape {tuple(cond_emb.shape)}")
  latent_shape = tuple(int(d) for d in latent_shape)
  batch = cond_emb.shape[0]
  noise_key, steps_key = jax.random.split(key)
  z_init = schedulers.init_noise(scheduler_state, noise_key, (batch,) + latent_shape)
  step_keys = jax.random.split(steps_key, scheduler_state.num_inference_steps)

  def body(z, xs):
    t, prev_t, step_key = xs
    eps = guided_eps(denoise_fn, params, z, t, cond_emb, uncond_emb, guidance_scale)
    if eps.shape != z.shape:
      raise InputError(f"denoise_fn returned shape {tuple(eps.shape)}; expected {tuple(z.shape)}")
    z = schedulers.scheduler_step(scheduler_state, eps.astype(z.dtype), t, prev_t, z, step_key)
    return z, None

  z0, _ = jax.lax.scan(
      body, z_init, (scheduler_state.timesteps, scheduler_state.prev_timesteps, step_keys))
  return z0
