"""Stage 1: MLD motion VAE on HumanML3D (263 features, 22 joints).

  lead-jax params --config=configs/vae_humanml3d.py
Training (MLD recipe, reference §2.6: AdamW 1e-4, batch 128; 300k steps ~ 1,600 epochs, within
the "1500~3000 epochs" MLD's authors advise):
  lead-jax train --config=configs/vae_humanml3d.py --workdir=runs/vae_h3d \
      --config.data.dir=datasets/HumanML3D
Expected: eval/rec_loss falls below ~0.02 and eval/mpjpe to a few centimetres; MLD reports a
reconstruction FID of ~0.25 for its VAE.
"""

from configs import common, train_common


def get_config():
  config = common.base_config("humanml3d", "clip", ("vae",))
  return train_common.vae_training(config, num_steps=300_000, batch_size=128)
