"""Stage 1: MLD motion VAE on KIT-ML (251 features, 21 joints).

  lead-jax params --config=configs/vae_kit.py
"""

from configs import common


def get_config():
  return common.base_config("kit", "clip", ("vae",))
