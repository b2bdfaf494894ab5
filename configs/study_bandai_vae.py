"""Bandai study, step `vae`: the MLD motion VAE on the study's train split (captions unused).

  lead-jax train --config=configs/study_bandai_vae.py --workdir=OUT/workdirs/vae \
      --config.data.dir=OUT/data                 # (:quick for the tiny variant)
Sizes (full): latent [1, 128], 5 layers, 4 heads, ff 256 (MLD: 256, 9 layers, ff 1024); batch 32
crops of <= 120 frames; 1,200 steps at lr 5e-4, dropout 0 (see `study_bandai.SIZES`): 1,984,391
parameters, 1.32 s/step (1.0 s on a quiet machine), 27 min, the study's most expensive stage.
"""

from configs import common, study_bandai, train_common


def get_config(scale: str = "full"):
  config = common.base_config("humanml3d", "minilm", ("vae",))
  train_common.vae_training(config, num_steps=1, batch_size=1)
  study_bandai.study_models(config, scale)
  return study_bandai.study_training(config, "vae", scale)
