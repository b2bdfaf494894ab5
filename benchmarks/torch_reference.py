"""Compact PyTorch re-statement of MLD's motion VAE and denoiser, written from the reference facts
(docs reference §2, §3, §10), sequence-first as MLD, with MLD's checkpoint key names.

`MLDModel(nfeats, text_dim)` has submodules `vae` and `denoiser`, so `state_dict()` keys are
`vae.skel_embedding.weight`, `vae.encoder.input_blocks.0.self_attn.in_proj_weight`, ...,
`denoiser.emb_proj.1.weight`, `denoiser.mem_pos.pe` (unused, kept for key fidelity). Used by the
parity tests of `lead_jax.convert.mld_ckpt` and as benchmark baselines. Needs `torch`.

  model = MLDModel(263, 768).eval()
  z, mu, logvar = model.vae.encode(feats, lengths)      # feats (B, T, 263) -> (1, B, 256)
  feats = model.vae.decode(z, lengths)                  # -> (B, T, 263), padded frames zero
  eps = model.denoiser(z_t, t, text)                    # (B, 1, 256), (B,), (B, 1, 768)
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
  """(B,) lengths -> (B, max_len) bool, True = valid frame."""
  return torch.arange(max_len, device=lengths.device)[None] < lengths[:, None]


class EncoderLayer(nn.Module):
  """Post-norm self-attention layer (MLD `TransformerEncoderLayer.forward_post`)."""

  def __init__(self, d: int, heads: int, ff: int, dropout: float):
    super().__init__()
    self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout)
    self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
    self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
    self.dropout, self.dropout1, self.dropout2 = (nn.Dropout(dropout) for _ in range(3))

  def forward(self, x, key_padding_mask=None):
    x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, key_padding_mask=key_padding_mask)[0]))
    ff = self.linear2(self.dropout(F.gelu(self.linear1(x))))
    return self.norm2(x + self.dropout2(ff))


class DecoderLayer(nn.Module):
  """Post-norm decoder layer: self-attention, cross-attention to memory, FFN."""

  def __init__(self, d: int, heads: int, ff: int, dropout: float):
    super().__init__()
    self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout)
    self.multihead_attn = nn.MultiheadAttention(d, heads, dropout=dropout)
    self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
    self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
    self.dropout, self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(4))

  def forward(self, x, memory, tgt_key_padding_mask=None):
    x = self.norm1(x + self.dropout1(
        self.self_attn(x, x, x, key_padding_mask=tgt_key_padding_mask)[0]))
    x = self.norm2(x + self.dropout2(self.multihead_attn(x, memory, memory)[0]))
    ff = self.linear2(self.dropout(F.gelu(self.linear1(x))))
    return self.norm3(x + self.dropout3(ff))


class SkipStack(nn.Module):
  """MLD `SkipTransformerEncoder/Decoder`: input blocks, middle, output blocks fed
  `Linear(2d, d)(cat[x, skip])` (LIFO), final LayerNorm; xavier_uniform on every >1-dim weight."""

  def __init__(self, layer: nn.Module, num_layers: int, d: int):
    super().__init__()
    assert num_layers % 2 == 1
    half = (num_layers - 1) // 2
    self.input_blocks = nn.ModuleList(copy.deepcopy(layer) for _ in range(half))
    self.middle_block = copy.deepcopy(layer)
    self.output_blocks = nn.ModuleList(copy.deepcopy(layer) for _ in range(half))
    self.linear_blocks = nn.ModuleList(nn.Linear(2 * d, d) for _ in range(half))
    self.norm = nn.LayerNorm(d)
    for p in self.parameters():
      if p.dim() > 1:
        nn.init.xavier_uniform_(p)

  def forward(self, x, *args, **kwargs):
    skips = []
    for blk in self.input_blocks:
      x = blk(x, *args, **kwargs)
      skips.append(x)
    x = self.middle_block(x, *args, **kwargs)
    for blk, lin in zip(self.output_blocks, self.linear_blocks):
      x = blk(lin(torch.cat([x, skips.pop()], dim=-1)), *args, **kwargs)
    return self.norm(x)


class LearnedPE(nn.Module):
  """MLD `PositionEmbeddingLearned1D`: `pe (max_len, 1, d) ~ U(0,1)`, `x (T, B, d) + pe[:T]`."""

  def __init__(self, d: int, max_len: int = 500):
    super().__init__()
    self.pe = nn.Parameter(torch.rand(max_len, 1, d))

  def forward(self, x):
    return x + self.pe[: x.shape[0]]


class MldVae(nn.Module):
  def __init__(self, nfeats: int = 263, d: int = 256, ff: int = 1024, num_layers: int = 9,
               heads: int = 4, dropout: float = 0.1):
    super().__init__()
    self.latent_dim = d
    self.query_pos_encoder = LearnedPE(d)
    self.query_pos_decoder = LearnedPE(d)
    self.encoder = SkipStack(EncoderLayer(d, heads, ff, dropout), num_layers, d)
    self.decoder = SkipStack(DecoderLayer(d, heads, ff, dropout), num_layers, d)
    self.global_motion_token = nn.Parameter(torch.randn(2, d))
    self.skel_embedding = nn.Linear(nfeats, d)
    self.final_layer = nn.Linear(d, nfeats)

  def encode(self, features, lengths, sample: bool = True):
    """(B, T, nfeats), (B,) -> z, mu, logvar each (1, B, d)."""
    bs, t, _ = features.shape
    mask = lengths_to_mask(lengths, t)
    x = self.skel_embedding(features).permute(1, 0, 2)
    tokens = self.global_motion_token[:, None].expand(-1, bs, -1)
    xseq = self.query_pos_encoder(torch.cat([tokens, x], 0))
    aug_mask = torch.cat([torch.ones(bs, 2, dtype=torch.bool, device=mask.device), mask], 1)
    out = self.encoder(xseq, key_padding_mask=~aug_mask)[:2]
    mu, logvar = out[0:1], out[1:2]
    z = torch.distributions.Normal(mu, logvar.exp().sqrt()).rsample() if sample else mu
    return z, mu, logvar

  def decode(self, z, lengths, max_len: int | None = None):
    """z (1, B, d), (B,) -> (B, T, nfeats) with padded frames zero."""
    t = int(max_len or lengths.max())
    mask = lengths_to_mask(lengths, t)
    queries = self.query_pos_decoder(torch.zeros(t, z.shape[1], self.latent_dim, device=z.device))
    out = self.final_layer(self.decoder(queries, z, tgt_key_padding_mask=~mask))
    out[~mask.T] = 0
    return out.permute(1, 0, 2)


class TimestepEmbedding(nn.Module):
  def __init__(self, channels: int, out: int):
    super().__init__()
    self.linear_1, self.linear_2 = nn.Linear(channels, out), nn.Linear(out, out)

  def forward(self, x):
    return self.linear_2(F.silu(self.linear_1(x)))


def timestep_sinusoid(t, dim: int, flip_sin_to_cos: bool = True, freq_shift: float = 0.0):
  half = dim // 2
  freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - freq_shift))
  args = t[:, None].float() * freqs[None]
  emb = torch.cat([torch.sin(args), torch.cos(args)], -1)
  return torch.cat([emb[:, half:], emb[:, :half]], -1) if flip_sin_to_cos else emb


class MldDenoiser(nn.Module):
  def __init__(self, text_dim: int = 768, d: int = 256, ff: int = 1024, num_layers: int = 9,
               heads: int = 4, dropout: float = 0.1):
    super().__init__()
    self.text_dim = text_dim
    self.time_embedding = TimestepEmbedding(text_dim, d)
    self.emb_proj = nn.Sequential(nn.ReLU(), nn.Linear(text_dim, d))
    self.query_pos = LearnedPE(d)
    self.mem_pos = LearnedPE(d)  # unused (as in MLD's trans_enc)
    self.encoder = SkipStack(EncoderLayer(d, heads, ff, dropout), num_layers, d)

  def forward(self, sample, timestep, text):
    """(B, 1, d), (B,), (B, 1, text_dim) -> eps (B, 1, d)."""
    sample = sample.permute(1, 0, 2)
    t_emb = self.time_embedding(timestep_sinusoid(timestep.expand(sample.shape[1]), self.text_dim))
    text = self.emb_proj(text.permute(1, 0, 2))
    xseq = self.query_pos(torch.cat([sample, t_emb[None], text], 0))
    return self.encoder(xseq)[:1].permute(1, 0, 2)


class MLDModel(nn.Module):
  """Holder giving MLD's checkpoint prefixes `vae.*` and `denoiser.*`."""

  def __init__(self, nfeats: int = 263, text_dim: int = 768, **kwargs):
    super().__init__()
    self.vae = MldVae(nfeats, **kwargs)
    self.denoiser = MldDenoiser(text_dim, **kwargs)


# ---- the T2M evaluator (text-to-motion, reference §8.1), with its checkpoint key names ----------
class T2MMovementEncoder(nn.Module):
  """`MovementConvEncoder`: Conv1d(k=4, s=2, p=1) x2 with LeakyReLU(0.2), then `out_net`."""

  def __init__(self, dim_in: int = 259, hidden: int = 512, out: int = 512):
    super().__init__()
    self.main = nn.Sequential(nn.Conv1d(dim_in, hidden, 4, 2, 1), nn.Dropout(0.2),
                              nn.LeakyReLU(0.2), nn.Conv1d(hidden, out, 4, 2, 1),
                              nn.Dropout(0.2), nn.LeakyReLU(0.2))
    self.out_net = nn.Linear(out, out)

  def forward(self, x):
    """(B, T, dim_in) -> (B, T // 4, out)."""
    return self.out_net(self.main(x.permute(0, 2, 1)).permute(0, 2, 1))


class T2MBiGRUEncoder(nn.Module):
  """`MotionEncoderBiGRUCo` / `TextEncoderBiGRUCo` (with `pos`): packed BiGRU, learned h0."""

  def __init__(self, dim_in: int, hidden: int, out: int, pos: int | None = None):
    super().__init__()
    if pos:
      self.pos_emb = nn.Linear(pos, dim_in)
    self.input_emb = nn.Linear(dim_in, hidden)
    self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
    self.output_net = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.LayerNorm(hidden),
                                    nn.LeakyReLU(0.2), nn.Linear(hidden, out))
    self.hidden = nn.Parameter(torch.randn(2, 1, hidden))

  def forward(self, x, lengths, pos=None):
    if pos is not None:
      x = x + self.pos_emb(pos)
    packed = nn.utils.rnn.pack_padded_sequence(self.input_emb(x), torch.as_tensor(lengths),
                                               batch_first=True, enforce_sorted=False)
    _, h_n = self.gru(packed, self.hidden.repeat(1, x.shape[0], 1))
    return self.output_net(torch.cat([h_n[0], h_n[1]], -1))


def t2m_evaluator(dim_pose: int = 263, seed: int = 1) -> dict[str, nn.Module]:
  """The three networks of `finest.tar` (keys `movement_encoder`, `motion_encoder`,
  `text_encoder`) with random weights, non-trivial LayerNorm affines, in eval mode."""
  torch.manual_seed(seed)
  nets = {"movement_encoder": T2MMovementEncoder(dim_pose - 4).eval(),
          "motion_encoder": T2MBiGRUEncoder(512, 1024, 512).eval(),
          "text_encoder": T2MBiGRUEncoder(300, 512, 512, pos=15).eval()}
  with torch.no_grad():
    for name in ("motion_encoder", "text_encoder"):
      nets[name].output_net[1].weight.uniform_(0.5, 1.5)
      nets[name].output_net[1].bias.uniform_(-0.5, 0.5)
  return nets
