"""Faults of the training loop on the small regression model of test_loop.py: non-finite state,
corrupt checkpoints, repeated metric rows, the workdir lock, full and read-only disks
(docs/reliability.md)."""

import contextlib
import errno
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax import checkpoints
from lead_jax.errors import OutputError
from lead_jax.train import loop
from lead_jax.train import mesh as mesh_lib
from lead_jax.train import step as step_lib
from lead_jax.train.metric_writers import read_jsonl
from test_loop import FROZEN, Stream, loss_fn, make_config, program


def _run(config, workdir, prog=None):
  prog = prog or program(config)
  return loop.run_training(config, str(workdir), prog.init, prog.step, Stream(), FROZEN)


def test_non_finite_parameters_are_never_saved(tmp_path):
  # With an infinite learning rate the loss of step 1 is finite (it is computed with the initial
  # parameters) but the parameters it produces are not: the old check saved them.
  config = make_config(num_steps=3, checkpoint_every=1)
  config.optimizer.learning_rate = float("inf")
  with pytest.raises(loop.NonFiniteStateError, match=r"non-finite params.* at step 1: not saved"):
    _run(config, tmp_path)
  assert checkpoints.restore_latest(tmp_path, {"params": {"w": jnp.zeros(3), "b": jnp.zeros(())}}
                                    ) is None


def test_resume_from_a_non_finite_checkpoint_names_the_last_finite_step(tmp_path):
  config = make_config(num_steps=2, checkpoint_every=1)
  prog = program(config)
  state = _run(config, tmp_path, prog)
  # A checkpoint written before the check existed: step 3 with NaN parameters.
  bad = state.replace(step=state.step + 1, params=jax.tree.map(lambda x: x * jnp.nan,
                                                                 state.params))
  with checkpoints.Checkpointer(tmp_path) as ckpt:
    ckpt.save(3, bad.array_items(), meta={"rng": np.asarray(jax.random.key_data(bad.rng)).tolist(),
                                          "rng_impl": "threefry2x32", "data": {"pos": 3}})
  config.train.num_steps = 5
  with pytest.raises(loop.NonFiniteStateError,
                     match=r"step 3 .* non-finite params.*last finite checkpoint is step 2: remove "
                           + str(tmp_path / "checkpoints" / "3")):
    _run(config, tmp_path, prog)


def _corrupt_arrays(step_dir):
  """Truncates the array data files of a saved step (what a full disk or a bad copy leaves)."""
  for root, _, files in os.walk(step_dir / "params"):
    for name in files:
      if f"{os.sep}d" in root:
        os.truncate(os.path.join(root, name), 5)


def test_corrupt_latest_checkpoint_falls_back_and_metrics_do_not_repeat(tmp_path):
  config = make_config(num_steps=6, checkpoint_every=3)
  prog = program(config)
  _run(config, tmp_path / "full", prog)
  full = read_jsonl(tmp_path / "full" / "metrics.jsonl")
  _run(config, tmp_path / "cut", prog)
  _corrupt_arrays(tmp_path / "cut" / "checkpoints" / "6")
  with pytest.raises(Exception, match="cannot restore checkpoint .*checkpoints/6"):
    checkpoints.restore_latest(tmp_path / "cut", prog.init(jax.random.key(0)).array_items())
  with pytest.warns(loop.CheckpointWarning, match=r"step\(s\) \[6\] .* resuming from step 3"):
    state = _run(config, tmp_path / "cut", prog)
  assert int(state.step) == 6
  assert (tmp_path / "cut" / "checkpoints" / "6.corrupt").is_dir()
  with checkpoints.Checkpointer(tmp_path / "cut", read_only=True) as ckpt:
    assert ckpt.all_steps() == [3, 6]  # step 6 saved again, readable
  # Rows 4-6 of the first run were logged after the checkpoint resumed from: dropped, then
  # logged again by the resumed run, so each step appears once, with the same numbers.
  cut = read_jsonl(tmp_path / "cut" / "metrics.jsonl")
  assert [r["step"] for r in cut] == [1, 2, 3, 4, 5, 6]
  np.testing.assert_array_equal([r["loss"] for r in cut], [r["loss"] for r in full])


def test_metrics_truncation_drops_rows_past_the_step_and_torn_lines(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [json.dumps({"step": s, "loss": float(s)}) for s in (1, 2, 3, 4)]
  path.write_text("\n".join(rows) + "\n" + '{"step": 5, "lo')  # killed mid-write
  assert loop.truncate_metrics(path, 2) == 3
  assert [r["step"] for r in read_jsonl(path)] == [1, 2]
  assert loop.truncate_metrics(path, 2) == 0


def _dead_pid():
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_workdir_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
  config = make_config(num_steps=1)
  prog = program(config)
  with loop.WorkdirLock(tmp_path) as held:
    record = json.loads(held.path.read_text())
    assert record["pid"] == os.getpid()
    with pytest.raises(loop.WorkdirLockedError, match=f"in use by another training process "
                                                      f"\\(PID {os.getpid()} on host "):
      _run(config, tmp_path, prog)
  assert (tmp_path / "train.lock").read_text() == ""  # released: an empty record
  # kill -9 leaves the record of a dead process (the kernel dropped its flock): taken over.
  dead = _dead_pid()
  (tmp_path / "train.lock").write_text(json.dumps({"pid": dead, "host": "elsewhere",
                                                   "since": "yesterday"}))
  with pytest.warns(loop.TrainingLockWarning, match=f"PID {dead} on host elsewhere.*no longer"):
    assert int(_run(config, tmp_path, prog).step) == 1


def test_a_failed_checkpoint_write_is_one_clear_error(tmp_path, monkeypatch):
  config = make_config(num_steps=4, checkpoint_every=1)
  prog = program(config)
  real_save = checkpoints.Checkpointer.save
  failures = {2: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
              # TensorStore's wrapping of the same failure:
              3: ValueError("RESOURCE_EXHAUSTED: Error writing \"w/0\" in OCDBT database: "
                            "No space left on device [os_error_code='28']")}

  def save(self, step, *args, **kwargs):
    if step in failures:
      raise failures.pop(step)
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(checkpoints.Checkpointer, "save", save)
  with pytest.raises(OutputError, match=r"checkpoint step 2 .*No space left on device; the disk "
                                        r"is full.*last saved checkpoint is step 1"):
    _run(config, tmp_path, prog)
  with pytest.raises(OutputError, match=r"checkpoint step 3 .*No space left on device.*last "
                                        r"saved checkpoint is step 2"):
    _run(config, tmp_path, prog)  # resumes from step 1; saves step 2 this time
  assert (tmp_path / "train.lock").read_text() == ""  # the lock is released on errors too


@contextlib.contextmanager
def _tmpfs(path, options):
  """A real tmpfs at `path` (root only; skipped where mounting is not allowed)."""
  path.mkdir()
  if os.geteuid() != 0:
    pytest.skip("mounting a tmpfs needs root")
  done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                        capture_output=True, check=False)
  if done.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's threads
def test_real_full_disk_and_read_only_workdir(tmp_path):
  config = make_config(num_steps=6, checkpoint_every=1)
  init = lambda key: {"w": jax.random.normal(key, (3,)), "b": jnp.zeros(()),
                      "pad": jnp.zeros((20000,))}  # 80 KB a copy: 300 KB hold one checkpoint
  prog = step_lib.make_train_program(config, mesh_lib.make_mesh(config), init, loss_fn)
  with _tmpfs(tmp_path / "small", "size=300k") as small:
    with pytest.raises(OutputError, match=r"No space left on device.*last saved checkpoint is "
                                          r"step 1"):
      loop.run_training(config, str(small / "run"), prog.init, prog.step, Stream(), FROZEN)
  with _tmpfs(tmp_path / "ro", "size=64k,ro") as read_only:
    with pytest.raises(OutputError, match=r"Read-only file system.*choose a writable folder"):
      loop.run_training(config, str(read_only / "run"), prog.init, prog.step, Stream(), FROZEN)
