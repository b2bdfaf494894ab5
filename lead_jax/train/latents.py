"""Latents of the frozen VAE for the stages trained on them (denoiser, projector).

  z = encode_latents(vae, vae_params, batch, key, "sample")    # [B, 1, d], no gradient
"""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax

from lead_jax.errors import ConfigError

def encode_latents(vae: nn.Module, vae_params, batch: Mapping[str, jax.Array], key: jax.Array,
                   latent: str, vae_dropout: bool = False) -> jax.Array:
  """Frozen VAE latents `[B, 1, d]` of `batch['motion'] [B, T, D]` (`batch['mask'] [B, T]`): the
  posterior sample (`latent='sample'`, MLD) or its mean ('mean'); dropout only with `vae_dropout`."""
  if latent not in ("sample", "mean"):
    raise ConfigError(f"config.loss.latent={latent!r}; expected 'sample' or 'mean'")
  sample_key, dropout_key = jax.random.split(key)
  z, mu, _ = vae.apply({"params": vae_params}, batch["motion"], batch["mask"],
                       sample_key if latent == "sample" else None, deterministic=not vae_dropout,
                       method=vae.encode, rngs={"dropout": dropout_key} if vae_dropout else None)
  return jax.lax.stop_gradient(z if latent == "sample" else mu)
