"""The generic step, optimiser and loop of lead_jax.train on a small regression model."""

import math
import os
import signal
import struct

import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
import optax
import pytest
from tensorboardX.crc32c import crc32c
from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c

from configs import common as model_configs
from configs import train_common
from lead_jax import checkpoints
from lead_jax.errors import ConfigError
from lead_jax.train import loop, optim, stage
from lead_jax.train import mesh as mesh_lib
from lead_jax.train import step as step_lib
from lead_jax.train.metric_writers import read_jsonl

W_TRUE = np.array([1.0, -2.0, 3.0], np.float32)


class Stream:
  """Batch i is a fixed function of (seed, i): resumable through state()/restore()."""

  def __init__(self, on_batch=None):
    self.pos, self.on_batch = 0, on_batch

  def state(self):
    return {"pos": self.pos}

  def restore(self, state):
    self.pos = state["pos"]

  def __iter__(self):
    return self

  def __next__(self):
    if self.on_batch:
      self.on_batch(self.pos)
    rng = np.random.default_rng([0, self.pos])
    self.pos += 1
    x = rng.normal(size=(4, 3)).astype(np.float32)
    return {"x": x, "y": x @ W_TRUE, "id": np.array(["clip"] * 4)}


TRACES = []


def loss_fn(params, batch, frozen, key):
  TRACES.append(1)  # runs only while tracing
  keep = jax.random.bernoulli(key, 0.9, batch["x"].shape)  # dropout-like use of the key
  pred = (batch["x"] * keep / 0.9) @ params["w"] + params["b"] * frozen["scale"]
  mse = jnp.mean((pred - batch["y"]) ** 2)
  return mse, {"mse": mse}


def make_config(num_steps=6, **train):
  config = model_configs.base_config("humanml3d", "clip", ())
  train_common.add_training(config, num_steps=num_steps, batch_size=4)
  config.train.update({"log_every": 1, "checkpoint_every": 3, "progress": False, "ema_decay": 0.5,
                       **train})
  return config


def program(config):
  init = lambda key: {"w": jax.random.normal(key, (3,)), "b": jnp.zeros(())}
  return step_lib.make_train_program(config, mesh_lib.make_mesh(config), init, loss_fn)


def read_events(path):
  """The `Event`s of a TensorBoard event file, each TFRecord frame's two masked CRC-32Cs checked."""
  data, events, i = path.read_bytes(), [], 0
  while i < len(data):
    header = data[i:i + 8]
    length, = struct.unpack("<Q", header)
    assert struct.unpack("<I", data[i + 8:i + 12])[0] == masked_crc32c(header)
    body = data[i + 12:i + 12 + length]
    assert struct.unpack("<I", data[i + 12 + length:i + 16 + length])[0] == masked_crc32c(body)
    events.append(event_pb2.Event.FromString(body))
    i += 16 + length
  return events


FROZEN = {"scale": jnp.float32(1.0)}


def test_resume_gives_the_same_losses_and_no_retrace(tmp_path):
  config = make_config()
  prog = program(config)
  TRACES.clear()
  loop.run_training(config, str(tmp_path / "full"), prog.init, prog.step, Stream(), FROZEN)
  assert len(TRACES) == 1  # 6 steps (and a restore below) never retrace the step
  config.train.num_steps = 4  # stop after step 4 (checkpoint at 3 and at the end, 4)
  loop.run_training(config, str(tmp_path / "cut"), prog.init, prog.step, Stream(), FROZEN)
  config.train.num_steps = 6
  state = loop.run_training(config, str(tmp_path / "cut"), prog.init, prog.step, Stream(),
                            FROZEN)
  assert len(TRACES) == 1 and prog.step._cache_size() == 1
  full = read_jsonl(tmp_path / "full" / "metrics.jsonl")
  cut = read_jsonl(tmp_path / "cut" / "metrics.jsonl")
  assert [r["step"] for r in cut] == [1, 2, 3, 4, 5, 6]
  np.testing.assert_array_equal([r["loss"] for r in cut], [r["loss"] for r in full])
  assert int(state.step) == 6
  row = full[0]
  assert set(row) >= {"loss", "mse", "grad_norm", "param_norm", "lr", "steps_per_sec"}
  assert row["lr"] == pytest.approx(1e-4)
  # TensorBoard file: valid TFRecord frames holding the logged scalars.
  tb_dir = tmp_path / "full" / "tensorboard"
  events = read_events(tb_dir / os.listdir(tb_dir)[0])
  assert len(events) > 1 and events[0].file_version == "brain.Event:2"
  grad_norms = {e.step: v.simple_value for e in events for v in e.summary.value
                if v.tag == "grad_norm"}
  assert sorted(grad_norms) == [1, 2, 3, 4, 5, 6]
  np.testing.assert_allclose([grad_norms[r["step"]] for r in full], [r["grad_norm"] for r in full],
                             rtol=1e-6)
  assert crc32c(b"123456789") == 0xE3069283  # the frames' checksum is CRC-32C


def test_ema_and_metrics_match_direct_computation():
  config = make_config(num_steps=1)
  prog = program(config)
  state = prog.init(jax.random.key(0))
  params0 = jax.device_get(state.params)
  batch = mesh_lib.to_global_batch(next(Stream()), prog.mesh)
  key = jax.random.key(5)
  (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params0, batch, FROZEN, key)
  tx = optax.adamw(1e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)
  updates, _ = tx.update(grads, tx.init(params0), params0)
  expected = optax.apply_updates(params0, updates)
  state, metrics = prog.step(state, batch, FROZEN, key)
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
  np.testing.assert_allclose(metrics["grad_norm"], optax.global_norm(grads), rtol=1e-6)
  np.testing.assert_allclose(state.params["w"], expected["w"], rtol=1e-6)
  np.testing.assert_allclose(state.ema_params["w"], 0.5 * params0["w"] + 0.5 * expected["w"],
                             rtol=1e-6)


def test_non_finite_loss_stops_naming_the_step(tmp_path):
  config = make_config(num_steps=6)
  prog = program(config)
  bad = {"scale": jnp.float32(1.0)}

  def poison(pos):
    if pos == 2:  # the batch of step 3
      raise_nan.append(pos)

  raise_nan = []

  class NanStream(Stream):
    def __next__(self):
      batch = super().__next__()
      if raise_nan:
        batch["y"] = batch["y"] * np.nan
      return batch

  with pytest.raises(loop.NonFiniteLossError, match="at step 3"):
    loop.run_training(config, str(tmp_path), prog.init, prog.step, NanStream(poison), bad)


def test_sigterm_saves_then_stops(tmp_path):
  config = make_config(num_steps=50, checkpoint_every=100)
  prog = program(config)

  def term(pos):
    if pos == 4:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(loop.TrainingPreempted, match="SIGTERM: saved checkpoint at step 5 of 50"
                     ) as stopped:
    loop.run_training(config, str(tmp_path), prog.init, prog.step, Stream(term), FROZEN)
  state = stopped.value.state
  assert int(state.step) == 5  # step 5 was running when the signal came; then saved and stopped
  restored = checkpoints.restore_latest(tmp_path, {"params": state.params})
  assert restored.step == 5 and restored.meta["data"] == {"pos": 5}


def test_schedules_and_gradient_accumulation():
  opt = make_config().optimizer
  opt.update(schedule="cosine", warmup_steps=10, learning_rate=1.0)
  _, lr = optim.make_optimizer(opt, num_steps=110)
  assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(0.5)
  assert float(lr(10)) == pytest.approx(1.0) and float(lr(60)) == pytest.approx(0.5, abs=1e-6)
  assert float(lr(110)) == pytest.approx(0.0, abs=1e-6)
  opt.update(schedule="constant", warmup_steps=0, grad_accum_steps=2, grad_clip_norm=1.0)
  tx, _ = optim.make_optimizer(opt, num_steps=10)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  g1, g2 = {"w": jnp.array([1.0, 0.0, 0.0])}, {"w": jnp.array([0.0, 3.0, 0.0])}
  u1, state = tx.update(g1, state, params)
  assert float(jnp.abs(u1["w"]).sum()) == 0.0  # first micro-step: no update yet
  u2, state = tx.update(g2, state, params)
  ref = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1.0, weight_decay=0.01))
  expected, _ = ref.update({"w": jnp.array([0.5, 1.5, 0.0])}, ref.init(params), params)
  np.testing.assert_allclose(u2["w"], expected["w"], rtol=1e-5)


def test_bfloat16_compute_keeps_float32_params():
  config = make_config(num_steps=1, compute_dtype="bfloat16")
  prog = program(config)
  state = prog.init(jax.random.key(0))
  batch = mesh_lib.to_global_batch(next(Stream()), prog.mesh)
  ref_loss, _ = loss_fn(jax.device_get(state.params), batch, FROZEN, jax.random.key(1))
  state, metrics = prog.step(state, batch, FROZEN, jax.random.key(1))
  assert state.params["w"].dtype == jnp.float32 and metrics["loss"].dtype == jnp.float32
  assert math.isfinite(float(metrics["loss"]))
  np.testing.assert_allclose(metrics["loss"], ref_loss, rtol=2e-2)


def test_absolute_paths_make_saved_configs_independent_of_the_working_directory(tmp_path,
                                                                                 monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = ml_collections.ConfigDict({"dependencies": train_common.dependencies_config(),
                                      "data": train_common.data_config("data/h3d")})
  config.dependencies.update(vae_workdir="runs/vae", text_encoder_path="~/clip")
  stage.absolute_paths(config)
  assert config.dependencies.vae_workdir == str(tmp_path / "runs" / "vae")
  assert config.dependencies.denoiser_workdir == ""  # unset stays unset
  assert config.dependencies.text_encoder_path == os.path.expanduser("~/clip")
  assert config.data.dir == str(tmp_path / "data" / "h3d") and config.data.text_cache_dir is None


def test_a_missing_config_field_is_a_config_error_naming_it(tmp_path):
  config = make_config()
  del config.train["ema_decay"]
  with pytest.raises(ConfigError, match=r"reads config\.train\.ema_decay, missing"):
    program(config)
  config = make_config()
  del config.optimizer["b2"]
  with pytest.raises(ConfigError, match=r"config\.optimizer\.b2, missing"):
    optim.make_optimizer(config.optimizer, num_steps=10)
  config = make_config()
  prog = program(config)
  del config["seed"], config.train["resume"]
  with pytest.raises(ConfigError, match=r"config\.seed, config\.train\.resume, missing"):
    loop.run_training(config, str(tmp_path), prog.init, prog.step, Stream(), FROZEN)
