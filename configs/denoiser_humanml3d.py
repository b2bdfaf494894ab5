"""Stage 2: MLD latent denoiser on HumanML3D with CLIP ViT-L/14 text (768); the frozen VAE's
architecture is kept in `vae` so the stage can rebuild it.

  lead-jax params --config=configs/denoiser_humanml3d.py
  lead-jax params --config=configs/denoiser_humanml3d.py --config.text_encoder.kind=minilm \
      --config.text_encoder.dim=384 --config.denoiser.text_dim=384
"""

from configs import common


def get_config():
  return common.base_config("humanml3d", "clip", ("vae", "denoiser"))
