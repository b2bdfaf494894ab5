"""Tiny stage-2 config for tests (see configs/test_vae.py); `dependencies.vae_workdir` must name a
trained tiny VAE workdir.

  lead-jax train --config=configs/test_denoiser.py --workdir=/tmp/t_den --config.data.dir=DIR \
      --config.dependencies.vae_workdir=/tmp/t_vae
Expected: 2 steps in a few seconds, finite epsilon MSE near 1.
"""

from configs import common, train_common
from configs.test_vae import tiny_models, tiny_training


def get_config():
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser"))
  train_common.denoiser_training(config, num_steps=2, batch_size=4)
  return tiny_training(tiny_models(config))
