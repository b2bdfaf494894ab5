"""MLD's latent denoiser (`mld/models/architectures/mld_denoiser.py`, arch `trans_enc`) in Flax Linen.

Three tokens `[z_t, time, text]` (`[B, 3, d]`) go through a learned position embedding and a 9-layer
`SkipTransformerEncoder` (no mask); the output at token 0 (after the stack's final LayerNorm, no
output Linear) is the epsilon prediction.
* time: `timestep_embedding(t, time_channels, flip_sin_to_cos=True, freq_shift=0)` (`[cos, sin]`;
  MLD uses `time_channels = text_dim`) -> `time_embedding` = `Linear -> SiLU -> Linear` to `d`.
* text: `emb_proj` = `ReLU` then `Linear(text_dim -> d)` applied to the pooled text embedding.
* optional MotionLCM guidance conditioning (`cond_proj_dim`, default off): the guidance scale `w`
  is embedded (`guidance_scale_embedding(w, cond_proj_dim)`) and added to the timestep sinusoid
  through a zero-initialised bias-free `time_embedding/cond_proj` Linear.

MLD's unused second position embedding `mem_pos` is not built. Text dim 768 (CLIP) gives 8,221,184
parameters; 384 (MiniLM) is configurable.

Usage:
  den = LatentDenoiser(text_dim=768)
  params = den.init({'params': key}, z_t, t, text_emb)['params']
  eps = den.apply({'params': params}, z_t, t, text_emb)                       # eval
  eps = den.apply({'params': params}, z_t, t, text_emb, deterministic=False,
                  rngs={'dropout': key})                                       # train
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lead_jax.errors import InputError
from lead_jax.models import layers

Array = jax.Array


class LatentDenoiser(nn.Module):
  """Epsilon predictor over `[B, 1, latent_dim]` latents conditioned on a pooled text embedding."""
  text_dim: int = 768
  latent_dim: int = 256
  time_channels: int | None = None  # sinusoid width; None -> text_dim (as MLD)
  ff_size: int = 1024
  num_layers: int = 9
  num_heads: int = 4
  dropout: float = 0.1
  max_len: int = 500
  flip_sin_to_cos: bool = True
  freq_shift: float = 0.0
  cond_proj_dim: int | None = None  # MotionLCM guidance embedding width (256), None = off

  @nn.compact
  def __call__(self, z_t: Array, t: Array, text_emb: Array, deterministic: bool = True,
               guidance: Array | None = None) -> Array:
    """`z_t [B, 1, d]`, `t [B]` int (or scalar), `text_emb [B, E]` (or `[B, 1, E]`),
    `guidance [B]` (only with `cond_proj_dim`) -> `eps [B, 1, d]`."""
    if z_t.ndim != 3 or z_t.shape[1:] != (1, self.latent_dim):
      raise InputError(f"z_t must be [B, 1, {self.latent_dim}], found {tuple(z_t.shape)}")
    batch = z_t.shape[0]
    if text_emb.ndim == 3 and text_emb.shape[1] == 1:
      text_emb = text_emb[:, 0]
    if text_emb.shape != (batch, self.text_dim):
      raise InputError(f"text_emb must be [{batch}, {self.text_dim}], found {tuple(text_emb.shape)}")
    t = jnp.broadcast_to(jnp.asarray(t), (batch,))

    channels = self.time_channels or self.text_dim
    t_sin = layers.timestep_embedding(t, channels, self.flip_sin_to_cos, self.freq_shift)
    cond = None
    if self.cond_proj_dim is not None:
      if guidance is None:
        raise InputError("this denoiser has cond_proj (MotionLCM): pass `guidance` [B]")
      cond = layers.guidance_scale_embedding(jnp.broadcast_to(guidance, (batch,)), self.cond_proj_dim)
    t_emb = layers.TimestepEmbedding(self.latent_dim, self.cond_proj_dim, name="time_embedding")(
        t_sin.astype(z_t.dtype), cond)
    text = layers.dense(self.latent_dim, "emb_proj")(nn.relu(text_emb.astype(z_t.dtype)))

    x = jnp.concatenate([z_t, t_emb[:, None], text[:, None]], axis=1)
    x = layers.LearnedPositionEmbedding(self.max_len, name="query_pos")(x)
    x = layers.SkipTransformerEncoder(self.num_layers, self.num_heads, self.ff_size, self.dropout,
                                      name="encoder")(x, None, deterministic)
    return x[:, :1]
