"""Bandai study, step `lcm`: MotionLCM consistency distillation (configs/lcm_humanml3d.py's recipe)
of the study denoiser (the teacher) over the study VAE, MiniLM text (384).

  lead-jax train --config=configs/study_bandai_lcm.py --workdir=OUT/workdirs/lcm \
      --config.data.dir=OUT/data --config.dependencies.vae_workdir=OUT/workdirs/vae \
      --config.dependencies.denoiser_workdir=OUT/workdirs/denoiser
Sizes: the denoiser's (student = teacher + the guidance embedding, cond_proj_dim 256; 16 quick);
batch 32; 1,500 steps at lr 2e-4 (cosine after 100 warm-up steps; MotionLCM: 1k of 96k). The
latents come from the latent cache (`study_bandai.SIZES[scale]['crops_per_clip']`).
"""

from configs import common, study_bandai
from configs.lcm_humanml3d import lcm_training


def get_config(scale: str = "full"):
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser"))
  lcm_training(config, num_steps=1, batch_size=1)
  study_bandai.study_models(config, scale)
  study_bandai.study_training(config, "lcm", scale)
  config.denoiser.cond_proj_dim = study_bandai.SIZES[scale]["cond_proj_dim"]
  config.optimizer.warmup_steps = 0 if scale == "quick" else 100
  return config
