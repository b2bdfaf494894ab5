"""Stage 1: MLD motion VAE on KIT-ML (251 features, 21 joints).

  lead-jax params --config=configs/vae_kit.py
Training (as HumanML3D; KIT-ML has 251 features, 21 joints, 12.5 fps):
  lead-jax train --config=configs/vae_kit.py --workdir=runs/vae_kit --config.data.dir=datasets/KIT-ML
Expected: eval/rec_loss below ~0.03 (KIT is smaller and noisier than HumanML3D).
"""

from configs import common, train_common


def get_config():
  config = common.base_config("kit", "clip", ("vae",))
  return train_common.vae_training(config, num_steps=100_000, batch_size=128, builder="kit_ml")
