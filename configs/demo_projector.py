"""Embedded demo, stage 3: a small LEAD projector over the demo VAE latents, MiniLM text.

  lead-jax train --config=configs/demo_projector.py --workdir=demo/workdirs/projector \
      --config.dependencies.vae_workdir=demo/workdirs/vae
Expected: about a minute on 2 CPU cores (5,000 steps); align (1 - cos) falls from ~0.93 to ~0.2.
"""

from configs import common, train_common
from configs.demo_vae import demo_models, demo_training


def get_config():
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser", "projector"))
  train_common.projector_training(config, num_steps=5000, batch_size=8, builder="deepmimic",
                                  max_len=64)
  return demo_training(demo_models(config), 5000, learning_rate=1e-3)
