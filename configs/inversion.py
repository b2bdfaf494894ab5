r"""Motion textual inversion (paper Sec. 4.2; lead_jax/train/inversion.py): one token's embedding,
all else frozen. Fields are `lead_jax.train.inversion.InversionSettings`; `lead-jax invert` flags
override them.

  lead-jax invert --workdir runs/projector --motion dance.npy --token "<dance-x>" --init-word walk \
      --space lead --out dance-x.npz
  lead-jax invert ... --config configs/inversion.py --steps 50 --lr 5e-3
"""

import ml_collections

from configs import train_common
from lead_jax.train.inversion import TEMPLATES


def get_config() -> ml_collections.ConfigDict:
  optimizer = train_common.optimizer_config(1e-2)  # Adam: AdamW without weight decay
  optimizer.weight_decay = 0.0
  return ml_collections.ConfigDict({
      "space": "lead",          # lead | mld | feat: projector space, eps MSE, decoded features
      "steps": 20,              # Adam steps (paper)
      "batch_size": 4,          # segments per step (paper)
      "segment_frames": 64,     # frames per segment (20 fps); whole motion when shorter
      "t_min": 0,               # timesteps t ~ U{t_min .. t_max - 1}
      "t_max": 1000,
      "latent": "mean",         # z0 = VAE posterior mean ('mean') or a sample ('sample')
      "templates": list(TEMPLATES),  # prompts; <*> is replaced by the token
      "seed": 0,
      "optimizer": optimizer,   # lr 1e-2: not given by the paper
  })
