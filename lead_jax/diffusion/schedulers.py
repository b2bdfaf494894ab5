"""Noise schedulers (DDPM, DDIM, LCM) as pure functions over an immutable state.

The numerics follow diffusers' `DDPMScheduler`, `DDIMScheduler` and `LCMScheduler` with
`prediction_type="epsilon"` and no clipping or thresholding (MLD's configuration, reference §5):

  betas            scaled_linear: linspace(sqrt(beta_start), sqrt(beta_end), N)**2; linear: linspace
  alphas_cumprod   abar_t = prod_{s<=t} (1 - beta_s)                       (float64, stored float32)
  add_noise        x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
  predict_x0       F(eps) = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)

A state holds the tables and the inference timestep array; `timesteps[i]` is visited at step `i`
and `prev_timesteps[i]` is the timestep it steps to (negative means "past the start of the chain",
where the scheduler's final alpha applies). Every step function takes integer timesteps (scalar or
`[B]`) as traced values, so a sampling loop is one `lax.scan` over `(timesteps, prev_timesteps)`.

Example:
  state = make_ddim(num_inference_steps=50)            # timesteps [981, 961, ..., 1]
  z = init_noise(state, key, (4, 1, 256))
  for t, prev_t in zip(state.timesteps, state.prev_timesteps):   # see sampling.py for the scan
    z = ddim_step(state, denoise(z, t), t, prev_t, z)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from lead_jax.errors import ConfigError, InputError

SchedulerKind = Literal["ddpm", "ddim", "lcm"]
BETA_SCHEDULES = ("scaled_linear", "linear")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
VARIANCE_TYPES = ("fixed_small", "fixed_large")


@struct.dataclass
class SchedulerState:
  """Scheduler tables (pytree leaves) and settings (static).

  Attributes:
    betas: [N] float32 noise variances per training timestep.
    alphas_cumprod: [N] float32 abar_t.
    final_alpha_cumprod: [] float32 abar used when a step goes to a negative timestep.
    timesteps: [S] int32 inference timesteps, descending.
    prev_timesteps: [S] int32 timestep each step moves to (negative: past t=0).
    kind: "ddpm" | "ddim" | "lcm".
    num_train_timesteps: N.
    init_noise_sigma: std of the initial noise (1.0 for all three schedulers).
    eta: DDIM stochasticity (0 = deterministic DDIM).
    variance_type: DDPM posterior variance, "fixed_small" or "fixed_large".
    timestep_scaling: LCM boundary-condition scaling of t (10.0).
    sigma_data: LCM boundary-condition sigma_data (0.5).
  """
  betas: jax.Array
  alphas_cumprod: jax.Array
  final_alpha_cumprod: jax.Array
  timesteps: jax.Array
  prev_timesteps: jax.Array
  kind: str = struct.field(pytree_node=False, default="ddim")
  num_train_timesteps: int = struct.field(pytree_node=False, default=1000)
  init_noise_sigma: float = struct.field(pytree_node=False, default=1.0)
  eta: float = struct.field(pytree_node=False, default=0.0)
  variance_type: str = struct.field(pytree_node=False, default="fixed_small")
  timestep_scaling: float = struct.field(pytree_node=False, default=10.0)
  sigma_data: float = struct.field(pytree_node=False, default=0.5)

  @property
  def num_inference_steps(self) -> int:
    return int(self.timesteps.shape[0])


# ----------------------------------------------------------------------------------------------
# Construction (NumPy, float64, at build time).


def make_betas(num_train_timesteps: int = 1000, beta_start: float = 0.00085,
               beta_end: float = 0.012, beta_schedule: str = "scaled_linear") -> np.ndarray:
  """[N] float64 betas of a "scaled_linear" or "linear" schedule."""
  if num_train_timesteps < 1:
    raise ConfigError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
  if not 0.0 < beta_start <= beta_end < 1.0:
    raise ConfigError(
        f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}")
  if beta_schedule == "scaled_linear":
    return np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64)**2
  if beta_schedule == "linear":
    return np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float64)
  raise ConfigError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")


def _check_steps(num_inference_steps: int, num_train_timesteps: int, name: str) -> None:
  if not 1 <= num_inference_steps <= num_train_timesteps:
    raise ConfigError(f"{name} must be in [1, {num_train_timesteps}] "
                      f"(num_train_timesteps), got {num_inference_steps}")


def spaced_timesteps(num_inference_steps: int, num_train_timesteps: int = 1000,
                     timestep_spacing: str = "leading", steps_offset: int = 0) -> np.ndarray:
  """[S] int64 descending timesteps of diffusers' `set_timesteps` for DDIM/DDPM.

  leading: arange(S) * (N // S) reversed, + steps_offset    (50 of 1000, offset 1: [981, ..., 1])
  trailing: round(arange(N, 0, -N / S)) - 1
  linspace: round(linspace(0, N - 1, S)) reversed
  """
  _check_steps(num_inference_steps, num_train_timesteps, "num_inference_steps")
  if timestep_spacing == "leading":
    ratio = num_train_timesteps // num_inference_steps
    steps = (np.arange(num_inference_steps) * ratio).round()[::-1] + steps_offset
  elif timestep_spacing == "trailing":
    ratio = num_train_timesteps / num_inference_steps
    steps = np.round(np.arange(num_train_timesteps, 0, -ratio)) - 1
  elif timestep_spacing == "linspace":
    steps = np.linspace(0, num_train_timesteps - 1, num_inference_steps).round()[::-1]
  else:
    raise ConfigError(
        f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {timestep_spacing!r}")
  steps = steps.astype(np.int64)
  if steps.max() >= num_train_timesteps:
    raise ConfigError(f"steps_offset={steps_offset} pushes timestep {steps.max()} past "
                      f"num_train_timesteps={num_train_timesteps}")
  return steps


def _state(betas: np.ndarray, final_alpha_cumprod: float, timesteps: np.ndarray,
           prev_timesteps: np.ndarray, **static) -> SchedulerState:
  alphas_cumprod = np.cumprod(1.0 - betas)
  return SchedulerState(
      betas=jnp.asarray(betas, jnp.float32),
      alphas_cumprod=jnp.asarray(alphas_cumprod, jnp.float32),
      final_alpha_cumprod=jnp.asarray(final_alpha_cumprod, jnp.float32),
      timesteps=jnp.asarray(timesteps, jnp.int32),
      prev_timesteps=jnp.asarray(prev_timesteps, jnp.int32),
      num_train_timesteps=int(betas.shape[0]), **static)


def make_ddpm(num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
              beta_schedule: str = "scaled_linear", variance_type: str = "fixed_small",
              num_inference_steps: int | None = None) -> SchedulerState:
  """DDPM (ancestral) scheduler; MLD's training `noise_scheduler` with the defaults.

  Without `num_inference_steps` the chain visits every timestep N-1, ..., 0; with it, diffusers'
  "leading" spacing arange(S) * (N // S) reversed (steps_offset 0) and prev_t = t - N // S.
  """
  if variance_type not in VARIANCE_TYPES:
    raise ConfigError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}")
  betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule)
  steps = num_train_timesteps if num_inference_steps is None else num_inference_steps
  timesteps = spaced_timesteps(steps, num_train_timesteps, "leading", 0)
  prev = np.concatenate([timesteps[1:], [-1]])
  return _state(betas, 1.0, timesteps, prev, kind="ddpm", variance_type=variance_type)


def make_ddim(num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
              beta_schedule: str = "scaled_linear", num_inference_steps: int = 50,
              steps_offset: int = 1, set_alpha_to_one: bool = False, eta: float = 0.0,
              timestep_spacing: str = "leading") -> SchedulerState:
  """DDIM scheduler; MLD's sampling scheduler with the defaults (timesteps [981, 961, ..., 1]).

  prev_t = t - N // S as in diffusers (for t=1: -19, where abar_prev = final_alpha_cumprod, which is
  abar_0 = 0.99915 unless `set_alpha_to_one`).
  """
  if eta < 0:
    raise ConfigError(f"eta must be >= 0, got {eta}")
  betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule)
  timesteps = spaced_timesteps(num_inference_steps, num_train_timesteps, timestep_spacing,
                               steps_offset)
  prev = timesteps - num_train_timesteps // num_inference_steps
  final = 1.0 if set_alpha_to_one else float(1.0 - betas[0])
  return _state(betas, final, timesteps, prev, kind="ddim", eta=float(eta))


LCM_TIMESTEPS = {1: (999,), 2: (999, 499), 4: (999, 759, 499, 259)}  # N=1000, 50 original steps


def lcm_timesteps(num_inference_steps: int, original_inference_steps: int = 50,
                  num_train_timesteps: int = 1000) -> np.ndarray:
  """[S] diffusers (>= 0.24) LCM timesteps: S evenly spaced picks of (arange(1, K+1) * N//K - 1)[::-1]."""
  _check_steps(original_inference_steps, num_train_timesteps, "original_inference_steps")
  _check_steps(num_inference_steps, original_inference_steps, "num_inference_steps")
  k = num_train_timesteps // original_inference_steps
  origin = (np.arange(1, original_inference_steps + 1) * k - 1)[::-1]
  picks = np.floor(np.linspace(0, original_inference_steps, num_inference_steps,
                               endpoint=False)).astype(np.int64)
  return origin[picks]


def make_lcm(num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
             beta_schedule: str = "scaled_linear", num_inference_steps: int = 1,
             original_inference_steps: int = 50, set_alpha_to_one: bool = False,
             timestep_scaling: float = 10.0) -> SchedulerState:
  """Latent-consistency scheduler (MotionLCM V1 inference, reference §6.1): 1, 2 or 4 steps give
  [999], [999, 499], [999, 759, 499, 259]. The last step's prev timestep is -1 (no re-noising)."""
  betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule)
  timesteps = lcm_timesteps(num_inference_steps, original_inference_steps, num_train_timesteps)
  prev = np.concatenate([timesteps[1:], [-1]])
  final = 1.0 if set_alpha_to_one else float(1.0 - betas[0])
  return _state(betas, final, timesteps, prev, kind="lcm", timestep_scaling=float(timestep_scaling))


SCHEDULE_FIELDS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
SAMPLERS = ("ddim", "ddpm", "lcm")


def make_scheduler(schedule: Mapping[str, Any], kind: str = "ddpm",
                   steps: int | None = None) -> SchedulerState:
  """The one scheduler-from-config: `schedule` is a stage config's `scheduler` section (the noise
  schedule the denoiser was trained with: num_train_timesteps, beta_start, beta_end,
  beta_schedule); `kind` 'ddpm' | 'ddim' | 'lcm'; `steps` the inference steps (ddpm: every
  timestep when None; ddim: 50; lcm: 1). DDIM is MLD's (leading spacing, offset 1, eta 0)."""
  missing = [f for f in SCHEDULE_FIELDS if f not in schedule]
  if missing:
    raise ConfigError(f"config.scheduler lacks {missing} (expected {list(SCHEDULE_FIELDS)})")
  common = dict(num_train_timesteps=int(schedule["num_train_timesteps"]),
                beta_start=float(schedule["beta_start"]), beta_end=float(schedule["beta_end"]),
                beta_schedule=str(schedule["beta_schedule"]))
  if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                            or not 1 <= steps <= common["num_train_timesteps"]):
    raise InputError(f"steps must be an integer in [1, {common['num_train_timesteps']}], found "
                     f"{steps!r}")
  if kind == "ddpm":
    return make_ddpm(**common, num_inference_steps=None if steps is None else int(steps))
  if kind == "ddim":
    return make_ddim(**common, num_inference_steps=50 if steps is None else int(steps))
  if kind == "lcm":
    return make_lcm(**common, num_inference_steps=1 if steps is None else int(steps))
  raise InputError(f"scheduler must be one of {SAMPLERS}, found {kind!r}")


# ----------------------------------------------------------------------------------------------
# Pure step functions (jittable; timesteps are traced int arrays, scalar or [B]).


def _check_same_shape(value: jax.Array, x_t: jax.Array, name: str = "eps",
                      x_name: str = "x_t") -> None:
  if value.shape != x_t.shape:
    raise InputError(f"{name} has shape {tuple(value.shape)} but {x_name} has shape "
                     f"{tuple(x_t.shape)}; they must match")


def _per_sample(values: jax.Array, x: jax.Array) -> jax.Array:
  """Broadcasts a scalar or [B] table lookup against x [B, ...]."""
  values = jnp.asarray(values, jnp.float32)
  if values.ndim == 0:
    return values
  if values.ndim != 1 or values.shape[0] != x.shape[0]:
    raise InputError(f"timesteps must be a scalar or [B] with B={x.shape[0]}, "
                     f"got shape {tuple(values.shape)}")
  return values.reshape(values.shape + (1,) * (x.ndim - 1))


def _step_noise(key: jax.Array | None, noise: jax.Array | None, x_t: jax.Array,
                what: str) -> jax.Array:
  """The step's standard normal noise: `noise` if given, else drawn from `key`."""
  if noise is not None:
    _check_same_shape(noise, x_t, "noise")
    return jnp.asarray(noise, x_t.dtype)
  if key is None:
    raise ConfigError(f"{what} adds noise and needs a PRNG key (or explicit noise)")
  return jax.random.normal(key, x_t.shape, x_t.dtype)


def alpha_cumprod_at(state: SchedulerState, t: jax.Array) -> jax.Array:
  """abar_t for integer t (any shape); negative t gives `final_alpha_cumprod`."""
  t = jnp.asarray(t)
  table = state.alphas_cumprod[jnp.clip(t, 0, state.num_train_timesteps - 1)]
  return jnp.where(t >= 0, table, state.final_alpha_cumprod)


def sample_timesteps(key: jax.Array, batch: int, num_train_timesteps: int = 1000) -> jax.Array:
  """[batch] int32 timesteps uniform on {0, ..., num_train_timesteps - 1} (MLD's training draw)."""
  return jax.random.randint(key, (batch,), 0, num_train_timesteps, dtype=jnp.int32)


def init_noise(state: SchedulerState, key: jax.Array, shape: tuple[int, ...],
               dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """Initial latent x_T ~ N(0, init_noise_sigma^2), e.g. shape (B, 1, 256)."""
  return state.init_noise_sigma * jax.random.normal(key, shape, dtype)


def add_noise(state: SchedulerState, x0: jax.Array, noise: jax.Array, t: jax.Array) -> jax.Array:
  """Forward diffusion q(x_t | x0): sqrt(abar_t) x0 + sqrt(1 - abar_t) noise.

  Args:
    x0, noise: [B, ...] clean sample and standard normal noise.
    t: [B] (or scalar) int timesteps in [0, N).
  Returns:
    x_t [B, ...].
  """
  _check_same_shape(noise, x0, "noise", "x0")
  abar = _per_sample(state.alphas_cumprod[jnp.asarray(t)], x0)
  return (jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise).astype(x0.dtype)


def predict_x0(state: SchedulerState, eps: jax.Array, t: jax.Array, x_t: jax.Array) -> jax.Array:
  """The paper's F(eps) = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t): the clean-sample estimate."""
  _check_same_shape(eps, x_t)
  abar = _per_sample(state.alphas_cumprod[jnp.asarray(t)], x_t)
  return ((x_t - jnp.sqrt(1.0 - abar) * eps) / jnp.sqrt(abar)).astype(x_t.dtype)


def ddpm_variance(state: SchedulerState, t: jax.Array, prev_t: jax.Array) -> jax.Array:
  """Posterior variance of p(x_prev | x_t) (diffusers fixed_small / fixed_large).

  beta'_t = 1 - abar_t / abar_prev; fixed_small: (1 - abar_prev) / (1 - abar_t) * beta'_t clamped to
  >= 1e-20; fixed_large: beta'_t. abar_prev = 1 past t=0.
  """
  abar_t = state.alphas_cumprod[jnp.asarray(t)]
  abar_prev = jnp.where(prev_t >= 0, state.alphas_cumprod[jnp.maximum(prev_t, 0)], 1.0)
  beta_t = 1.0 - abar_t / abar_prev
  if state.variance_type == "fixed_large":
    return beta_t
  return jnp.maximum((1.0 - abar_prev) / (1.0 - abar_t) * beta_t, 1e-20)


def ddpm_step(state: SchedulerState, eps: jax.Array, t: jax.Array, x_t: jax.Array,
              key: jax.Array | None = None, noise: jax.Array | None = None) -> jax.Array:
  """One ancestral step x_t -> x_prev (diffusers DDPMScheduler.step, epsilon, no clipping).

  prev_t = t - N // S (t - 1 for the full chain); abar_prev = 1 when prev_t < 0.
    x0_hat = F(eps);  mu = sqrt(abar_prev) beta'_t / (1 - abar_t) x0_hat
                           + sqrt(1 - beta'_t) (1 - abar_prev) / (1 - abar_t) x_t
    x_prev = mu + [t > 0] sqrt(var_t) noise,  noise = jax.random.normal(key, x_t.shape)

  Args:
    eps: [B, ...] predicted noise; x_t: [B, ...]; t: scalar or [B] int; key: PRNG key.
    noise: [B, ...] standard normal noise to use instead of drawing it from `key`.
  """
  _check_same_shape(eps, x_t)
  t = jnp.asarray(t)
  ratio = state.num_train_timesteps // state.num_inference_steps
  prev_t = t - ratio
  abar_t = state.alphas_cumprod[t]
  abar_prev = jnp.where(prev_t >= 0, state.alphas_cumprod[jnp.maximum(prev_t, 0)], 1.0)
  alpha_t = abar_t / abar_prev
  beta_t = 1.0 - alpha_t
  x0_coef = _per_sample(jnp.sqrt(abar_prev) * beta_t / (1.0 - abar_t), x_t)
  xt_coef = _per_sample(jnp.sqrt(alpha_t) * (1.0 - abar_prev) / (1.0 - abar_t), x_t)
  x0_hat = predict_x0(state, eps, t, x_t)
  mean = x0_coef * x0_hat + xt_coef * x_t
  std = _per_sample(jnp.where(t > 0, jnp.sqrt(ddpm_variance(state, t, prev_t)), 0.0), x_t)
  noise = _step_noise(key, noise, x_t, "ddpm_step")
  return (mean + std * noise).astype(x_t.dtype)


def ddim_variance(state: SchedulerState, t: jax.Array, prev_t: jax.Array) -> jax.Array:
  """sigma_t^2 / eta^2 = (1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)."""
  abar_t = state.alphas_cumprod[jnp.asarray(t)]
  abar_prev = alpha_cumprod_at(state, prev_t)
  return (1.0 - abar_prev) / (1.0 - abar_t) * (1.0 - abar_t / abar_prev)


def ddim_step(state: SchedulerState, eps: jax.Array, t: jax.Array, prev_t: jax.Array,
              x_t: jax.Array, key: jax.Array | None = None, eta: float | None = None,
              noise: jax.Array | None = None) -> jax.Array:
  """One DDIM step x_t -> x_prev (diffusers DDIMScheduler.step, epsilon, no clipping).

    x0_hat = F(eps);  sigma = eta sqrt(ddim_variance(t, prev_t))
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma noise
  with abar_prev = final_alpha_cumprod for prev_t < 0 and noise = jax.random.normal(key, x_t.shape)
  (drawn only when eta > 0).

  Args:
    eps: [B, ...] predicted noise; x_t: [B, ...]; t, prev_t: scalar or [B] int.
    key: PRNG key, required when eta > 0 (unless `noise` is given).
    eta: stochasticity; None uses `state.eta`. A Python float (it decides whether noise is drawn).
    noise: [B, ...] standard normal noise to use instead of drawing it from `key`.
  """
  _check_same_shape(eps, x_t)
  eta = state.eta if eta is None else float(eta)
  if eta < 0:
    raise ConfigError(f"eta must be >= 0, got {eta}")
  prev_t = jnp.asarray(prev_t)
  abar_prev = _per_sample(alpha_cumprod_at(state, prev_t), x_t)
  x0_hat = predict_x0(state, eps, t, x_t)
  if eta == 0:
    return (jnp.sqrt(abar_prev) * x0_hat + jnp.sqrt(1.0 - abar_prev) * eps).astype(x_t.dtype)
  sigma = eta * jnp.sqrt(_per_sample(ddim_variance(state, t, prev_t), x_t))
  direction = jnp.sqrt(1.0 - abar_prev - sigma**2) * eps
  noise = _step_noise(key, noise, x_t, f"ddim_step with eta={eta} > 0")
  return (jnp.sqrt(abar_prev) * x0_hat + direction + sigma * noise).astype(x_t.dtype)


def lcm_boundary_scalings(state: SchedulerState, t: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Consistency-model boundary scalings at integer t (s = timestep_scaling * t, sd = sigma_data):
  c_skip = sd^2 / (s^2 + sd^2), c_out = s / sqrt(s^2 + sd^2)."""
  s = state.timestep_scaling * jnp.asarray(t, jnp.float32)
  sd2 = state.sigma_data**2
  return sd2 / (s**2 + sd2), s / jnp.sqrt(s**2 + sd2)


def lcm_step(state: SchedulerState, eps: jax.Array, t: jax.Array, prev_t: jax.Array,
             x_t: jax.Array, key: jax.Array | None = None,
             noise: jax.Array | None = None) -> jax.Array:
  """One LCM step (diffusers LCMScheduler.step, epsilon): denoised = c_out F(eps) + c_skip x_t; then
  x_prev = sqrt(abar_prev) denoised + sqrt(1 - abar_prev) noise, or `denoised` itself when
  prev_t < 0 (the last step). noise = jax.random.normal(key, x_t.shape) unless `noise` is given.
  """
  _check_same_shape(eps, x_t)
  prev_t = jnp.asarray(prev_t)
  c_skip, c_out = lcm_boundary_scalings(state, t)
  denoised = _per_sample(c_out, x_t) * predict_x0(state, eps, t, x_t) + _per_sample(c_skip, x_t) * x_t
  abar_prev = _per_sample(alpha_cumprod_at(state, prev_t), x_t)
  noise = _step_noise(key, noise, x_t, "lcm_step")
  renoised = jnp.sqrt(abar_prev) * denoised + jnp.sqrt(1.0 - abar_prev) * noise
  is_last = _per_sample(prev_t < 0, x_t) > 0
  return jnp.where(is_last, denoised, renoised).astype(x_t.dtype)


def scheduler_step(state: SchedulerState, eps: jax.Array, t: jax.Array, prev_t: jax.Array,
                   x_t: jax.Array, key: jax.Array | None = None,
                   noise: jax.Array | None = None) -> jax.Array:
  """Dispatches on `state.kind` (static): the step a sampling loop takes. Stochastic steps draw
  their noise from `key`, or use `noise` (`[B, ...]`, e.g. drawn per sample) when given."""
  if state.kind == "ddpm":
    return ddpm_step(state, eps, t, x_t, key, noise=noise)
  if state.kind == "ddim":
    return ddim_step(state, eps, t, prev_t, x_t, key, noise=noise)
  if state.kind == "lcm":
    return lcm_step(state, eps, t, prev_t, x_t, key, noise=noise)
  raise ConfigError(f"unknown scheduler kind {state.kind!r}; expected ddpm, ddim or lcm")
