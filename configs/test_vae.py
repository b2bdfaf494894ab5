"""Tiny stage-1 config for tests (1 layer, width 32, T <= 32, batch 4). `data.dir` must point at a
HumanML3D-layout folder; the tests build one in a tmp dir.

  lead-jax train --config=configs/test_vae.py --workdir=/tmp/t_vae --config.data.dir=DIR
Expected: 2 steps in a few seconds, finite loss near 1 (random init), a checkpoint at step 2.
"""

from configs import common, train_common


def tiny_models(config):
  """Shrinks every model section present to test size (latent width 32)."""
  if "vae" in config:
    config.vae.update(latent_dim=32, ff_size=64, num_layers=1, num_heads=2, dropout=0.1,
                      max_len=64)
  if "denoiser" in config:
    config.denoiser.update(latent_dim=32, ff_size=64, num_layers=1, num_heads=2, max_len=16)
  if "projector" in config:
    config.projector.update(latent_dim=32, num_tokens=4, width=32, ff_size=64, num_layers=1,
                            num_heads=2)
  return config


def tiny_training(config):
  config.data.update(builder="motion_folder", min_len=16, max_len=32, batch_size=4, prefetch=0)
  config.train.update(num_steps=2, log_every=1, checkpoint_every=1, eval_every=0, progress=False)
  return config


def get_config():
  config = common.base_config("humanml3d", "minilm", ("vae",))
  train_common.vae_training(config, num_steps=2, batch_size=4)
  return tiny_training(tiny_models(config))
