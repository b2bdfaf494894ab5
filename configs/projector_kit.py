"""Stage 3: LEAD projector on KIT-ML latents, aligned to CLIP ViT-L/14 text.

  lead-jax train --config=configs/projector_kit.py --workdir=runs/proj_kit \
      --config.data.dir=datasets/KIT-ML --config.dependencies.vae_workdir=runs/vae_kit \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
Expected: eval/align (1 - cos) falls well below 1 and eval/rec towards 0.
"""

from configs import common, train_common


def get_config():
  config = common.base_config("kit", "clip", ("vae", "denoiser", "projector"))
  return train_common.projector_training(config, num_steps=1_000, batch_size=1024, builder="kit_ml")
