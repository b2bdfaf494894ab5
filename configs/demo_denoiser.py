"""Embedded demo, stage 2: a small denoiser over the demo VAE (configs/demo_vae.py), MiniLM text.

  lead-jax train --config=configs/demo_denoiser.py --workdir=demo/workdirs/denoiser \
      --config.dependencies.vae_workdir=demo/workdirs/vae
Expected: about 1.5 minutes on 2 CPU cores (15,000 steps); eps MSE falls from ~1.8 to ~0.36.
"""

from configs import common, train_common
from configs.demo_vae import demo_models, demo_training


def get_config():
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser"))
  train_common.denoiser_training(config, num_steps=15000, batch_size=8, builder="deepmimic",
                                 max_len=64)
  return demo_training(demo_models(config), 15000, learning_rate=1e-3)
