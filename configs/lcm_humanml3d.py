"""Stage 2b: MotionLCM consistency distillation (reference §6.1) of the HumanML3D denoiser, CLIP
ViT-L/14 text (768; MotionLCM's own teacher used sentence-T5, ours is the denoiser trained here or
imported from MLD); the student is the teacher's architecture plus the guidance embedding
(`denoiser.cond_proj_dim` 256).

  lead-jax train --config=configs/lcm_humanml3d.py --workdir=runs/lcm_h3d \
      --config.data.dir=datasets/HumanML3D --config.dependencies.vae_workdir=runs/vae_h3d \
      --config.dependencies.denoiser_workdir=runs/den_h3d \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
  lead-jax sample --workdir runs/lcm_h3d --steps 1 --prompt "a person walks." --out gen
  lead-jax sample --workdir runs/projector_h3d --denoiser-workdir runs/lcm_h3d --scheduler lcm \
      --steps 2 --prompt "a person walks." --out g_lead                       # LEAD-MotionLCM
Recipe (MotionLCM V1 configs/motionlcm_t2m.yaml, train_motionlcm.py): teacher DDIM over N=50 steps
(k=20), w ~ U[5, 15], Huber c=0.001, target = EMA mu 0.95, AdamW 2e-4 wd 0, cosine decay after 1k
warm-up steps, grad clip 1.0, batch 256, 96k iterations; VAE and text encoder frozen.
Expected: the student starts as the teacher (zero cond_proj), so the loss starts low and moves
little: it is dominated by the dropout of the teacher and target networks (MotionLCM's choice,
`lcm.*_dropout`); watch `eval/huber` and `eval/x0_mse` (no dropout), and FID at 1-4 steps.
"""

import ml_collections

from configs import common, train_common


def lcm_training(config: ml_collections.ConfigDict, **kwargs) -> ml_collections.ConfigDict:
  """Adds the distillation fields (MotionLCM V1's recipe) to a config with `vae` and `denoiser`
  sections; `kwargs` go to `train_common.denoiser_training` (num_steps, batch_size, ...)."""
  train_common.denoiser_training(config, learning_rate=2e-4, **kwargs)
  config.denoiser.cond_proj_dim = 256          # the student's guidance embedding
  config.loss = ml_collections.ConfigDict({
      "latent": "sample", "vae_dropout": False, "huber_c": 0.001})
  config.lcm = ml_collections.ConfigDict({
      "num_ddim_timesteps": 50, "w_min": 5.0, "w_max": 15.0,
      # MotionLCM V1 never puts its teacher or target network in eval mode: both drop out.
      "teacher_dropout": True, "target_dropout": True})
  config.optimizer.update(weight_decay=0.0, schedule="cosine", warmup_steps=1000,
                          grad_clip_norm=1.0)
  config.train.ema_decay = 0.95                 # the EMA params are the target network
  config.train.best_metric = "eval/x0_mse"
  return config


def get_config():
  config = common.base_config("humanml3d", "clip", ("vae", "denoiser"))
  return lcm_training(config, num_steps=96_000, batch_size=256)
