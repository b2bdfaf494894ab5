"""The latent cache (`lead_jax.train.latents`): cached posteriors give the encoder's latents, banks
are stored, keyed and reloaded, streams resume exactly, and evaluation is unchanged by the cache."""

import os

import jax
import numpy as np
import pytest
from gen_stages import random_params

from lead_jax import checkpoints
from lead_jax import workdir as stage_io
from lead_jax.config_loader import load_config
from lead_jax.diffusion import make_scheduler
from lead_jax.data.sampling import Plan, gather_batch
from lead_jax.errors import ConfigError
from lead_jax.models import abstract_params, build_denoiser, build_vae
from lead_jax.train import denoiser, latents
from lead_jax.train import mesh as mesh_lib
from lead_jax.train.state import TrainState

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(name, *overrides):
  return load_config(os.path.join(REPO, "configs", f"{name}.py"), list(overrides))


def write_vae(workdir, data_dir, seed):
  """A VAE workdir holding random parameters (tiny configs/test_vae.py), as the trainer saves."""
  config = _config("test_vae", f"--config.data.dir={data_dir}")
  params = random_params(abstract_params("vae", build_vae(config.vae)), seed)
  with checkpoints.Checkpointer(workdir) as ckpt:
    ckpt.save(1, {"params": params}, meta={}, config=config.to_dict())
  return workdir


@pytest.fixture(scope="module")
def vae_dirs(tiny_dataset, tmp_path_factory):
  root = tmp_path_factory.mktemp("vaes")
  return [write_vae(root / f"vae{i}", tiny_dataset, seed=i) for i in range(2)]


def cache_config(data_dir, vae_dir, crops, *more):
  return _config("test_denoiser", f"--config.data.dir={data_dir}",
                 f"--config.dependencies.vae_workdir={vae_dir}", "--config.train.eval_every=1",
                 f"--config.latent_cache.crops_per_clip={crops}", *more)


def test_cached_posterior_samples_are_the_encoders_latents(vae_dirs, tiny_dataset):
  vae = stage_io.load_stage(vae_dirs[0], "vae")
  rng = np.random.default_rng(0)
  motion = rng.normal(size=(3, 32, 263)).astype(np.float32)
  mask = np.arange(32)[None] < np.array([[32], [20], [16]])
  batch = {"motion": motion * mask[..., None], "mask": mask}
  _, mu, logvar = vae.module.apply({"params": vae.params}, batch["motion"], mask, None,
                                   method=vae.module.encode)
  cached = {"latent_mu": mu, "latent_logvar": logvar}
  for latent in ("sample", "mean"):
    key = jax.random.key(5)
    np.testing.assert_allclose(
        latents.sample_latents_from_batch(cached, key, latent),
        latents.encode_latents(vae.module, vae.params, batch, key, latent), rtol=1e-6, atol=1e-6)
  assert np.std(np.asarray(latents.batch_latents(vae.module, None, cached, jax.random.key(1),
                                                 "sample")) - np.asarray(mu)) > 0.1


def test_banks_are_stored_keyed_reloaded_and_resume_exactly(vae_dirs, tiny_dataset, text_encoder,
                                                           tmp_path, monkeypatch):
  encoded = []
  real_call = latents.PosteriorEncoder.__call__
  def counting(self, table, plan, max_len):
    encoded.append(len(plan))
    return real_call(self, table, plan, max_len)
  monkeypatch.setattr(latents.PosteriorEncoder, "__call__", counting)

  config = cache_config(tiny_dataset, vae_dirs[0], 3, "--config.latent_cache.refresh_epochs=2")
  vae = stage_io.load_dependency(config, "vae")
  train, evaluation = latents.latent_source(config, str(tmp_path), vae, text_encoder)
  assert train.steps_per_epoch == 1  # 4 clips, batch 4: an epoch per step
  batches = [next(train) for _ in range(5)]  # epochs 0..4: crop generations 0, 0, 1, 1, 2
  assert encoded == [4, 12, 12, 12]  # the eval crops, then 3 crops x 4 clips per generation
  for b in batches:
    assert b["latent_mu"].shape == b["latent_logvar"].shape == (4, 1, 32)
    assert b["text_emb"].shape == (4, 384) and "motion" not in b
  files = sorted(p.name for p in (tmp_path / "latent_cache").iterdir())
  assert len(files) == 2 and files[0].startswith("eval-test-s0of1-")
  assert files[1].startswith("train-s0of1-") and files[1].endswith("-g2.npz")  # older ones gone

  # The stored posteriors are the VAE's of the stored crops.
  with np.load(tmp_path / "latent_cache" / files[1]) as f:
    plan = Plan(f["clip"], f["caption"], f["start"], f["length"])
    mu, logvar = f["mu"], f["logvar"]
  table = train.table
  crops = gather_batch(table, plan, 32)
  _, mu_ref, logvar_ref = vae.module.apply({"params": vae.params}, crops["motion"], crops["mask"],
                                           None, method=vae.module.encode)
  np.testing.assert_allclose(mu, mu_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logvar, logvar_ref, rtol=1e-5, atol=1e-5)
  assert len(np.unique(plan.start + 1000 * plan.length)) > 4  # several distinct crops per clip

  # A new run resumes from the stored banks without encoding.
  encoded.clear()
  again, _ = latents.latent_source(config, str(tmp_path), vae, text_encoder)
  again.restore({"epoch": 4, "step": 0})
  np.testing.assert_array_equal(next(again)["latent_mu"], batches[4]["latent_mu"])
  again.restore({"epoch": 1, "step": 0})  # generation 0 again: recomputed, the same numbers
  np.testing.assert_allclose(next(again)["latent_mu"], batches[1]["latent_mu"], atol=1e-6)
  assert encoded == [12]
  # Another VAE (same architecture, other weights) never reuses these banks.
  other = stage_io.load_dependency(cache_config(tiny_dataset, vae_dirs[1], 3), "vae")
  assert latents.params_fingerprint(other.params) != latents.params_fingerprint(vae.params)
  encoded.clear()
  latents.latent_source(config, str(tmp_path), other, text_encoder)
  assert encoded == [4]  # its eval bank is new (its train banks are made when first read)


def test_evaluation_is_the_same_with_and_without_the_cache(vae_dirs, tiny_dataset, text_encoder,
                                                           tmp_path):
  results = []
  for crops in (0, 2):
    config = cache_config(tiny_dataset, vae_dirs[0], crops)
    vae = stage_io.load_dependency(config, "vae")
    _, evaluation = latents.latent_source(config, str(tmp_path), vae, text_encoder)
    assert ("latent_mu" in next(iter(evaluation))) == bool(crops)
    mesh = mesh_lib.make_mesh(config)
    model = build_denoiser(config.denoiser)
    params = random_params(abstract_params("denoiser", model), 3)
    frozen = {"null_text_emb": np.zeros(384, np.float32)}
    if not crops:
      frozen["vae"] = vae.params
    eval_fn = denoiser.make_eval_fn(model, vae.module, make_scheduler(config.scheduler, "ddpm"), config,
                                    evaluation, mesh_lib.replicate(frozen, mesh), mesh)
    state = TrainState(step=0, params=params, opt_state=None, ema_params=None, rng=None)
    results.append(eval_fn(state)["eps_mse"])
  assert 0.1 < results[0] < 10
  np.testing.assert_allclose(results[1], results[0], rtol=1e-5)


def test_cache_config_errors(vae_dirs, tiny_dataset, text_encoder, tmp_path):
  config = cache_config(tiny_dataset, vae_dirs[0], 2, "--config.loss.vae_dropout=True")
  vae = stage_io.load_dependency(config, "vae")
  with pytest.raises(ConfigError, match="vae_dropout=True needs a fresh VAE pass"):
    latents.latent_source(config, str(tmp_path), vae, text_encoder)
  with pytest.raises(ConfigError, match="crops_per_clip must be >= 0"):
    latents.uses_cache(cache_config(tiny_dataset, vae_dirs[0], -1))
  config = cache_config(tiny_dataset, vae_dirs[0], 2)
  del config.latent_cache["refresh_epochs"]
  with pytest.raises(ConfigError, match="latent_cache.refresh_epochs"):
    latents.uses_cache(config)
