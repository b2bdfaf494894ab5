"""Stage 1: MLD motion VAE on HumanML3D (263 features, 22 joints).

  lead-jax params --config=configs/vae_humanml3d.py
"""

from configs import common


def get_config():
  return common.base_config("humanml3d", "clip", ("vae",))
