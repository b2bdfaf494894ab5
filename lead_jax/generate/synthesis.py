"""Text embeddings -> motions: the pure, jittable core of generation.

  z0   = sample_latents(denoiser, keys, cond, uncond, state, s)    guided DDIM / DDPM (MLD, LEAD) or
                                                                   LCM with the scale as an input
  z0   = D_proj(E_proj(z0))                                        LEAD's projector round trip
  x    = D_vae(z0, mask) * Std + Mean                              [N, frames, D], zero past length
  pose = recover_from_ric(x)                                       [N, frames, J, 3]

The VAE decodes either every motion padded to `frames` (`decode`, lengths `[N]`) or the motions
packed side by side in rows of `frames` slots (`decode_packed`, a `lead_jax.models.packing.Packing`
built on the host): real frames only, the same motions up to float reassociation.

Every model is an explicit argument (modules static, parameters traced); `Pipeline` jits this with
text encoding in front. Consistency-distilled denoisers (MotionLCM, `cond_proj_dim`) are not
guided by batch doubling: the scale enters the denoiser as w = s - 1 (MotionLCM's convention:
w is the extra weight of eps_c - eps_u, so s = 1 + w).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from lead_jax.diffusion import SchedulerState, sample_latents
from lead_jax.models import LatentDenoiser, MotionVAE, Projector
from lead_jax.models.packing import Packing
from lead_jax.motion.features import recover_from_ric


def lengths_mask(lengths: jax.Array, frames: int) -> jax.Array:
  """`[N]` int lengths -> `[N, frames]` bool, True on valid frames."""
  return jnp.arange(frames)[None, :] < lengths[:, None]


def is_consistency_model(denoiser: LatentDenoiser) -> bool:
  """Whether `denoiser` takes the guidance scale as an input (MotionLCM's `cond_proj`)."""
  return bool(denoiser.cond_proj_dim)


def denoise_fn(denoiser: LatentDenoiser, guidance: jax.Array | None = None):
  """`(params, z_t, t, text) -> eps` of `denoiser` (the sampler's `denoise_fn`); `guidance` is
  MotionLCM's w for a consistency model, None otherwise."""
  def apply(params, z_t, t, text_emb):
    return denoiser.apply({"params": params}, z_t, t, text_emb, True, guidance)
  return apply


def sample(denoiser: LatentDenoiser, params: Any, keys: jax.Array, cond_emb: jax.Array,
           uncond_emb: jax.Array, guidance_scale: jax.Array, state: SchedulerState) -> jax.Array:
  """z0 `[N, 1, d]` from the denoiser: classifier-free guidance by batch doubling, or the scale as
  the input w = s - 1 of a consistency model."""
  shape = (1, denoiser.latent_dim)
  if is_consistency_model(denoiser):
    w = jnp.asarray(guidance_scale, jnp.float32) - 1.0
    return sample_latents(denoise_fn(denoiser, w), params, keys, cond_emb, None, state, 1.0, shape)
  return sample_latents(denoise_fn(denoiser), params, keys, cond_emb, uncond_emb, state,
                        guidance_scale, shape)


def project(projector: Projector, params: Any, z0: jax.Array) -> jax.Array:
  """LEAD's round trip `D_proj(E_proj(z0))`, `[N, 1, d]` -> `[N, 1, d]`."""
  z_proj = projector.apply({"params": params}, z0, method=Projector.encode)
  return projector.apply({"params": params}, z_proj, method=Projector.decode)


def decode(vae: MotionVAE, params: Any, z0: jax.Array, lengths: jax.Array, frames: int,
           mean: jax.Array, std: jax.Array, joints_num: int) -> tuple[jax.Array, jax.Array]:
  """Latents -> de-normalised features `[N, frames, D]` and joints `[N, frames, J, 3]`, both zero
  past each motion's length."""
  mask = lengths_mask(lengths, frames)
  normed = vae.apply({"params": params}, z0, mask, method=MotionVAE.decode)
  return _features_and_joints(normed, mask, mean, std, joints_num)


def decode_packed(vae: MotionVAE, params: Any, z0: jax.Array, motions: Packing, frames: int,
                  mean: jax.Array, std: jax.Array, joints_num: int,
                  first_block: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """`decode` of the N motions packed in rows of C >= `frames` slots (`motions`): the VAE computes
  their real frames only; features `[N, frames, D]` and joints `[N, frames, J, 3]`.
  `first_block`: the decoder's first self-attention block per (length, frame)
  (`motion_vae.first_block_table`), read instead of computed."""
  normed = vae.apply({"params": params}, z0, motions, frames, first_block,
                     method=MotionVAE.decode_packed)
  return _features_and_joints(normed, lengths_mask(jnp.asarray(motions.item_length), frames), mean,
                              std, joints_num)


def _features_and_joints(normed: jax.Array, mask: jax.Array, mean: jax.Array, std: jax.Array,
                         joints_num: int) -> tuple[jax.Array, jax.Array]:
  features = jnp.where(mask[..., None], normed * std + mean, 0.0)
  joints = recover_from_ric(features, joints_num)  # integrates over time: per motion, unpacked
  return features, jnp.where(mask[..., None, None], joints, 0.0)


def synthesize(vae: MotionVAE, denoiser: LatentDenoiser, projector: Projector | None,
               params: Mapping[str, Any], cond_emb: jax.Array, uncond_emb: jax.Array,
               lengths: jax.Array | Packing, keys: jax.Array, guidance_scale: jax.Array,
               state: SchedulerState, mean: jax.Array, std: jax.Array, frames: int,
               joints_num: int, first_block: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array]:
  """Text embeddings `[N, E]` (+ the unconditional `[E]`) -> features `[N, frames, D]` and joints
  `[N, frames, J, 3]`; the projector round trip when `projector` is given.

  `params` holds 'vae', 'denoiser' (and 'projector'); `keys [N]` are per-motion keys. `lengths`:
  `[N]` frames (`decode`) or the motions' `Packing` in rows of `frames` slots (`decode_packed`,
  which reads the decoder's first self-attention block from `first_block` when given).
  """
  z0 = sample(denoiser, params["denoiser"], keys, cond_emb, uncond_emb, guidance_scale, state)
  if projector is not None:
    z0 = project(projector, params["projector"], z0)
  if isinstance(lengths, Packing):
    return decode_packed(vae, params["vae"], z0, lengths, frames, mean, std, joints_num,
                         first_block)
  return decode(vae, params["vae"], z0, lengths, frames, mean, std, joints_num)
