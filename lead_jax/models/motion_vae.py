"""MLD's motion VAE (`mld/models/architectures/mld_vae.py`, arch `encoder_decoder`) in Flax Linen.

Encoder: `Linear(nfeats -> d)` frame embeddings, two learned distribution tokens prepended
(`global_motion_token [2, d]`), learned position embedding over the `T + 2` tokens, a 9-layer
`SkipTransformerEncoder` with the padding mask; output tokens 0 and 1 are `mu` and `logvar`.
Decoder: `T` zero queries plus a learned position embedding, a 9-layer `SkipTransformerDecoder`
cross-attending to the single latent token, `Linear(d -> nfeats)`, padded frames set to zero.
`decode_packed` computes the same per motion on motions packed side by side in rows of frames
(`lead_jax.models.packing`): real frames only (the packing's compact tokens), self-attention within
each motion in the rows, and the first self-attention block optionally read from
`first_block_table` (it sees position queries only).

Shapes are batch-first: features `[B, T, nfeats]`, mask `[B, T]` (True = valid frame), latents
`[B, 1, d]` (MLD's `(1, B, d)` transposed). Parameter names follow the PyTorch module names
(`skel_embedding`, `global_motion_token`, `query_pos_encoder/pe`, `encoder`, ...), see
`lead_jax/convert/mld_ckpt.py`. HumanML3D (nfeats 263) has 18,032,135 parameters, KIT (251)
18,025,979.

Usage:
  vae = MotionVAE(nfeats=263)
  params = vae.init({'params': key}, feats, mask)['params']
  z, mu, logvar = vae.apply({'params': params}, feats, mask, rng, method=MotionVAE.encode)
  recon = vae.apply({'params': params}, z, mask, method=MotionVAE.decode)
  recon = vae.apply({'params': params}, z, packing.pack(lengths, frames), frames,
                    method=MotionVAE.decode_packed)              # the same, packed
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lead_jax.errors import InputError
from lead_jax.models import layers, packing

Array = jax.Array


class MotionVAE(nn.Module):
  """Transformer VAE over motion features with one latent token of width `latent_dim`."""
  nfeats: int = 263
  latent_dim: int = 256
  latent_size: int = 1
  ff_size: int = 1024
  num_layers: int = 9
  num_heads: int = 4
  dropout: float = 0.1
  max_len: int = 500

  def setup(self):
    if self.latent_size != 1:
      raise InputError(f"MotionVAE supports latent_size=1 (MLD's [1, 256]), found {self.latent_size}")
    stack = dict(num_layers=self.num_layers, num_heads=self.num_heads, ff_size=self.ff_size,
                 dropout=self.dropout)
    self.skel_embedding = layers.dense(self.latent_dim)
    self.global_motion_token = self.param(
        "global_motion_token", nn.initializers.normal(1.0), (2 * self.latent_size, self.latent_dim))
    self.query_pos_encoder = layers.LearnedPositionEmbedding(self.max_len)
    self.query_pos_decoder = layers.LearnedPositionEmbedding(self.max_len)
    self.encoder = layers.SkipTransformerEncoder(**stack)
    self.decoder = layers.SkipTransformerDecoder(**stack)
    self.final_layer = layers.dense(self.nfeats)

  def _check(self, name: str, x: Array, last: int | None, mask: Array) -> None:
    if mask.ndim != 2 or x.shape[0] != mask.shape[0] or x.shape[1] != mask.shape[1]:
      raise InputError(f"{name} has shape {tuple(x.shape)} but mask has shape {tuple(mask.shape)}; "
                       "expected mask [B, T] matching the first two axes")
    if last is not None and (x.ndim != 3 or x.shape[-1] != last):
      raise InputError(f"{name} must be [B, T, {last}], found {tuple(x.shape)}")

  def encode(self, features: Array, mask: Array, rng: Array | None = None,
             deterministic: bool = True) -> tuple[Array, Array, Array]:
    """`features [B, T, nfeats]`, `mask [B, T]` -> `(z, mu, logvar)`, each `[B, 1, latent_dim]`.

    `z = mu + exp(logvar / 2) * N(0, 1)` drawn with `rng` (MLD's `rsample`), or `z = mu` when
    `rng` is None. Padded frames do not influence the result.
    """
    self._check("features", features, self.nfeats, mask)
    if features.shape[1] + 2 > self.max_len:
      raise InputError(f"features have {features.shape[1]} frames; at most {self.max_len - 2} fit")
    batch = features.shape[0]
    x = self.skel_embedding(features)
    tokens = jnp.broadcast_to(self.global_motion_token[None], (batch,) + self.global_motion_token.shape)
    x = jnp.concatenate([tokens.astype(x.dtype), x], axis=1)
    aug_mask = jnp.concatenate([jnp.ones((batch, 2), bool), mask.astype(bool)], axis=1)
    x = self.query_pos_encoder(x)
    out = self.encoder(x, aug_mask, deterministic)
    mu, logvar = out[:, 0:1], out[:, 1:2]
    if rng is None:
      return mu, mu, logvar
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mu.shape, mu.dtype)
    return z, mu, logvar

  def decode(self, z: Array, mask: Array, deterministic: bool = True) -> Array:
    """`z [B, 1, latent_dim]`, `mask [B, T]` -> features `[B, T, nfeats]`, zero on padded frames."""
    if z.ndim != 3 or z.shape[1:] != (1, self.latent_dim) or z.shape[0] != mask.shape[0]:
      raise InputError(f"latent z must be [B, 1, {self.latent_dim}] with B = mask's {mask.shape[0]}, "
                       f"found {tuple(z.shape)}")
    if mask.ndim != 2 or mask.shape[1] > self.max_len:
      raise InputError(f"mask must be [B, T] with T <= {self.max_len}, found {tuple(mask.shape)}")
    mask = mask.astype(bool)
    queries = jnp.zeros(mask.shape + (self.latent_dim,), z.dtype)
    queries = self.query_pos_decoder(queries)
    out = self.decoder(queries, z, mask, None, deterministic)
    out = self.final_layer(out)
    return jnp.where(mask[..., None], out, 0.0)

  def decode_packed(self, z: Array, motions: packing.Packing, frames: int,
                    first_block: Array | None = None) -> Array:
    """`z [N, 1, latent_dim]` and the N motions' `Packing` (rows of C >= `frames` slots) ->
    features `[N, frames, nfeats]`, zero past each length: `decode` (deterministic) computed on
    the packed frames only.

    The decoder runs on the packing's compact tokens (its real frames, `[F, d]`): each query is
    `query_pos_decoder`'s embedding at its frame index, self-attention runs in the rows within a
    motion, the cross-attention to the motion's one latent token is its value projection,
    computed once per motion and gathered per frame. `first_block` (`first_block_table(vae,
    params, L)`, L >= `frames`) gives the first layer's self-attention block, read per frame.
    """
    segments = jnp.asarray(motions.segment_ids)
    if z.ndim != 3 or z.shape[1:] != (1, self.latent_dim) or z.shape[0] != motions.num_items:
      raise InputError(f"latent z must be [N, 1, {self.latent_dim}] with N = the packing's "
                       f"{motions.num_items} motions, found {tuple(z.shape)}")
    if segments.ndim != 2 or segments.shape[1] > self.max_len or frames > segments.shape[1]:
      raise InputError(f"packed frames must be [R, C] with frames={frames} <= C <= {self.max_len}, "
                       f"found {tuple(segments.shape)}")
    positions = packing.to_tokens(jnp.asarray(motions.positions), motions)
    motion = packing.to_tokens(jnp.maximum(segments, 0), motions)
    queries = jnp.zeros((motions.num_tokens, self.latent_dim), z.dtype)
    queries = self.query_pos_decoder(queries, positions)
    if first_block is not None:
      if first_block.ndim != 3 or first_block.shape[0] < frames or first_block.shape[1:] != (
          first_block.shape[0], self.latent_dim):
        raise InputError(f"first_block must be [L, L, {self.latent_dim}] with L >= frames="
                         f"{frames} (first_block_table), found {tuple(first_block.shape)}")
      length = jnp.asarray(motions.item_length)[motion]
      first_block = first_block[jnp.maximum(length - 1, 0), positions]
    out = self.decoder(queries, z, packing.attention_mask(motions), None, True,
                       memory_index=motion, rows=motions, first_block=first_block)
    return packing.unpack(packing.to_rows(self.final_layer(out), motions), motions, frames)

  def __call__(self, features: Array, mask: Array, rng: Array | None = None,
               deterministic: bool = True) -> tuple[Array, Array, Array, Array]:
    """Encode then decode: -> `(recon [B, T, nfeats], z, mu, logvar)`."""
    z, mu, logvar = self.encode(features, mask, rng, deterministic)
    return self.decode(z, mask, deterministic), z, mu, logvar


def first_block_table(vae: MotionVAE, params: Any, frames: int) -> Array:
  """`[frames, frames, latent_dim]`: entry `[L - 1, t]` is the decoder's first self-attention
  block, `norm1(q_t + self_attn(q_0 .. q_{L-1})_t)`, at frame t of a motion of L frames.

  The decoder's queries are position embeddings `q_t` only, and self-attention stays within a
  motion, so that block depends on (L, t) alone: `decode_packed(..., first_block=table)` reads it
  instead of computing it (inference; the same up to float reassociation). `params` are the
  VAE's (matmul dtype included: compute the table with the parameters that decode).
  """
  if not 1 <= frames <= vae.max_len:
    raise InputError(f"first_block_table: frames must be in [1, {vae.max_len}], found {frames}")
  block = params["decoder"][layers.first_layer(vae.num_layers)]
  queries = jnp.broadcast_to(params["query_pos_decoder"]["pe"][:frames],
                             (frames, frames, vae.latent_dim))  # [L - 1, t, d]
  mask = jnp.arange(frames)[None, :] < jnp.arange(1, frames + 1)[:, None]  # key t' < L
  attended = layers.MultiHeadAttention(vae.num_heads).apply(
      {"params": block["self_attn"]}, queries, queries, mask)
  return layers.layer_norm().apply({"params": block["norm1"]}, queries + attended)
