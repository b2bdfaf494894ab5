"""One step of each stage on tiny configs over 4 real HumanML3D clips; dependency errors; the same
loss on 2 fake CPU devices as on one."""

import math
import os
import subprocess
import sys
import textwrap
import types

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from lead_jax.config_loader import load_config
from lead_jax.errors import ConfigError, MissingFileError, WeightsError
from lead_jax.train import denoiser, projector, train_stage, vae
from lead_jax.train.metric_writers import read_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(name, data_dir, *overrides):
  return load_config(os.path.join(REPO, "configs", f"{name}.py"),
                     [f"--config.data.dir={data_dir}", "--config.train.num_steps=1",
                      *overrides])


@pytest.fixture(scope="module")
def vae_workdir(tiny_dataset, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("vae")
  # `train_stage` infers the stage of configs/test_vae.py: its last model section, the VAE.
  state = train_stage(_config("test_vae", tiny_dataset, "--config.train.eval_every=1"),
                      str(workdir))
  assert int(state.step) == 1
  return workdir


def test_smooth_l1_and_kl_match_torch():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(2, 5, 7)) * 2, rng.normal(size=(2, 5, 7))
  ref = torch.nn.functional.smooth_l1_loss(torch.tensor(x), torch.tensor(y), beta=1.0)
  np.testing.assert_allclose(jnp.mean(vae.smooth_l1(jnp.asarray(x), jnp.asarray(y))), ref,
                             rtol=1e-5)
  mu, logvar = rng.normal(size=(3, 1, 8)), rng.normal(size=(3, 1, 8))
  q = torch.distributions.Normal(torch.tensor(mu), torch.exp(0.5 * torch.tensor(logvar)))
  p = torch.distributions.Normal(torch.zeros(3, 1, 8, dtype=torch.float64), 1.0)
  ref = torch.distributions.kl_divergence(q, p).mean()
  np.testing.assert_allclose(vae.gaussian_kl(jnp.asarray(mu), jnp.asarray(logvar)), ref, rtol=1e-5)


def test_vae_one_step(vae_workdir):
  rows = read_jsonl(vae_workdir / "metrics.jsonl")
  train = [r for r in rows if "loss" in r][0]
  assert train["step"] == 1 and math.isfinite(train["loss"])
  np.testing.assert_allclose(
      train["loss"], train["rec_feature"] + train["rec_joints"] + 1e-4 * train["kl"], rtol=1e-5)
  evals = [r for r in rows if "eval/rec_loss" in r][0]
  assert 0 < evals["eval/mpjpe"] < 10 and evals["eval/rec_loss"] > 0
  assert sorted(os.listdir(vae_workdir / "checkpoints")) == ["1"]


def test_denoiser_one_step(vae_workdir, tiny_dataset, text_encoder, tmp_path):
  config = _config("test_denoiser", tiny_dataset,
                   f"--config.dependencies.vae_workdir={vae_workdir}")
  state = denoiser.train_and_evaluate(config, str(tmp_path), text_encoder=text_encoder)
  row = read_jsonl(tmp_path / "metrics.jsonl")[0]
  assert int(state.step) == 1 and row["loss"] == row["eps_mse"]
  assert 0.2 < row["eps_mse"] < 5.0  # a random denoiser predicts eps ~ N(0, 1) badly, not wildly
  assert row["grad_norm"] > 0


def test_projector_one_step_and_ablation(vae_workdir, tiny_dataset, text_encoder, tmp_path):
  config = _config("test_projector", tiny_dataset,
                   f"--config.dependencies.vae_workdir={vae_workdir}", "--config.loss.w_kl=0")
  projector.train_and_evaluate(config, str(tmp_path), text_encoder=text_encoder)
  row = read_jsonl(tmp_path / "metrics.jsonl")[0]
  np.testing.assert_allclose(row["loss"], 4.7036 * row["rec"] + 2.1591 * row["align"], rtol=1e-5)
  assert row["kl"] > 0  # still reported, not trained on (noKL ablation)


def test_missing_or_mismatched_dependency(vae_workdir, tiny_dataset, text_encoder, tmp_path):
  config = _config("test_denoiser", tiny_dataset,
                   f"--config.dependencies.vae_workdir={tmp_path / 'no_vae'}")
  with pytest.raises(MissingFileError, match="no_vae"):
    denoiser.train_and_evaluate(config, str(tmp_path / "a"), text_encoder=text_encoder)
  config = _config("test_projector", tiny_dataset,
                   f"--config.dependencies.vae_workdir={vae_workdir}",
                   "--config.vae.ff_size=48")  # not the architecture that was trained
  with pytest.raises(WeightsError, match=r"checkpoints/1/params.*shape mismatch"):
    projector.train_and_evaluate(config, str(tmp_path / "b"), text_encoder=text_encoder)


def test_two_devices_give_the_same_loss(tiny_dataset):
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {REPO!r})
      import jax, numpy as np
      from jax.sharding import Mesh
      from lead_jax.config_loader import load_config
      from lead_jax.models import build_vae, init_params
      from lead_jax.train import stage, vae
      from lead_jax.train.mesh import to_global_batch
      from lead_jax.train.step import make_train_program
      assert jax.device_count() == 2
      config = load_config({os.path.join(REPO, 'configs', 'test_vae.py')!r},
                           ["--config.data.dir={tiny_dataset}"])
      model = build_vae(config.vae)
      stream, _ = stage.make_streams(config, stage.CaptionsUnused(), with_eval=False)
      batch = next(stream)
      mean, std = stage.dataset_stats(config)
      frozen = {{"mean": mean, "std": std}}
      losses = []
      for devices in (jax.devices()[:1], jax.devices()):
        mesh = Mesh(np.array(devices), ("data",))
        prog = make_train_program(config, mesh, lambda k: init_params("vae", model, k),
                                  vae.make_loss_fn(model, config))
        state = prog.init(jax.random.key(0))
        g = to_global_batch(batch, mesh)
        assert len(g["motion"].sharding.device_set) == len(devices)
        for i in range(2):
          state, m = prog.step(state, g, frozen, jax.random.key(i))
          losses.append(float(m["loss"]))
      print("LOSSES", losses)
      np.testing.assert_allclose(losses[:2], losses[2:], rtol=1e-5, atol=1e-6)
  """)
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                        timeout=500)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert "LOSSES" in proc.stdout


def test_train_stage_rejects_an_unknown_stage(tiny_dataset, tmp_path):
  with pytest.raises(ConfigError, match="unknown stage 'consistency'"):
    train_stage(_config("test_vae", tiny_dataset), str(tmp_path), "consistency")


def test_denoiser_generation_metrics(vae_workdir, tiny_dataset, text_encoder, tmp_path):
  """With `evaluation.evaluator` set, the denoiser's evaluation adds FID / R-precision / MM-Dist
  of generated motions; the logged values are what `evaluation.for_stage` gives again from the
  saved weights (fixed captions, crops and noise)."""
  from gen_stages import random_params, tiny_evaluator_config  # noqa: I001
  from lead_jax import checkpoints
  from lead_jax import workdir as stage_io
  from lead_jax.workdir import build_module, module_shapes
  from lead_jax.train import evaluation

  ev_config = tiny_evaluator_config(tiny_dataset)
  ev_dir = tmp_path / "evaluator"
  params = random_params(module_shapes("evaluator", build_module("evaluator", ev_config)), 3)
  with checkpoints.Checkpointer(ev_dir) as ckpt:
    ckpt.save(1, {"params": params}, meta={}, config=ev_config.to_dict())
  config = _config("test_denoiser", tiny_dataset,
                   f"--config.dependencies.vae_workdir={vae_workdir}",
                   f"--config.evaluation.evaluator={ev_dir}", "--config.evaluation.num_items=4",
                   "--config.evaluation.steps=2", "--config.train.eval_every=1")
  denoiser.train_and_evaluate(config, str(tmp_path / "den"), text_encoder=text_encoder)
  row = [r for r in read_jsonl(tmp_path / "den" / "metrics.jsonl") if "eval/fid" in r][0]
  assert row["eval/fid"] > 0 and 0 <= row["eval/r_precision_top1"] <= row["eval/r_precision_top3"]
  assert row["eval/mm_dist"] > 0 and "eval/eps_mse" in row

  den = stage_io.load_stage(tmp_path / "den", "denoiser")
  vae_stage = stage_io.load_stage(vae_workdir, "vae")
  null = np.asarray(text_encoder.encode([""]), np.float32)[0]
  again = evaluation.for_stage(config, text_encoder, null, {"vae": vae_stage.module,
                                                            "denoiser": den.module},
                               {"vae": vae_stage.params}, "denoiser", config.scheduler)
  metrics = again(types.SimpleNamespace(params=den.params, ema_params=None))
  np.testing.assert_allclose(metrics["fid"], row["eval/fid"], rtol=1e-4)
  np.testing.assert_allclose(metrics["r_precision_top1"], row["eval/r_precision_top1"])
