"""Flax Linen models: MLD motion VAE, MLD latent denoiser, LEAD projector, shared layers."""

from lead_jax.models.denoiser import LatentDenoiser
from lead_jax.models.factory import (abstract_params, build_denoiser, build_models, build_projector,
                                     build_vae, init_params)
from lead_jax.models.layers import count_params
from lead_jax.models.motion_vae import MotionVAE
from lead_jax.models.projector import Projector, gaussian_batch_kl, projector_loss
from lead_jax.models import precision  # noqa: E402  (module: cast_matmul_weights, compiler_options)

__all__ = ["LatentDenoiser", "MotionVAE", "Projector", "abstract_params", "build_denoiser",
           "build_models", "build_projector", "build_vae", "count_params", "gaussian_batch_kl",
           "init_params", "precision", "projector_loss"]
