"""Latent diffusion: noise schedulers (DDPM, DDIM, LCM), `make_scheduler` (from a config's
`scheduler` section) and the one guided sampler (`sample_latents`, per-motion keys)."""

from lead_jax.diffusion.sampling import guided_eps, is_stochastic, motion_keys, sample_latents
from lead_jax.diffusion.schedulers import (
    SAMPLERS, SchedulerState, add_noise, alpha_cumprod_at, ddim_step, ddim_variance, ddpm_step,
    ddpm_variance, init_noise, lcm_boundary_scalings, lcm_step, lcm_timesteps, make_betas,
    make_ddim, make_ddpm, make_lcm, make_scheduler, predict_x0, sample_timesteps, scheduler_step,
    spaced_timesteps)
