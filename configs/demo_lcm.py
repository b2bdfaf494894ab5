"""Embedded demo, stage 2b: MotionLCM consistency distillation of the demo denoiser
(configs/demo_denoiser.py) over the demo VAE, MiniLM text; MotionLCM's recipe (configs/
lcm_humanml3d.py) at demo size: batch 8, a short warm-up, a higher learning rate.

  lead-jax train --config=configs/demo_lcm.py --workdir=demo/workdirs/lcm \
      --config.dependencies.vae_workdir=demo/workdirs/vae \
      --config.dependencies.denoiser_workdir=demo/workdirs/denoiser
  lead-jax sample --workdir demo/workdirs/lcm --scheduler lcm --steps 1 --prompt "a person walks."
Expected: about a minute on 2 CPU cores (2,000 steps); the Huber loss stays near 0.3 (the
teacher's and target's dropout), eval/huber (no dropout) ends near 0.1.
"""

from configs import common
from configs.demo_vae import demo_models, demo_training
from configs.lcm_humanml3d import lcm_training

NUM_STEPS = 2000


def get_config():
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser"))
  lcm_training(config, num_steps=NUM_STEPS, batch_size=8, builder="deepmimic", max_len=64)
  demo_training(demo_models(config), NUM_STEPS, learning_rate=2e-4)
  config.optimizer.warmup_steps = 100
  return config
