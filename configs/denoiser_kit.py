"""Stage 2: MLD latent denoiser on KIT-ML (251 features, 21 joints) with CLIP ViT-L/14 text.

  lead-jax train --config=configs/denoiser_kit.py --workdir=runs/den_kit \
      --config.data.dir=datasets/KIT-ML --config.dependencies.vae_workdir=runs/vae_kit \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
Expected: eps MSE ~1 at the start, well below 0.5 after a few epochs.
"""

from configs import common, train_common


def get_config():
  config = common.base_config("kit", "clip", ("vae", "denoiser"))
  return train_common.denoiser_training(config, num_steps=250_000, batch_size=64, builder="kit_ml")
