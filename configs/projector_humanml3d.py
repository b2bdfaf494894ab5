"""Stage 3: LEAD projector on HumanML3D latents, aligned to CLIP ViT-L/14 text (768); `vae` and
`denoiser` describe the frozen stages. Ablations: `--config.projector.arch=skip|mlp`.

  lead-jax params --config=configs/projector_humanml3d.py
  lead-jax params --config=configs/projector_humanml3d.py --config.projector.arch=mlp
Training (LEAD paper: AdamW 1e-4, batch 1024, 200 epochs ~ 4,600 steps; VAE and text frozen):
  lead-jax train --config=configs/projector_humanml3d.py --workdir=runs/proj_h3d \
      --config.data.dir=datasets/HumanML3D --config.dependencies.vae_workdir=runs/vae_h3d \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
Ablations: --config.loss.w_kl=0 (noKL), --config.loss.w_rec=0 (noREC), --config.loss.w_align=0.
Expected: eval/align (1 - cos) falls well below 1 and eval/rec towards 0.
"""

from configs import common, train_common


def get_config():
  config = common.base_config("humanml3d", "clip", ("vae", "denoiser", "projector"))
  return train_common.projector_training(config, num_steps=4_600, batch_size=1024)
