"""Training stages as a user runs them: `lead-jax train` in a subprocess (the workdir lock held by a
live process, SIGTERM's exit status) and the provenance a later stage records and checks
(docs/reliability.md)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lead_jax import workdir as stage_io
from lead_jax.config_loader import load_config
from lead_jax.fingerprints import tree_fingerprint
from lead_jax.train import loop, stage

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(name, data_dir, *overrides):
  return load_config(os.path.join(REPO, "configs", f"{name}.py"),
                     [f"--config.data.dir={data_dir}", *overrides])


@pytest.fixture(scope="module")
def preempted_vae(tiny_dataset, tmp_path_factory):
  """A `lead-jax train` VAE run that holds its workdir's lock, then is sent SIGTERM after its first
  checkpoint. Returns (workdir, pid, lock record while running, return code, its output)."""
  workdir = tmp_path_factory.mktemp("vae_cli")
  # Cheaper XLA compiles (half the CPU time; the numbers are not what this test checks).
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO,
         "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"}
  proc = subprocess.Popen(
      [sys.executable, "-m", "lead_jax.cli", "train", f"--config={REPO}/configs/test_vae.py",
       f"--workdir={workdir}", f"--config.data.dir={tiny_dataset}",
       "--config.train.num_steps=100000"], env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  try:
    while not (workdir / "checkpoints" / "1").is_dir():
      assert proc.poll() is None, proc.stderr.read()[-2000:]
      assert time.time() < deadline, "no checkpoint within 240 s"
      time.sleep(0.2)
    record = json.loads((workdir / "train.lock").read_text())
    with pytest.raises(loop.WorkdirLockedError, match=f"PID {proc.pid} on host"):
      loop.WorkdirLock(workdir).acquire()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  return workdir, proc.pid, record, proc.returncode, out + err


def test_a_second_run_is_refused_while_the_first_holds_the_lock(preempted_vae):
  workdir, pid, record, _, _ = preempted_vae
  assert record["pid"] == pid and record["host"]
  assert (workdir / "train.lock").read_text() == ""  # released when the run stopped


def test_sigterm_saves_then_exits_143(preempted_vae):
  workdir, _, _, returncode, err = preempted_vae
  assert returncode == 143, err[-2000:]
  assert "SIGTERM: saved checkpoint at step" in err and "trained vae" not in err
  step = int(err.split("SIGTERM: saved checkpoint at step ")[1].split()[0])
  assert (workdir / "checkpoints" / str(step)).is_dir()
  meta = stage_io.load_stage(workdir).meta
  assert meta["step"] == step and len(meta["run_id"]) == 32 and len(meta["fingerprint"]) == 12


def test_later_stages_record_the_vae_and_statistics_and_refuse_changed_ones(
    preempted_vae, tiny_dataset, tmp_path):
  vae_dir = preempted_vae[0]
  vae = stage_io.load_stage(vae_dir)
  mean, std = np.load(tiny_dataset / "Mean.npy"), np.load(tiny_dataset / "Std.npy")
  stats = stage_io.stats_record(mean, std, str(tiny_dataset))
  assert vae.provenance == {"stats": stats, "dependencies": {}}  # saved by the CLI run
  config = _config("test_denoiser", tiny_dataset, f"--config.dependencies.vae_workdir={vae_dir}")
  stage.absolute_paths(config)
  # What `run_stage` saves with every denoiser checkpoint: the VAE the trainer loads, exactly.
  recorded = stage_io.training_provenance(config)
  assert recorded == {"stats": stats, "dependencies": {"vae": {
      "workdir": str(vae_dir), "step": vae.step, "run_id": vae.meta["run_id"],
      "fingerprint": tree_fingerprint(vae.params)}}}
  stage.check_resume_provenance(config, str(vae_dir), recorded)  # unchanged: silent
  # The same data re-imported with other statistics: the frozen VAE was trained on the old ones.
  changed = tmp_path / "reimported"
  shutil.copytree(tiny_dataset, changed)
  np.save(changed / "Std.npy", (std * 1.01).astype(np.float32))
  config.data.dir = str(changed)
  with pytest.raises(stage_io.DependencyChangedError,
                     match=r"vae stage .*Mean/Std of .*reimported\) differ.*"
                           r"--allow-dependency-change"):
    stage.load_dependency(config, "vae")
  with pytest.raises(stage_io.DependencyChangedError, match=r"resuming .* \(step \d+\): the "
                                                            r"dataset statistics"):
    stage.check_resume_provenance(config, str(vae_dir), stage_io.training_provenance(config))
  config.dependencies.allow_changed = True  # --allow-dependency-change
  with pytest.warns(stage_io.DependencyWarning, match=r"statistics .*\(accepted\)"):
    stage.load_dependency(config, "vae")
