"""Two real JAX processes (`scripts/multiprocess.sh`, gloo CPU collectives, one device each) train
like one process with two devices reading the same two shards (`data.shards=2`): the same losses
and evaluations, one set of checkpoints both resume from, disjoint shards covering the split.

The run (`multiprocess_stages.py`): the denoiser on the latent cache (2 steps, evaluated), the
projector re-encoding through the frozen VAE (2 steps, evaluated: its KL's batch statistics are
global), the denoiser resumed to step 3. The VAE is a workdir of random weights (its own training
on two processes is the script's `vae` stage, left out here to keep CI short). To keep CI short
too, both runs compile with LLVM's optimisations off and reuse their own compilations on resume
(persistent compilation cache): about half the CPU time, the same programs in both runs.
"""

import json
import os
import subprocess
import sys

import numpy as np
from test_latent_cache import write_vae

from lead_jax.data import layout
from lead_jax.train.metric_writers import read_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "tests", "train", "multiprocess_stages.py")
STAGES = "denoiser,projector,resume"
COMPARED = ("loss", "eps_mse", "rec", "align", "kl", "grad_norm", "param_norm", "eval/eps_mse",
            "eval/loss", "eval/rec", "eval/align", "eval/kl")


def _env(cache_dir, xla_flags=""):
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS") and not k.startswith("LEAD_JAX_")}
  return {**env, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO,
          "XLA_FLAGS": f"--xla_backend_optimization_level=0 {xla_flags}",
          "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _rows(path):
  return {(r["step"], k): v for r in read_jsonl(path) for k, v in r.items() if k in COMPARED}


def test_two_processes_train_like_one_process_with_two_devices(tiny_dataset, tmp_path):
  runs = {name: tmp_path / name for name in ("single", "multi")}
  for out in runs.values():
    write_vae(out / "vae", tiny_dataset, seed=0)
  single = subprocess.Popen(
      [sys.executable, SCRIPT, str(tiny_dataset), str(runs["single"]), STAGES,
       "--config.data.shards=2"],
      env=_env(tmp_path / "jax_cache_single", "--xla_force_host_platform_device_count=2"),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  multi = subprocess.run(
      [os.path.join(REPO, "scripts", "multiprocess.sh"), "2", sys.executable, SCRIPT,
       str(tiny_dataset), str(runs["multi"]), STAGES, "--config.multihost=True"],
      env=_env(tmp_path / "jax_cache_multi"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True, timeout=1200)
  single_out = single.communicate(timeout=1200)[0]
  assert single.returncode == 0, single_out[-3000:]
  assert multi.returncode == 0, multi.stdout[-3000:]

  shards = {name: [json.loads((out / f"shards-{i}.json").read_text())
                   for i in range(1 if name == "single" else 2)] for name, out in runs.items()}
  assert [(s["processes"], s["devices"]) for s in shards["multi"]] == [(2, 2), (2, 2)]
  assert [(s["processes"], s["devices"]) for s in shards["single"]] == [(1, 2)]
  ids = [ids for s in shards["multi"] for ids in s["ids"]]
  assert ids == shards["single"][0]["ids"] and len(ids) == 2
  assert not set(ids[0]) & set(ids[1])
  assert sorted(ids[0] + ids[1]) == sorted(layout.read_split_ids(tiny_dataset, "train"))

  for stage, steps in (("denoiser", [1, 2, 3]), ("projector", [1, 2])):
    rows = {name: _rows(out / stage / "metrics.jsonl") for name, out in runs.items()}
    assert rows["multi"].keys() == rows["single"].keys()
    assert sorted({step for step, _ in rows["multi"]}) == steps  # resumed: no step twice
    assert (2, "eval/eps_mse" if stage == "denoiser" else "eval/kl") in rows["multi"]
    for key, value in rows["single"].items():
      np.testing.assert_allclose(rows["multi"][key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    # one set of checkpoints, complete (no leftover temporary folders)
    assert sorted(os.listdir(runs["multi"] / stage / "checkpoints")) == [str(s) for s in steps]
  # each process cached its own shard of the latent bank
  banks = sorted(p.name[:12] for p in (runs["multi"] / "denoiser" / "latent_cache").iterdir())
  assert banks == ["eval-test-s0", "eval-test-s1", "train-s0of2-", "train-s1of2-"]
