"""lead_jax.checkpoints: retention, best step, atomic saves, optax structure, dependency errors."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lead_jax import checkpoints
from lead_jax.errors import MissingFileError, WeightsError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _params(offset=0.0):
  return {"dense": {"kernel": jnp.full((3, 4), offset), "bias": jnp.arange(4.0) + offset}}


def _save_steps(workdir, metrics_by_step, **kw):
  params = _params()
  opt = optax.adamw(1e-3)
  with checkpoints.Checkpointer(workdir, **kw) as ckpt:
    for step, metric in metrics_by_step:
      ckpt.save(step, {"params": _params(step), "opt_state": opt.init(params)},
                meta={"data": {"epoch": step}}, config={"lr": 1e-3},
                metrics=None if metric is None else {"eval/loss": metric})
  return params, opt


def test_keep_last_n_plus_best_and_restore_structure(tmp_path):
  params, opt = _save_steps(tmp_path, [(1, 5.0), (2, 1.0), (3, 4.0), (4, 3.0), (5, None)],
                            max_to_keep=2, best_metric="eval/loss", best_mode="min")
  with checkpoints.Checkpointer(tmp_path, max_to_keep=2, best_metric="eval/loss") as ckpt:
    assert ckpt.all_steps() == [2, 4, 5]  # last two + best (eval/loss 1.0 at step 2)
    assert ckpt.latest_step() == 5 and ckpt.best_step() == 2
  target = {"params": params, "opt_state": opt.init(params)}
  restored = checkpoints.restore_latest(tmp_path, target)
  assert restored.step == 5
  assert restored.meta == {"step": 5, "data": {"epoch": 5}}
  assert restored.config == {"lr": 1e-3}
  assert jax.tree.structure(restored.arrays["opt_state"]) == jax.tree.structure(target["opt_state"])
  np.testing.assert_array_equal(restored.arrays["params"]["dense"]["bias"], np.arange(4.0) + 5)
  assert checkpoints.restore_latest(tmp_path / "fresh", target) is None
  assert checkpoints.has_checkpoints(tmp_path) and not checkpoints.has_checkpoints(tmp_path / "fresh")


def test_crash_mid_save_leaves_previous_step_latest(tmp_path):
  script = textwrap.dedent(f"""
      import os, sys
      sys.path.insert(0, {REPO!r})
      import jax.numpy as jnp
      import orbax.checkpoint as ocp
      from lead_jax import checkpoints
      ckpt = checkpoints.Checkpointer({str(tmp_path)!r})
      ckpt.save(1, {{"params": {{"w": jnp.ones(3)}}}})
      def die(*a, **k):  # the process dies while step 2's items are being written
        os._exit(3)
      ocp.JsonCheckpointHandler.async_save = die
      ocp.JsonCheckpointHandler.save = die
      ckpt.save(2, {{"params": {{"w": jnp.full(3, 2.0)}}}})
  """)
  proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "JAX_PLATFORMS": "cpu"},
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 3, proc.stderr[-2000:]
  leftovers = [p for p in os.listdir(tmp_path / "checkpoints") if p.startswith("2")]
  assert leftovers and all("tmp" in p for p in leftovers)  # only an unfinished tmp dir
  restored = checkpoints.restore_latest(tmp_path, {"params": {"w": jnp.zeros(3)}})
  assert restored.step == 1
  np.testing.assert_array_equal(restored.arrays["params"]["w"], np.ones(3))


def test_load_params_errors_name_the_path(tmp_path):
  missing = tmp_path / "never_trained"
  with pytest.raises(MissingFileError, match="never_trained"):
    checkpoints.load_params(missing)
  (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
  with pytest.raises(MissingFileError, match="no finished checkpoint"):
    checkpoints.load_params(tmp_path / "empty")

  _save_steps(tmp_path / "run", [(7, None)])
  loaded = checkpoints.load_params(tmp_path / "run")
  np.testing.assert_array_equal(loaded["dense"]["kernel"], np.full((3, 4), 7.0))
  with pytest.raises(WeightsError, match="no 'ema_params' item"):
    checkpoints.load_params(tmp_path / "run", "ema_params")
  wrong = {"dense": {"kernel": jax.ShapeDtypeStruct((3, 5), jnp.float32),
                     "bias": jax.ShapeDtypeStruct((4,), jnp.float32)},
           "extra": jax.ShapeDtypeStruct((2,), jnp.float32)}
  with pytest.raises(WeightsError, match=r"\['extra'\].*kernel.*expected \(3, 5\), found \(3, 4\)"):
    checkpoints.load_params(tmp_path / "run", target=wrong)

  # Corrupt the array data of the finished step: a clear WeightsError naming the checkpoint.
  params_dir = tmp_path / "run" / "checkpoints" / "7" / "params"
  for root, _, files in os.walk(params_dir):
    for name in files:
      if name not in ("_METADATA", "_CHECKPOINT_METADATA", "_sharding"):
        with open(os.path.join(root, name), "wb") as f:
          f.write(b"garbage")
  with pytest.raises(WeightsError, match=str(tmp_path / "run" / "checkpoints" / "7")):
    checkpoints.load_params(tmp_path / "run")
