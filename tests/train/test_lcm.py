"""The consistency-distillation stage (lead_jax.train.lcm): MotionLCM's DDIM grid, its step's
numbers against the PyTorch re-statement of train_motionlcm.py, and two steps on 4 real clips
(target = EMA 0.95 of the online network, both started from the teacher; exact resume)."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_stages import random_params
from lead_jax import checkpoints
from lead_jax import workdir as stage_io
from lead_jax.config_loader import load_config
from lead_jax.convert.mld_ckpt import state_dict_to_params
from lead_jax.diffusion import make_lcm
from lead_jax.errors import ConfigError
from lead_jax.models import LatentDenoiser, abstract_params, build_models
from lead_jax.train import lcm, train_stage
from lead_jax.train.metric_writers import read_jsonl

torch = pytest.importorskip("torch")
from benchmarks import torch_reference as ref  # noqa: E402  (needs torch)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(name, *overrides):
  return load_config(os.path.join(REPO, "configs", f"{name}.py"), list(overrides))


def test_ddim_grid_is_motionlcm_solver():
  scheduler = make_lcm()
  solver = lcm.make_solver(scheduler, 50)
  np.testing.assert_array_equal(solver.timesteps, np.arange(1, 51) * 20 - 1)
  assert solver.skip == 20 and solver.timesteps[0] == 19 and solver.timesteps[-1] == 999
  abar = np.asarray(scheduler.alphas_cumprod)
  np.testing.assert_array_equal(solver.alphas_cumprod_prev[0], abar[0])
  np.testing.assert_array_equal(solver.alphas_cumprod_prev[1:], abar[np.arange(1, 50) * 20 - 1])
  with pytest.raises(ConfigError, match="num_ddim_timesteps"):
    lcm.make_solver(scheduler, 0)


def test_distillation_step_matches_motionlcm():
  """Online prediction and target of one step equal train_motionlcm.py's (re-stated in PyTorch)
  for the same draws of t, w and z_t; the loss is its pseudo-Huber."""
  sizes = dict(d=32, ff=64, num_layers=3, heads=2)
  torch.manual_seed(0)
  teacher = ref.MLDModel(263, 8, **sizes).eval()
  online = ref.MotionLCMModel(263, 8, time_cond_proj_dim=16, **sizes).eval()
  target = ref.MotionLCMModel(263, 8, time_cond_proj_dim=16, **sizes).eval()
  for model in (online, target):
    with torch.no_grad():
      model.denoiser.time_embedding.cond_proj.weight.normal_(0, 0.02)
  params = {name: state_dict_to_params(m.state_dict(), num_heads=2)[1]
            for name, m in (("teacher", teacher), ("online", online), ("target", target))}
  student = LatentDenoiser(text_dim=8, latent_dim=32, ff_size=64, num_layers=3, num_heads=2,
                           cond_proj_dim=16)
  scheduler = make_lcm()
  distill = lcm.Distillation(student, student.clone(cond_proj_dim=None), scheduler,
                             lcm.make_solver(scheduler, 50), 5.0, 15.0)
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(6, 1, 32)).astype(np.float32))
  text = jnp.asarray(rng.normal(size=(6, 8)).astype(np.float32))
  null = jnp.asarray(rng.normal(size=(8,)).astype(np.float32))
  pred, tgt, extra = distill.targets(params["online"], params["teacher"], params["target"], z,
                                     text, null, jax.random.key(1))
  t, w = np.asarray(extra["t"]), np.asarray(extra["w"])
  assert np.all((t + 1) % 20 == 0) and np.all((w >= 5) & (w <= 15))
  np.testing.assert_array_equal(extra["s"], np.maximum(t - 20, 0))
  with torch.no_grad():
    want_pred, want_tgt = ref.lcm_distillation_targets(
        online.denoiser, teacher.denoiser, target.denoiser,
        torch.from_numpy(np.array(extra["z_t"])), torch.from_numpy(t.astype(np.int64)),
        torch.from_numpy(w), torch.from_numpy(np.array(text))[:, None],
        torch.from_numpy(np.array(null))[None, None].expand(6, 1, 8),
        torch.from_numpy(np.array(scheduler.alphas_cumprod)))
  np.testing.assert_allclose(np.asarray(pred), want_pred.numpy(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(tgt), want_tgt.numpy(), rtol=1e-4, atol=1e-4)
  c = 0.001
  want_loss = torch.mean(torch.sqrt((want_pred - want_tgt) ** 2 + c**2) - c)
  np.testing.assert_allclose(float(lcm.huber(pred, tgt, c)), float(want_loss), rtol=1e-4)


@pytest.fixture(scope="module")
def stages(tiny_dataset, tmp_path_factory):
  """Random tiny VAE and teacher-denoiser workdirs (as trainers save them) over the tiny data."""
  root = tmp_path_factory.mktemp("lcm_stages")
  dirs = {"vae": root / "vae", "denoiser": root / "denoiser"}
  for i, name in enumerate(dirs):
    config = _config(f"test_{name}", f"--config.data.dir={tiny_dataset}")
    if name == "denoiser":
      config.dependencies.vae_workdir = str(dirs["vae"])
    params = random_params(abstract_params(name, build_models(config)[name]), i, scale=0.1)
    with checkpoints.Checkpointer(dirs[name]) as ckpt:
      ckpt.save(5, {"params": params}, meta={}, config=config.to_dict())
  return dirs


def _lcm_config(tiny_dataset, stages, *overrides):
  return _config("test_lcm", f"--config.data.dir={tiny_dataset}",
                 f"--config.dependencies.vae_workdir={stages['vae']}",
                 f"--config.dependencies.denoiser_workdir={stages['denoiser']}",
                 "--config.train.eval_every=2", *overrides)


def test_two_steps_target_is_ema_of_online_and_resume(tiny_dataset, stages, text_encoder,
                                                      tmp_path):
  config = _lcm_config(tiny_dataset, stages)
  assert stage_io.stage_kind(config) == "lcm"
  state = train_stage(config, str(tmp_path / "a"), text_encoder=text_encoder)
  assert int(state.step) == 2
  rows = read_jsonl(tmp_path / "a" / "metrics.jsonl")
  train_rows = [r for r in rows if "loss" in r]
  assert len(train_rows) == 2 and all(r["loss"] == r["huber"] for r in train_rows)
  assert all(0 < r["loss"] < 10 and 5 <= r["w_mean"] <= 15 for r in train_rows)
  evals = [r for r in rows if "eval/huber" in r][0]
  assert evals["eval/huber"] > 0 and evals["eval/x0_mse"] > 0

  # Step 1: online and target both started from the teacher (+ a zero guidance kernel), and the
  # target moved 5% of the way to the updated online network.
  teacher = checkpoints.load_params(stages["denoiser"], "params")
  student = build_models(config)["denoiser"]
  start = lcm.student_from_teacher(teacher, student)
  assert np.all(start["time_embedding"]["cond_proj"]["kernel"] == 0)
  one = {item: checkpoints.load_params(tmp_path / "a", item, step=1)
         for item in ("params", "ema_params")}
  for init, online, target in zip(jax.tree.leaves(start), jax.tree.leaves(one["params"]),
                                  jax.tree.leaves(one["ema_params"])):
    np.testing.assert_allclose(np.asarray(target), 0.95 * init + 0.05 * np.asarray(online),
                               rtol=1e-6, atol=1e-7)
  assert np.abs(np.asarray(one["params"]["time_embedding"]["cond_proj"]["kernel"])).max() > 0

  # The workdir generates with the target (the EMA) and serves as a denoiser stage.
  stage = stage_io.load_stage(tmp_path / "a", "denoiser")
  assert stage.kind == "lcm" and stage.item == "ema_params" and stage.module.cond_proj_dim == 16

  # Resume from step 1 reproduces step 2.
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  shutil.rmtree(tmp_path / "b" / "checkpoints" / "2")
  no_eval = _lcm_config(tiny_dataset, stages, "--config.train.eval_every=0")  # one compile less
  resumed = train_stage(no_eval, str(tmp_path / "b"), text_encoder=text_encoder)
  for a, b in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(resumed.ema_params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_teacher_must_match_the_student(tiny_dataset, stages, text_encoder, tmp_path):
  config = _lcm_config(tiny_dataset, stages, "--config.denoiser.ff_size=48")
  with pytest.raises(ConfigError, match=r"denoiser.ff_size: teacher 64, config 48"):
    lcm.train_and_evaluate(config, str(tmp_path / "a"), text_encoder=text_encoder)
  config = _lcm_config(tiny_dataset, stages, "--config.denoiser.cond_proj_dim=0")
  with pytest.raises(ConfigError, match="guidance embedding"):
    lcm.train_and_evaluate(config, str(tmp_path / "b"), text_encoder=text_encoder)
  # A consistency model is no teacher.
  student = _lcm_config(tiny_dataset, stages)
  params = random_params(abstract_params("denoiser", build_models(student)["denoiser"]), 3)
  with checkpoints.Checkpointer(tmp_path / "student") as ckpt:
    ckpt.save(1, {"params": params}, meta={}, config=student.to_dict())
  config = _lcm_config(tiny_dataset, stages,
                       f"--config.dependencies.denoiser_workdir={tmp_path / 'student'}")
  with pytest.raises(ConfigError, match="teacher must be an MLD denoiser"):
    lcm.train_and_evaluate(config, str(tmp_path / "c"), text_encoder=text_encoder)
