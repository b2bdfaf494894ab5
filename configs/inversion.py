r"""Motion textual inversion (paper Sec. 4.2; lead_jax/inversion.py): one token's embedding, all else
frozen. Fields match `lead_jax.inversion.InversionSettings`; `lead-jax invert` flags override them.

  lead-jax invert --workdir runs/projector --motion dance.npy --token "<dance-x>" --init-word walk \
      --space lead --out dance-x.npz
  lead-jax invert ... --config configs/inversion.py --steps 50 --lr 5e-3
"""

import ml_collections

from lead_jax.inversion import TEMPLATES


def get_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "space": "lead",          # lead | mld | feat: projector space, eps MSE, decoded features
      "steps": 20,              # Adam steps (paper)
      "batch_size": 4,          # segments per step (paper)
      "learning_rate": 1e-2,    # Adam; not given by the paper
      "segment_frames": 64,     # frames per segment (20 fps); whole motion when shorter
      "t_min": 0,               # timesteps t ~ U{t_min .. t_max - 1}
      "t_max": 1000,
      "latent": "mean",         # z0 = VAE posterior mean ('mean') or a sample ('sample')
      "templates": list(TEMPLATES),  # prompts; <*> is replaced by the token
      "seed": 0,
  })
