"""Stage 2: MLD latent denoiser on HumanML3D with CLIP ViT-L/14 text (768); the frozen VAE's
architecture is kept in `vae` so the stage can rebuild it.

  lead-jax params --config=configs/denoiser_humanml3d.py
  lead-jax params --config=configs/denoiser_humanml3d.py --config.text_encoder.kind=minilm \
      --config.text_encoder.dim=384 --config.denoiser.text_dim=384
Training (MLD, reference §3.3: AdamW 1e-4, batch 64, 2000 epochs ~ 730k steps, CFG dropout 0.1):
  lead-jax train --config=configs/denoiser_humanml3d.py --workdir=runs/den_h3d \
      --config.data.dir=datasets/HumanML3D --config.dependencies.vae_workdir=runs/vae_h3d \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
Expected: eps MSE ~1 at the start, well below 0.5 after a few epochs; MLD reports FID ~0.47.
"""

from configs import common, train_common


def get_config():
  config = common.base_config("humanml3d", "clip", ("vae", "denoiser"))
  return train_common.denoiser_training(config, num_steps=730_000, batch_size=64)
