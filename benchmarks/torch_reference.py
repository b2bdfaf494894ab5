"""Compact PyTorch re-statement of MLD's motion VAE and denoiser, written from the reference facts
(docs reference §2, §3, §10), sequence-first as MLD, with MLD's checkpoint key names; and
MotionLCM's additions (§6.1): the guidance embedding (`time_embedding.cond_proj`), its LCM sampling
loop and its consistency-distillation targets.

`MLDModel(nfeats, text_dim)` has submodules `vae` and `denoiser`, so `state_dict()` keys are
`vae.skel_embedding.weight`, `vae.encoder.input_blocks.0.self_attn.in_proj_weight`, ...,
`denoiser.emb_proj.1.weight`, `denoiser.mem_pos.pe` (unused, kept for key fidelity). Used by the
parity tests of `lead_jax.convert.mld_ckpt` and as benchmark baselines. Needs `torch`.

  model = MLDModel(263, 768).eval()
  z, mu, logvar = model.vae.encode(feats, lengths)      # feats (B, T, 263) -> (1, B, 256)
  feats = model.vae.decode(z, lengths)                  # -> (B, T, 263), padded frames zero
  eps = model.denoiser(z_t, t, text)                    # (B, 1, 256), (B,), (B, 1, 768)

  lcm = MotionLCMModel(263, 768).eval()                 # keys of motionlcm_humanml.ckpt
  eps = lcm.denoiser(z_t, t, text, guidance_scale_embedding(w, 256))
  z0 = lcm_sample(lcm.denoiser, z_T, text, w, [999, 499], alphas_cumprod, noises)
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
  """diffusers' TimestepEmbedding; with `cond_proj_dim` (MotionLCM) a bias-free zero-initialised
  `cond_proj` Linear maps the guidance embedding onto the sinusoid first."""

  def __init__(self, channels: int, out: int, cond_proj_dim: int | None = None):
    super().__init__()
    self.cond_proj = None
    if cond_proj_dim is not None:
      self.cond_proj = nn.Linear(cond_proj_dim, channels, bias=False)
      nn.init.zeros_(self.cond_proj.weight)
    self.linear_1, self.linear_2 = nn.Linear(channels, out), nn.Linear(out, out)

  def forward(self, x, cond=None):
    if cond is not None:
      x = x + self.cond_proj(cond)
    return self.linear_2(F.silu(self.linear_1(x)))


def guidance_scale_embedding(w, dim: int = 256):
  """MotionLCM's `guidance_scale_embedding`: w (B,) -> (B, dim), [sin, cos] of 1000 w over
  frequencies exp(-ln(10000) i / (dim/2 - 1))."""
  half = dim // 2
  freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
  args = (w.float() * 1000.0)[:, None] * freqs[None]
  emb = torch.cat([torch.sin(args), torch.cos(args)], 1)
  return F.pad(emb, (0, 1)) if dim % 2 else emb


def timestep_sinusoid(t, dim: int, flip_sin_to_cos: bool = True, freq_shift: float = 0.0):
  half = dim // 2
  freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - freq_shift))
  args = t[:, None].float() * freqs[None]
  emb = torch.cat([torch.sin(args), torch.cos(args)], -1)
  return torch.cat([emb[:, half:], emb[:, :half]], -1) if flip_sin_to_cos else emb


class MldDenoiser(nn.Module):
  """MLD's denoiser (`mem_pos`: MLD's unused second PE, absent from MotionLCM's); with
  `time_cond_proj_dim`, MotionLCM's student, conditioned on the guidance embedding
  `timestep_cond`."""

  def __init__(self, text_dim: int = 768, d: int = 256, ff: int = 1024, num_layers: int = 9,
               heads: int = 4, dropout: float = 0.1, time_cond_proj_dim: int | None = None,
               mem_pos: bool = True):
    super().__init__()
    self.text_dim = text_dim
    self.time_cond_proj_dim = time_cond_proj_dim
    self.time_embedding = TimestepEmbedding(text_dim, d, time_cond_proj_dim)
    self.emb_proj = nn.Sequential(nn.ReLU(), nn.Linear(text_dim, d))
    self.query_pos = LearnedPE(d)
    if mem_pos:
      self.mem_pos = LearnedPE(d)  # unused (as in MLD's trans_enc)
    self.encoder = SkipStack(EncoderLayer(d, heads, ff, dropout), num_layers, d)

  def forward(self, sample, timestep, text, timestep_cond=None):
    """(B, 1, d), (B,) or (), (B, 1, text_dim)[, (B, cond_proj_dim)] -> eps (B, 1, d)."""
    sample = sample.permute(1, 0, 2)
    t_emb = self.time_embedding(timestep_sinusoid(timestep.expand(sample.shape[1]), self.text_dim),
                                timestep_cond)
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


class MotionLCMModel(nn.Module):
  """Holder with the prefixes of MotionLCM V1's checkpoints: `vae.*` and a `denoiser.*` with
  `time_embedding.cond_proj.weight` and no `mem_pos` (`time_cond_proj_dim` 256)."""

  def __init__(self, nfeats: int = 263, text_dim: int = 768, time_cond_proj_dim: int = 256,
               **kwargs):
    super().__init__()
    self.vae = MldVae(nfeats, **kwargs)
    self.denoiser = MldDenoiser(text_dim, time_cond_proj_dim=time_cond_proj_dim, mem_pos=False,
                                **kwargs)


def _abar(alphas_cumprod, t: int):
  return alphas_cumprod[t] if t >= 0 else alphas_cumprod[0]  # set_alpha_to_one=False


def lcm_boundary_scalings(t, sigma_data: float = 0.5, timestep_scaling: float = 10.0):
  """(c_skip, c_out) of the consistency function at timestep t (LCM, MotionLCM)."""
  s = t * timestep_scaling
  return sigma_data**2 / (s**2 + sigma_data**2), s / (s**2 + sigma_data**2) ** 0.5


def lcm_sample(denoiser, z, text, w, timesteps, alphas_cumprod, noises):
  """MotionLCM's sampling loop (`MLD._diffusion_reverse` with a `time_cond_proj_dim` denoiser and
  diffusers' LCMScheduler, epsilon, set_alpha_to_one False): no CFG doubling, the guidance scale s
  enters as `w = s - 1` embedded; each step's `denoised = c_out x0 + c_skip z`, re-noised to the
  next timestep with `noises[i]` (B, 1, d) except after the last.

  Args: z (B, 1, d) initial noise; text (B, 1, E); w (B,) = guidance_scale - 1; timesteps a list of
  ints (e.g. [999, 759, 499, 259]); alphas_cumprod (1000,) float32 tensor.
  """
  cond = guidance_scale_embedding(w, denoiser.time_cond_proj_dim)
  for i, t in enumerate(timesteps):
    eps = denoiser(z, torch.tensor(t), text, cond)
    a_t = alphas_cumprod[t]
    x0 = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    c_skip, c_out = lcm_boundary_scalings(float(t))
    denoised = c_out * x0 + c_skip * z
    if i + 1 == len(timesteps):
      return denoised
    a_prev = _abar(alphas_cumprod, timesteps[i + 1])
    z = a_prev.sqrt() * denoised + (1 - a_prev).sqrt() * noises[i]
  return z


def lcm_distillation_targets(online, teacher, target, z_t, t, w, text, uncond, alphas_cumprod,
                             skip: int = 20):
  """MotionLCM's distillation step (`train_motionlcm.py`) from given draws: z_t (B, 1, d) at
  integer timesteps t (B,) (each (n+1) skip - 1), w (B,), text / uncond (B, 1, E). Returns
  (online prediction, target), each (B, 1, d): the online consistency output at t, and the target
  network's at s = max(t - skip, 0) after the teacher's guided DDIM step t -> s."""
  alphas, sigmas = alphas_cumprod.sqrt(), (1 - alphas_cumprod).sqrt()
  col = lambda x: x[:, None, None]

  def origin(eps, steps, sample):
    return (sample - col(sigmas[steps]) * eps) / col(alphas[steps])

  s = torch.clamp(t - skip, min=0)
  w_emb = guidance_scale_embedding(w, online.time_cond_proj_dim)
  c_skip_t, c_out_t = (col(x) for x in lcm_boundary_scalings(t.double()))
  c_skip_s, c_out_s = (col(x) for x in lcm_boundary_scalings(s.double()))
  pred = c_skip_t.float() * z_t + c_out_t.float() * origin(online(z_t, t, text, w_emb), t, z_t)
  eps_c, eps_u = teacher(z_t, t, text), teacher(z_t, t, uncond)
  x0_c, x0_u = origin(eps_c, t, z_t), origin(eps_u, t, z_t)
  x0 = x0_c + col(w) * (x0_c - x0_u)
  eps = eps_c + col(w) * (eps_c - eps_u)
  index = (t + 1) // skip - 1
  prev = torch.where(index > 0, alphas_cumprod[torch.clamp(t - skip, min=0)], alphas_cumprod[0])
  z_s = col(prev.sqrt()) * x0 + col((1 - prev).sqrt()) * eps
  tgt = c_skip_s.float() * z_s + c_out_s.float() * origin(target(z_s, s, text, w_emb), s, z_s)
  return pred, tgt
