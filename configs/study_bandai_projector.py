"""Bandai study, step `projector`: the LEAD projector over the study VAE latents, aligned to MiniLM
caption embeddings (384). Ablations (Table 6): `--config.projector.arch=skip|mlp`,
`--config.loss.w_kl=0` (noKL), `--config.loss.w_rec=0` (noREC), `--config.loss.w_align=0`.

  lead-jax train --config=configs/study_bandai_projector.py --workdir=OUT/workdirs/projector \
      --config.data.dir=OUT/data --config.dependencies.vae_workdir=OUT/workdirs/vae \
      --config.dependencies.denoiser_workdir=OUT/workdirs/denoiser
Sizes (full): 8 tokens of width 128, 3 layers per direction, 4 heads, ff 512; batch 32; 3,000
steps at lr 5e-4, on the latent cache: 1,637,776 parameters, 0.15 s/step, 9 min.
"""

from configs import common, study_bandai, train_common


def get_config(scale: str = "full"):
  config = common.base_config("humanml3d", "minilm", ("vae", "denoiser", "projector"))
  train_common.projector_training(config, num_steps=1, batch_size=1)
  study_bandai.study_models(config, scale)
  return study_bandai.study_training(config, "projector", scale)
