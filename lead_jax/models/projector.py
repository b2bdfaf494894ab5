"""The LEAD projector P = (E_proj, D_proj) and its training loss (paper Sec. 4.1, Eq. 3-7).

E_proj maps a VAE latent `z [B, 1, 256]` to `z_proj [B, E]` in the text-embedding space (E = 768
for CLIP ViT-L/14, 384 for MiniLM); D_proj maps `z_proj` back to `z_hat [B, 1, 256]`.

Choices the paper leaves open (config fields in `configs/common.py:projector_config`):
* Tokens: the 256-d latent is split into `num_tokens` (K, default 8) chunks of 256/K dims; a
  shared `Linear(256/K -> width)` lifts each chunk to a token, and a fixed sinusoidal position
  encoding tells the chunks apart.
* "hidden size 1024" is read as the feed-forward width (`ff_size`, as MLD's `ff_size: 1024`);
  the model width is `width` (default 256, MLD's latent width), 9 layers, 4 heads, dropout 0.1,
  exact GELU, post-norm.
* E_proj pooling (`pool`): 'token' (default) prepends a learned pooling token (like the VAE's
  distribution tokens, normal init) and reads it out; 'mean' averages the K tokens. Then
  `Linear(width -> E)` gives `z_proj`.
* D_proj: `Linear(E -> K * width)` makes K tokens, plus the sinusoidal encoding, through its own
  9-layer stack; a shared `Linear(width -> 256/K)` per token, concatenated, gives `z_hat`.
* `arch`: 'transformer' (default; plain post-norm encoder stacks), 'skip' (MLD's
  `SkipTransformerEncoder` with long skips and final LayerNorm), 'mlp' (no tokens:
  `mlp_layers` x [Linear(ff_size), GELU, Dropout] then a Linear, for each direction).

`projector_loss` (here, beside the model) implements Eq. 7 with the batch-KL reading below.

Usage:
  proj = Projector(text_dim=768)
  params = proj.init({'params': key}, z)['params']
  z_proj, z_hat = proj.apply({'params': params}, z)
  z_proj = proj.apply({'params': params}, z, method=Projector.encode)
  z_hat = proj.apply({'params': params}, z_proj, method=Projector.decode)
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lead_jax.errors import ConfigError, InputError
from lead_jax.models import layers

Array = jax.Array

ARCHS = ("transformer", "skip", "mlp")
POOLS = ("token", "mean")


class Projector(nn.Module):
  """E_proj / D_proj between the VAE latent space `[B, 1, latent_dim]` and text space `[B, text_dim]`."""
  text_dim: int = 768
  latent_dim: int = 256
  arch: str = "transformer"
  num_tokens: int = 8
  width: int = 256
  ff_size: int = 1024
  num_layers: int = 9
  num_heads: int = 4
  dropout: float = 0.1
  pool: str = "token"
  mlp_layers: int = 3

  def setup(self):
    if self.arch not in ARCHS:
      raise ConfigError(f"projector.arch must be one of {ARCHS}, found {self.arch!r}")
    if self.pool not in POOLS:
      raise ConfigError(f"projector.pool must be one of {POOLS}, found {self.pool!r}")
    if self.arch != "mlp" and (self.num_tokens < 1 or self.latent_dim % self.num_tokens):
      raise ConfigError(f"projector.num_tokens={self.num_tokens} must divide latent_dim={self.latent_dim}")
    if self.arch == "mlp":
      self.enc_mlp = [layers.dense(self.ff_size) for _ in range(self.mlp_layers)]
      self.enc_out = layers.dense(self.text_dim)
      self.dec_mlp = [layers.dense(self.ff_size) for _ in range(self.mlp_layers)]
      self.dec_out = layers.dense(self.latent_dim)
      self.drop = nn.Dropout(self.dropout)
      return
    stack_cls = layers.SkipTransformerEncoder if self.arch == "skip" else layers.TransformerEncoder
    stack = dict(num_layers=self.num_layers, num_heads=self.num_heads, ff_size=self.ff_size,
                 dropout=self.dropout)
    self.enc_in = layers.dense(self.width)
    if self.pool == "token":
      self.pool_token = self.param("pool_token", nn.initializers.normal(1.0), (1, self.width))
    self.enc_stack = stack_cls(**stack)
    self.enc_out = layers.dense(self.text_dim)
    self.dec_in = layers.dense(self.num_tokens * self.width)
    self.dec_stack = stack_cls(**stack)
    self.dec_out = layers.dense(self.latent_dim // self.num_tokens)
    self.pos = layers.SinusoidalPositionEncoding()
    self.drop = nn.Dropout(self.dropout)

  def _mlp(self, x: Array, hidden: Sequence[nn.Module], out: nn.Module, deterministic: bool) -> Array:
    for lin in hidden:
      x = self.drop(jax.nn.gelu(lin(x), approximate=False), deterministic=deterministic)
    return out(x)

  def encode(self, z: Array, deterministic: bool = True) -> Array:
    """E_proj: `z [B, 1, latent_dim]` -> `z_proj [B, text_dim]`."""
    if z.ndim != 3 or z.shape[1:] != (1, self.latent_dim):
      raise InputError(f"projector input z must be [B, 1, {self.latent_dim}], found {tuple(z.shape)}")
    if self.arch == "mlp":
      return self._mlp(z[:, 0], self.enc_mlp, self.enc_out, deterministic)
    batch = z.shape[0]
    tokens = self.enc_in(z.reshape(batch, self.num_tokens, self.latent_dim // self.num_tokens))
    if self.pool == "token":
      pool = jnp.broadcast_to(self.pool_token[None], (batch, 1, self.width)).astype(tokens.dtype)
      tokens = jnp.concatenate([pool, tokens], axis=1)
    x = self.drop(self.pos(tokens), deterministic=deterministic)
    x = self.enc_stack(x, None, deterministic)
    pooled = x[:, 0] if self.pool == "token" else x.mean(axis=1)
    return self.enc_out(pooled)

  def decode(self, z_proj: Array, deterministic: bool = True) -> Array:
    """D_proj: `z_proj [B, text_dim]` -> `z_hat [B, 1, latent_dim]`."""
    if z_proj.ndim != 2 or z_proj.shape[1] != self.text_dim:
      raise InputError(f"projector z_proj must be [B, {self.text_dim}], found {tuple(z_proj.shape)}")
    batch = z_proj.shape[0]
    if self.arch == "mlp":
      return self._mlp(z_proj, self.dec_mlp, self.dec_out, deterministic)[:, None]
    tokens = self.dec_in(z_proj).reshape(batch, self.num_tokens, self.width)
    x = self.drop(self.pos(tokens), deterministic=deterministic)
    x = self.dec_stack(x, None, deterministic)
    return self.dec_out(x).reshape(batch, 1, self.latent_dim)

  def __call__(self, z: Array, deterministic: bool = True) -> tuple[Array, Array]:
    """`z [B, 1, latent_dim]` -> `(z_proj [B, text_dim], z_hat [B, 1, latent_dim])`."""
    z_proj = self.encode(z, deterministic)
    return z_proj, self.decode(z_proj, deterministic)


def gaussian_batch_kl(p_samples: Array, q_samples: Array, eps: float = 1e-6) -> Array:
  """KL(P || Q) of per-dimension Gaussians fitted over the batch, averaged over dimensions.

  `p_samples, q_samples [B, D]`; `mu, var` are the batch mean and (population) variance per
  dimension, `var += eps`; `KL = 0.5 * (log(var_q / var_p) + (var_p + (mu_p - mu_q)^2) / var_q - 1)`.
  """
  mu_p, mu_q = p_samples.mean(0), q_samples.mean(0)
  var_p, var_q = p_samples.var(0) + eps, q_samples.var(0) + eps
  kl = 0.5 * (jnp.log(var_q / var_p) + (var_p + (mu_p - mu_q) ** 2) / var_q - 1.0)
  return kl.mean()


def projector_loss(z: Array, z_proj: Array, z_hat: Array, text_emb: Array,
                   weights: tuple[float, float, float] = (4.7036, 2.1591, 0.0596),
                   eps: float = 1e-6) -> dict[str, Array]:
  """LEAD Eq. 7: `{'loss', 'rec', 'align', 'kl'}` (scalars).

  `z, z_hat [B, 1, D]` (or `[B, D]`), `z_proj, text_emb [B, E]`. `weights = (rec, align, kl)`:
  * rec   = mean((z - z_hat)^2) (MSE over batch and dimensions),
  * align = mean_b(1 - cos(z_proj_b, text_b)), with norms clamped below by `eps`,
  * kl    = `gaussian_batch_kl(z, z_hat, eps)` (P fitted to z, Q to z_hat).
  A term whose weight is the Python number 0 is left out of `loss` (and of its gradient) but is
  still reported.
  """
  if z.shape != z_hat.shape:
    raise InputError(f"z {tuple(z.shape)} and z_hat {tuple(z_hat.shape)} must have the same shape")
  if z_proj.shape != text_emb.shape:
    raise InputError(f"z_proj {tuple(z_proj.shape)} and text_emb {tuple(text_emb.shape)} must match")
  z2, z_hat2 = z.reshape(z.shape[0], -1), z_hat.reshape(z_hat.shape[0], -1)
  rec = jnp.mean((z2 - z_hat2) ** 2)
  norm = lambda x: jnp.maximum(jnp.linalg.norm(x, axis=-1), eps)
  cos = jnp.sum(z_proj * text_emb, -1) / (norm(z_proj) * norm(text_emb))
  align = jnp.mean(1.0 - cos)
  kl = gaussian_batch_kl(z2, z_hat2, eps)
  terms = {"rec": rec, "align": align, "kl": kl}
  loss = jnp.zeros((), rec.dtype)
  for w, name in zip(weights, ("rec", "align", "kl")):
    if not (isinstance(w, (int, float)) and w == 0):
      loss = loss + w * terms[name]
  return {"loss": loss, **terms}
