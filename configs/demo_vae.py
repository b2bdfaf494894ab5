"""Embedded demo, stage 1: a small VAE on the DeepMimic clips shipped with pybullet (imported on
first use into ~/.cache/lead_jax/deepmimic, or `data.dir`), MiniLM captions (unused by this stage).

  lead-jax train --config=configs/demo_vae.py --workdir=demo/workdirs/vae
Expected: 3-4 minutes on 2 CPU cores (3,750 steps); loss falls from ~0.9 to ~0.25.
"""

from configs import common, train_common


def demo_models(config):
  """Small widths shared by the three demo stages (latent 64, 3 layers)."""
  if "vae" in config:
    config.vae.update(latent_dim=64, ff_size=128, num_layers=3, num_heads=4, dropout=0.1,
                      max_len=100)
  if "denoiser" in config:
    config.denoiser.update(latent_dim=64, ff_size=128, num_layers=3, num_heads=4, dropout=0.1,
                           max_len=16)
  if "projector" in config:
    config.projector.update(latent_dim=64, num_tokens=4, width=64, ff_size=128, num_layers=3,
                            num_heads=4, dropout=0.1)
  return config


def demo_training(config, num_steps: int, learning_rate: float = 1e-4):
  """Data and schedule of the demo stages: every one of the 15 DeepMimic clips (split 'all', as
  `lead-jax demo` trains; the 'train' split has 7 clips, fewer than a batch of 8)."""
  config.data.update(builder="deepmimic", dir="", split="all", min_len=40, max_len=64,
                     batch_size=8, eval_split="test", text_cache_dir=None)
  config.optimizer.learning_rate = learning_rate
  config.optimizer.grad_clip_norm = 1.0
  config.train.update(num_steps=num_steps, log_every=50, checkpoint_every=num_steps,
                      eval_every=num_steps, eval_batches=2)
  return config


def get_config():
  config = common.base_config("humanml3d", "minilm", ("vae",))
  train_common.vae_training(config, num_steps=3750, batch_size=8, builder="deepmimic", max_len=64)
  return demo_training(demo_models(config), 3750, learning_rate=1e-3)
