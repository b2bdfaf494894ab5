"""Stage 3: LEAD projector on HumanML3D latents, aligned to CLIP ViT-L/14 text (768); `vae` and
`denoiser` describe the frozen stages. Ablations: `--config.projector.arch=skip|mlp`.

  lead-jax params --config=configs/projector_humanml3d.py
  lead-jax params --config=configs/projector_humanml3d.py --config.projector.arch=mlp
"""

from configs import common


def get_config():
  return common.base_config("humanml3d", "clip", ("vae", "denoiser", "projector"))
