"""Stage 2b: MotionLCM consistency distillation of the KIT-ML denoiser (251 features, 21 joints),
CLIP ViT-L/14 text; MotionLCM V1's HumanML3D recipe (configs/lcm_humanml3d.py) unchanged (it
published no KIT-ML configuration).

  lead-jax train --config=configs/lcm_kit.py --workdir=runs/lcm_kit \
      --config.data.dir=datasets/KIT-ML --config.dependencies.vae_workdir=runs/vae_kit \
      --config.dependencies.denoiser_workdir=runs/den_kit \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
Expected: as configs/lcm_humanml3d.py (the loss starts low; watch eval/huber and eval/x0_mse).
"""

from configs import common
from configs.lcm_humanml3d import lcm_training


def get_config():
  config = common.base_config("kit", "clip", ("vae", "denoiser"))
  return lcm_training(config, num_steps=96_000, batch_size=256, builder="kit_ml")
