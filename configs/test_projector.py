"""Tiny stage-3 config for tests (see configs/test_vae.py); `dependencies.vae_workdir` must name a
trained tiny VAE workdir.

  lead-jax train --config=configs/test_projector.py --workdir=/tmp/t_proj --config.data.dir=DIR \
      --config.dependencies.vae_workdir=/tmp/t_vae
Expected: 2 steps in a few seconds, finite loss (rec + align + kl terms reported).
"""

from configs import common, train_common
from configs.test_vae import tiny_models, tiny_training


def get_config():
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser", "projector"))
  train_common.projector_training(config, num_steps=2, batch_size=4)
  return tiny_training(tiny_models(config))
