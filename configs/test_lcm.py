"""Tiny stage-2b (consistency distillation) config for tests (see configs/test_vae.py);
`dependencies.vae_workdir` and `dependencies.denoiser_workdir` must name a tiny VAE and a tiny
denoiser (configs/test_denoiser.py) workdir.

  lead-jax train --config=configs/test_lcm.py --workdir=/tmp/t_lcm --config.data.dir=DIR \
      --config.dependencies.vae_workdir=/tmp/t_vae --config.dependencies.denoiser_workdir=/tmp/t_den
Expected: 2 steps in a few seconds, a finite positive Huber loss.
"""

from configs import common
from configs.lcm_humanml3d import lcm_training
from configs.test_vae import tiny_models, tiny_training


def get_config():
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser"))
  lcm_training(config, num_steps=2, batch_size=4)
  config.optimizer.warmup_steps = 0  # the first update moves the student
  config.denoiser.cond_proj_dim = 16
  return tiny_training(tiny_models(config))
