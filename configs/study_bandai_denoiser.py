"""Bandai study, step `denoiser`: the MLD latent denoiser over the study VAE, MiniLM text (384).

  lead-jax train --config=configs/study_bandai_denoiser.py --workdir=OUT/workdirs/denoiser \
      --config.data.dir=OUT/data --config.dependencies.vae_workdir=OUT/workdirs/vae
Sizes (full): width 128 (the VAE latent), 5 layers, 4 heads, ff 512; batch 32; 8,000 steps at
lr 5e-4, CFG caption dropout 0.1, on the latent cache (8 crops per clip): 1,174,528 parameters,
0.034 s/step, 7 min with the cache's encoding and the evaluations.
"""

from configs import common, study_bandai, train_common


def get_config(scale: str = "full"):
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser"))
  train_common.denoiser_training(config, num_steps=1, batch_size=1)
  study_bandai.study_models(config, scale)
  return study_bandai.study_training(config, "denoiser", scale)
