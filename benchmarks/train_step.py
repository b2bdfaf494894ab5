"""Training-step throughput of the three stages against a PyTorch re-statement of MLD's step.

JAX side: the exact jitted step the trainers run, `lead_jax.train.step.make_train_program` with
the stage's own loss (`lead_jax.train.{vae,denoiser,projector}.make_loss_fn`) at the paper's model
sizes (configs/vae_humanml3d.py, configs/denoiser_humanml3d.py, configs/projector_humanml3d.py:
MLD VAE 18.0M params, MLD denoiser 8.2M with CLIP-width text 768, LEAD projector 'transformer'):
state donated, AdamW (lr 1e-4, wd 0.01), metrics (loss terms, grad and param norms) returned.
  vae        VAE forward (sampled z, dropout on) + SmoothL1 features + SmoothL1 joints
             (recover_from_ric) + 1e-4 KL, backward, AdamW.       batch: motion [B, 196, 263]
             Variants: the dropout masks' generator (`train.dropout_rng`, `--vae-dropout-rngs`).
  denoiser   latents + CFG caption drop 0.1 + DDPM noising + denoiser forward/backward (eps MSE),
             AdamW. Variants: 'latent cache' (z sampled from cached posteriors, batch
             latent_mu/latent_logvar [B, 1, 256] + text_emb [B, 768]; `lead_jax.train.latents`)
             and 're-encode' (frozen VAE encode of motion [B, 196, 263] in the step, MLD).
  projector  latents + projector E/D forward/backward, LEAD Eq. 7 (rec 4.7036, align 2.1591,
             kl 0.0596), AdamW. Variants: 'latent cache' and 're-encode', as the denoiser.
Baseline (PyTorch, eager, same CPU, same batch, `--torch-threads` intra-op threads): the same step
as MLD runs it (re-encoding every step) re-stated with `benchmarks/torch_reference.py` (MLD's VAE
and denoiser, sequence-first, as MLD) and, below, a compact torch projector (same architecture as
lead_jax/models/projector.py) and the three losses; `torch.optim.AdamW` (`--torch-adamw`, default
fused), grad and param norms computed too.

Timing: compile = `step.lower(...).compile()` (trace + XLA compile; the jitted step then reuses
that executable, checked: a recompile is reported). Steady state: each round runs one step of
every variant and of torch in turn (all see the same machine load on a shared CPU), `--warmup`
rounds dropped, then the median of `--steps` rounds; JAX steps end with `block_until_ready`.
samples/s = batch / median step seconds; 'vs torch' = torch step time / this step time (targets:
denoiser and projector with the cache >= 10, VAE >= 1). Memory: 'XLA MB' is the step's buffer
plan (arguments + outputs + temporaries - donated), 'peak MB' the resident memory one step adds at
its peak (VmHWM after a reset, minus VmRSS before; the same measure for torch).

  JAX_PLATFORMS=cpu python benchmarks/train_step.py                 # defaults: ~8 min, 2 busy cores
  JAX_PLATFORMS=cpu python benchmarks/train_step.py --vae-batch 8 32 --denoiser-batch 64 256 \
      --projector-batch 64 256        # bigger batches: each new shape recompiles, 4x longer steps
  JAX_PLATFORMS=cpu python benchmarks/train_step.py --stages vae --vae-dropout-rngs threefry rbg \
      unsafe_rbg counter_hash --steps 7
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import statistics
import sys
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from lead_jax.config_loader import load_config  # noqa: E402
from lead_jax.diffusion import make_scheduler  # noqa: E402
from lead_jax.models import build_denoiser, build_projector, build_vae, count_params  # noqa: E402
from lead_jax.models import init_params  # noqa: E402
from benchmarks import torch_reference as torch_mld  # noqa: E402
from lead_jax.train import mesh as mesh_lib  # noqa: E402
from lead_jax.train import denoiser as denoiser_stage  # noqa: E402
from lead_jax.train import projector as projector_stage  # noqa: E402
from lead_jax.train import vae as vae_stage  # noqa: E402
from lead_jax.train.step import DROPOUT_RNGS, make_train_program  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = {"vae": "configs/vae_humanml3d.py", "denoiser": "configs/denoiser_humanml3d.py",
           "projector": "configs/projector_humanml3d.py"}
STAGES = tuple(CONFIGS)
DEFAULT_DROPOUT_RNG = load_config(str(REPO / CONFIGS["vae"]), []).train.dropout_rng


# ---- PyTorch re-statement: projector and losses --------------------------------------------------
def torch_sinusoidal_positions(length: int, dim: int, max_period: float = 10000.0) -> torch.Tensor:
  """`[length, dim]`: even channels sin, odd channels cos (lead_jax.models.layers)."""
  pos = torch.arange(length, dtype=torch.float32)[:, None]
  freqs = torch.exp(-math.log(max_period) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
  pe = torch.zeros(length, dim)
  pe[:, 0::2] = torch.sin(pos * freqs)
  pe[:, 1::2] = torch.cos(pos * freqs[: dim // 2])
  return pe


class TorchProjector(nn.Module):
  """LEAD projector, arch 'transformer', pool 'token' (lead_jax/models/projector.py), seq-first.

  E_proj: `z [B, 1, L]` -> K tokens `Linear(L/K -> W)`, pooling token prepended, + sinusoid,
  dropout, `num_layers` post-norm encoder layers, token 0 -> `Linear(W -> E)`.
  D_proj: `Linear(E -> K*W)` -> K tokens + sinusoid, dropout, its own stack, `Linear(W -> L/K)`.
  """

  def __init__(self, text_dim: int, latent_dim: int, num_tokens: int, width: int, ff_size: int,
               num_layers: int, num_heads: int, dropout: float):
    super().__init__()
    self.k, self.width, self.latent_dim = num_tokens, width, latent_dim
    layer = lambda: torch_mld.EncoderLayer(width, num_heads, ff_size, dropout)
    self.enc_in = nn.Linear(latent_dim // num_tokens, width)
    self.pool_token = nn.Parameter(torch.randn(1, width))
    self.enc_stack = nn.ModuleList(layer() for _ in range(num_layers))
    self.enc_out = nn.Linear(width, text_dim)
    self.dec_in = nn.Linear(text_dim, num_tokens * width)
    self.dec_stack = nn.ModuleList(layer() for _ in range(num_layers))
    self.dec_out = nn.Linear(width, latent_dim // num_tokens)
    self.drop = nn.Dropout(dropout)
    self.register_buffer("pe", torch_sinusoidal_positions(num_tokens + 1, width)[:, None])

  def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`z [B, 1, L]` -> `(z_proj [B, E], z_hat [B, 1, L])`."""
    batch = z.shape[0]
    tokens = self.enc_in(z.reshape(batch, self.k, -1).transpose(0, 1))  # [K, B, W]
    x = torch.cat([self.pool_token[:, None].expand(1, batch, self.width), tokens], 0)
    x = self.drop(x + self.pe[: self.k + 1])
    for blk in self.enc_stack:
      x = blk(x)
    z_proj = self.enc_out(x[0])
    y = self.dec_in(z_proj).reshape(batch, self.k, self.width).transpose(0, 1)
    y = self.drop(y + self.pe[: self.k])
    for blk in self.dec_stack:
      y = blk(y)
    z_hat = self.dec_out(y).transpose(0, 1).reshape(batch, 1, self.latent_dim)
    return z_proj, z_hat


def torch_projector_loss(z, z_proj, z_hat, text, weights, eps: float = 1e-6) -> torch.Tensor:
  """LEAD Eq. 7 as `lead_jax.models.projector_loss` (batch-Gaussian KL, population variance)."""
  z2, zh2 = z.reshape(z.shape[0], -1), z_hat.reshape(z_hat.shape[0], -1)
  rec = torch.mean((z2 - zh2) ** 2)
  norm = lambda x: x.norm(dim=-1).clamp_min(eps)
  cos = (z_proj * text).sum(-1) / (norm(z_proj) * norm(text))
  align = torch.mean(1.0 - cos)
  mu_p, mu_q = z2.mean(0), zh2.mean(0)
  var_p, var_q = z2.var(0, unbiased=False) + eps, zh2.var(0, unbiased=False) + eps
  kl = (0.5 * (torch.log(var_q / var_p) + (var_p + (mu_p - mu_q) ** 2) / var_q - 1.0)).mean()
  return sum(w * term for w, term in zip(weights, (rec, align, kl)) if w != 0)


def _qrot(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
  u = q[..., 1:]
  uv = torch.cross(u, v, dim=-1)
  return v + 2.0 * (q[..., :1] * uv + torch.cross(u, uv, dim=-1))


def torch_recover_from_ric(x: torch.Tensor, joints_num: int) -> torch.Tensor:
  """HumanML3D `recover_from_ric`: features `[B, T, D]` -> joints `[B, T, J, 3]`."""
  rot_vel = x[..., 0]
  angle = torch.cumsum(torch.cat([torch.zeros_like(rot_vel[..., :1]), rot_vel[..., :-1]], -1), -1)
  zeros = torch.zeros_like(angle)
  inv = torch.stack([torch.cos(angle), zeros, -torch.sin(angle), zeros], -1)  # qinv(r_rot_quat)
  vel = torch.cat([torch.zeros_like(x[..., :1, 1:3]), x[..., :-1, 1:3]], -2)
  vel = torch.stack([vel[..., 0], torch.zeros_like(vel[..., 0]), vel[..., 1]], -1)
  r_pos = torch.cumsum(_qrot(inv, vel), -2)
  r_pos = torch.stack([r_pos[..., 0], x[..., 3], r_pos[..., 2]], -1)
  local = x[..., 4:4 + (joints_num - 1) * 3].reshape(x.shape[:-1] + (joints_num - 1, 3))
  world = _qrot(inv[..., None, :].expand(local.shape[:-1] + (4,)), local)
  world = world + (r_pos * r_pos.new_tensor([1.0, 0.0, 1.0]))[..., None, :]
  return torch.cat([r_pos[..., None, :], world], -2)


def scaled_linear_alphas_cumprod(n: int, beta_start: float, beta_end: float) -> torch.Tensor:
  betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, n, dtype=torch.float64) ** 2
  return torch.cumprod(1.0 - betas, 0).float()


# ---- cases ---------------------------------------------------------------------------------------
class JaxRunner:
  """One JAX training step (state donated) of a case, its compile time and XLA's memory plan."""
  is_torch = False

  def __init__(self, label: str, step, state, batch, frozen):
    self.label, self._step, self.state, self.batch, self.frozen = label, step, state, batch, frozen
    self.compile_s = self.xla_mb = float("nan")
    self._cache_size = getattr(step, "_cache_size", lambda: 0)  # jit's dispatch cache entries
    self._cached = None

  def compile(self, key) -> None:
    """`lower().compile()` (trace + XLA compile); the jitted step then reuses the executable."""
    start = time.perf_counter()
    compiled = self._step.lower(self.state, self.batch, self.frozen, key).compile()
    self.compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    if mem is not None:  # arguments + outputs + temporaries - donated (aliased) buffers
      self.xla_mb = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                     + mem.temp_size_in_bytes - mem.alias_size_in_bytes) / 2**20

  def step(self, key) -> float:
    self.state, metrics = self._step(self.state, self.batch, self.frozen, key)
    jax.block_until_ready((self.state, metrics))
    if self._cached is None:  # the first call adds the lowered executable to the jit cache
      self._cached = self._cache_size()
    return float(metrics["loss"])

  @property
  def recompiled(self) -> bool:
    return self._cached is not None and self._cache_size() != self._cached


class TorchRunner:
  """The PyTorch re-statement of the same step (eager)."""
  is_torch = True
  compile_s = xla_mb = float("nan")
  recompiled = False

  def __init__(self, label: str, step: Callable[[], Any]):
    self.label, self._step = label, step

  def compile(self, key) -> None:
    del key

  def step(self, key) -> float:
    del key
    return float(self._step()[0])


@dataclasses.dataclass
class Case:
  """One (stage, batch): its JAX variants and the torch baseline, timed interleaved."""
  stage: str
  batch: int
  runners: list


def _synthetic_batch(rng: np.random.Generator, batch: int, frames: int, nfeats: int,
                     text_dim: int) -> dict[str, np.ndarray]:
  """Normalised-feature-like motion `[B, T, D]` zero-padded past per-row lengths in [40, T]
  (one full-length row), `mask [B, T]`, `length [B]`, unit-norm `text_emb [B, E]`."""
  lengths = rng.integers(min(40, frames), frames + 1, size=batch)
  lengths[0] = frames
  mask = np.arange(frames)[None] < lengths[:, None]
  motion = (0.5 * rng.standard_normal((batch, frames, nfeats))).astype(np.float32) * mask[..., None]
  out = {"motion": motion, "mask": mask, "length": lengths.astype(np.int32)}
  if text_dim:
    text = rng.standard_normal((batch, text_dim)).astype(np.float32)
    out["text_emb"] = text / np.linalg.norm(text, axis=-1, keepdims=True)
  return out


def _cached_batch(rng: np.random.Generator, batch: int, latent_dim: int,
                  text_emb: np.ndarray) -> dict[str, np.ndarray]:
  """A latent-cache batch: posteriors `latent_mu`, `latent_logvar [B, 1, d]` (as the frozen VAE
  gives: mu ~ N(0, 1), logvar ~ -2 +- 0.5) and the same `text_emb`."""
  return {"latent_mu": rng.standard_normal((batch, 1, latent_dim)).astype(np.float32),
          "latent_logvar": (-2.0 + 0.5 * rng.standard_normal((batch, 1, latent_dim))
                            ).astype(np.float32), "text_emb": text_emb}


def _torch_optimizer(params, config, kind: str) -> torch.optim.Optimizer:
  opt = config.optimizer
  extra = {"fused": True} if kind == "fused" else {"foreach": kind == "foreach"}
  return torch.optim.AdamW(params, lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=opt.eps,
                           weight_decay=opt.weight_decay, **extra)


def _torch_update(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor):
  """backward, grad norm, AdamW step, param norm (the measurements the JAX step returns)."""
  optimizer.zero_grad(set_to_none=True)
  loss.backward()
  params = [p for p in model.parameters() if p.grad is not None]
  grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.grad for p in params])))
  optimizer.step()
  param_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params)))
  return loss.detach(), grad_norm, param_norm


def build_case(stage: str, batch_size: int, args: argparse.Namespace) -> Case:
  config = load_config(str(REPO / CONFIGS[stage]), [])
  mesh = mesh_lib.make_mesh(config)
  rng = np.random.default_rng(0)
  frames, nfeats, joints = args.frames, int(config.dataset.nfeats), int(config.dataset.joints_num)
  text_dim = 0 if stage == "vae" else int(config.text_encoder.dim)
  data = _synthetic_batch(rng, batch_size, frames, nfeats, text_dim)
  vae = build_vae(config.vae)
  vae_kw = dict(d=config.vae.latent_dim, ff=config.vae.ff_size, num_layers=config.vae.num_layers,
                heads=config.vae.num_heads, dropout=config.vae.dropout)
  torch_vae = torch_mld.MldVae(nfeats, **vae_kw)
  motion_t, lengths_t = torch.from_numpy(data["motion"]), torch.from_numpy(data["length"]).long()
  frames_batch = mesh_lib.to_global_batch({k: v for k, v in data.items() if k != "length"}, mesh)
  # (variant label, config overrides, global batch, frozen) of each JAX runner
  variants: list[tuple[str, dict[str, Any], Any, Any]] = []

  if stage == "vae":
    model = vae
    frozen = {"mean": jnp.asarray(rng.standard_normal(nfeats) * 0.1, jnp.float32),
              "std": jnp.asarray(0.5 + rng.random(nfeats), jnp.float32)}
    make_loss = lambda cfg: vae_stage.make_loss_fn(vae, cfg)
    for impl in args.vae_dropout_rngs:
      variants.append((f"dropout {impl}", {"dropout_rng": impl}, frames_batch, frozen))
    mean_t, std_t = (torch.from_numpy(np.array(frozen[k])) for k in ("mean", "std"))
    loss_cfg = config.loss
    torch_model = torch_vae.train()

    def torch_loss():
      z, mu, logvar = torch_model.encode(motion_t, lengths_t)
      recon = torch_model.decode(z, lengths_t, max_len=frames)
      rec = F.smooth_l1_loss(recon, motion_t)
      joint = F.smooth_l1_loss(torch_recover_from_ric(recon * std_t + mean_t, joints),
                               torch_recover_from_ric(motion_t * std_t + mean_t, joints))
      kl = torch.mean(0.5 * (mu * mu + logvar.exp() - 1.0) - 0.5 * logvar)
      return loss_cfg.lambda_rec * rec + loss_cfg.lambda_joint * joint + loss_cfg.lambda_kl * kl
  else:
    vae_params = init_params("vae", vae, jax.random.key(1))
    torch_vae.eval().requires_grad_(False)
    text_t = torch.from_numpy(data["text_emb"])
    cached = mesh_lib.to_global_batch(
        _cached_batch(rng, batch_size, int(config.vae.latent_dim), data["text_emb"]), mesh)
    if stage == "denoiser":
      model = build_denoiser(config.denoiser)
      sched_cfg = config.scheduler
      scheduler = make_scheduler(config.scheduler, "ddpm")
      make_loss = lambda cfg: denoiser_stage.make_loss_fn(model, vae, scheduler, cfg)
      null_text = np.zeros(text_dim, np.float32)
      variants.append(("latent cache", {}, cached, {"null_text_emb": jnp.asarray(null_text)}))
      variants.append(("re-encode", {}, frames_batch,
                       {"null_text_emb": jnp.asarray(null_text), "vae": vae_params}))
      null_t = torch.from_numpy(null_text)
      den = config.denoiser
      torch_model = torch_mld.MldDenoiser(text_dim, d=den.latent_dim, ff=den.ff_size,
                                          num_layers=den.num_layers, heads=den.num_heads,
                                          dropout=den.dropout).train()
      abar = scaled_linear_alphas_cumprod(int(sched_cfg.num_train_timesteps),
                                          float(sched_cfg.beta_start), float(sched_cfg.beta_end))
      drop_prob = float(config.loss.cfg_drop_prob)

      def torch_loss():
        with torch.no_grad():
          z = torch_vae.encode(motion_t, lengths_t, sample=True)[0].permute(1, 0, 2)  # [B, 1, d]
        drop = torch.rand(batch_size) < drop_prob
        text = torch.where(drop[:, None], null_t[None], text_t)
        t = torch.randint(0, len(abar), (batch_size,))
        noise = torch.randn_like(z)
        a = abar[t][:, None, None]
        z_t = a.sqrt() * z + (1.0 - a).sqrt() * noise
        eps = torch_model(z_t, t, text[:, None])
        return F.mse_loss(eps, noise)
    else:
      model = build_projector(config.projector)
      make_loss = lambda cfg: projector_stage.make_loss_fn(model, vae, cfg)
      variants.append(("latent cache", {}, cached, {}))
      variants.append(("re-encode", {}, frames_batch, {"vae": vae_params}))
      p = config.projector
      if p.arch != "transformer" or p.pool != "token":
        raise SystemExit("the torch projector re-states arch='transformer', pool='token' only")
      torch_model = TorchProjector(text_dim, p.latent_dim, p.num_tokens, p.width, p.ff_size,
                                   p.num_layers, p.num_heads, p.dropout).train()
      weights = projector_stage.loss_weights(config)
      kl_eps = float(config.loss.kl_eps)

      def torch_loss():
        with torch.no_grad():
          z = torch_vae.encode(motion_t, lengths_t, sample=True)[0].permute(1, 0, 2)
        z_proj, z_hat = torch_model(z)
        return torch_projector_loss(z, z_proj, z_hat, text_t, weights, kl_eps)

  init = lambda key: init_params(stage, model, key)
  runners = []
  for label, train_overrides, batch, frozen in variants:
    cfg = load_config(str(REPO / CONFIGS[stage]),
                      [f"--config.train.{k}={v}" for k, v in train_overrides.items()])
    program = make_train_program(cfg, mesh, init, make_loss(cfg))
    state = program.init(jax.random.key(0))
    frozen = jax.device_put(frozen, mesh_lib.replicated(mesh))
    runners.append(JaxRunner(label, program.step, state, batch, frozen))
  optimizer = _torch_optimizer(torch_model.parameters(), config, args.torch_adamw)
  runners.append(TorchRunner("torch (MLD re-statement)" if stage != "projector"
                             else "torch (re-encode)",
                             lambda: _torch_update(torch_model, optimizer, torch_loss())))
  print(f"  {stage}: {count_params(runners[0].state.params) / 1e6:.2f}M trained params (JAX), "
        f"{sum(p.numel() for p in torch_model.parameters()) / 1e6:.2f}M (torch)", flush=True)
  return Case(stage, batch_size, runners)


# ---- timing --------------------------------------------------------------------------------------
def _proc_status_mb(field: str) -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) / 1024
  return float("nan")


def step_peak_mb(runner, key) -> float:
  """Resident memory a step adds at its peak: VmHWM (reset first) minus VmRSS before the step."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")  # resets the high-water mark to the current RSS
  except OSError:
    return float("nan")
  before = _proc_status_mb("VmRSS")
  runner.step(key)
  return _proc_status_mb("VmHWM") - before


@dataclasses.dataclass
class Result:
  stage: str
  variant: str
  batch: int
  step_s: float
  torch_s: float
  compile_s: float
  xla_mb: float
  peak_mb: float
  recompiled: bool


def run_case(case: Case, warmup: int, steps: int) -> list[Result]:
  """Compiles the JAX variants, then rounds of one step of each runner in turn (all see the same
  machine load), `warmup` rounds dropped, medians of `steps`; then one step each for memory."""
  keys = list(jax.random.split(jax.random.key(2), warmup + steps + 1))
  for r in case.runners:
    r.compile(keys[0])
  times = {r.label: [] for r in case.runners}
  for i in range(warmup + steps):
    for r in case.runners:
      start = time.perf_counter()
      loss = r.step(keys[i])
      times[r.label].append(time.perf_counter() - start)
      if not math.isfinite(loss):
        raise FloatingPointError(f"{case.stage} {r.label}: non-finite loss at step {i}")
  median = {k: statistics.median(v[warmup:]) for k, v in times.items()}
  torch_s = median[case.runners[-1].label]
  return [Result(case.stage, r.label, case.batch, median[r.label], torch_s, r.compile_s,
                 r.xla_mb, step_peak_mb(r, keys[-1]), r.recompiled) for r in case.runners]


HEADER = (f"{'stage':<9} | {'variant':<24} | {'batch':>5} | {'samples/s':>9} | {'vs torch':>8} | "
          f"{'compile s':>9} | {'XLA MB':>7} | {'peak MB':>7}")


def format_row(r: Result) -> str:
  rate = r.batch / r.step_s
  return (f"{r.stage:<9} | {r.variant:<24} | {r.batch:>5} | {rate:>9.2f} | "
          f"{r.torch_s / r.step_s:>8.2f} | {r.compile_s:>9.1f} | {r.xla_mb:>7.0f} | "
          f"{r.peak_mb:>7.0f}" + ("   RECOMPILED during the timed steps" if r.recompiled else ""))


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
  parser.add_argument("--vae-batch", type=int, nargs="+", default=[8])
  parser.add_argument("--denoiser-batch", type=int, nargs="+", default=[64])
  parser.add_argument("--projector-batch", type=int, nargs="+", default=[64])
  parser.add_argument("--vae-dropout-rngs", nargs="+", choices=DROPOUT_RNGS,
                      default=["threefry", DEFAULT_DROPOUT_RNG],
                      help="train.dropout_rng variants of the VAE step (timed interleaved)")
  parser.add_argument("--frames", type=int, default=196, help="padded motion length (data.max_len)")
  parser.add_argument("--warmup", type=int, default=1, help="untimed rounds after compiling")
  parser.add_argument("--steps", type=int, default=3, help="timed rounds (median)")
  parser.add_argument("--torch-threads", type=int, default=2, help="torch intra-op threads")
  parser.add_argument("--torch-adamw", choices=("fused", "foreach", "forloop"), default="fused")
  args = parser.parse_args(argv)
  args.vae_dropout_rngs = list(dict.fromkeys(args.vae_dropout_rngs))

  torch.manual_seed(0)
  torch.set_num_threads(args.torch_threads)
  batches = {"vae": args.vae_batch, "denoiser": args.denoiser_batch,
             "projector": args.projector_batch}
  print(f"jax {jax.__version__} ({jax.devices()[0].platform}, {os.cpu_count()} CPUs) vs torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads, AdamW {args.torch_adamw}); "
        f"{args.frames} frames; median of {args.steps} interleaved rounds after {args.warmup}; "
        f"load average {os.getloadavg()[0]:.1f}", flush=True)
  results = []
  for stage in args.stages:
    for batch_size in batches[stage]:
      for r in run_case(build_case(stage, batch_size, args), args.warmup, args.steps):
        results.append(r)
        print("  " + format_row(r), flush=True)
  print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
  print(HEADER)
  print("-" * len(HEADER))
  for r in results:
    print(format_row(r))
  return 0


if __name__ == "__main__":
  sys.exit(main())
