"""The denoiser's evaluation loss with the latent cache against MLD's re-encoding, same steps.

On the embedded DeepMimic data with the demo sizes (configs/demo_vae.py, configs/demo_denoiser.py):
trains the demo VAE once (or takes `--vae-workdir`), then the demo denoiser for `--steps` steps
with the same seed for each `--crops` value K (`latent_cache.crops_per_clip`; 0 = re-encode a fresh
crop every step, MLD), evaluating eps MSE on the test split every `--eval-every` steps (every clip,
the same crops, timesteps and noise for every run: `lead_jax.train.denoiser.make_eval_fn`).
Prints eval/eps_mse per step for each K, the mean of the last `--tail` evaluations and the
training rate.

  JAX_PLATFORMS=cpu python benchmarks/latent_cache.py --out /tmp/latent_cache   # ~10 min, 2 cores
  JAX_PLATFORMS=cpu python benchmarks/latent_cache.py --out /tmp/lc --crops 0 1 8 --refresh 0 5
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lead_jax.config_loader import load_config  # noqa: E402
from lead_jax.train import train_stage  # noqa: E402
from lead_jax.train.metric_writers import read_jsonl  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="folder for the workdirs")
  parser.add_argument("--vae-workdir", default="", help="a trained demo VAE (default: train one)")
  parser.add_argument("--vae-steps", type=int, default=2000)
  parser.add_argument("--steps", type=int, default=4000, help="denoiser steps of every run")
  parser.add_argument("--eval-every", type=int, default=500)
  parser.add_argument("--tail", type=int, default=3, help="evaluations averaged at the end")
  parser.add_argument("--crops", type=int, nargs="+", default=[0, 8])
  parser.add_argument("--refresh", type=int, nargs="+", default=[0],
                      help="latent_cache.refresh_epochs values of the K > 0 runs")
  parser.add_argument("--data-dir", default="", help="DeepMimic dataset folder ('' = default)")
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  # As the demo: train on all 15 clips (the train split alone has fewer than a batch), evaluate
  # on the test split.
  common = [f"--config.data.dir={args.data_dir}", "--config.data.split=all",
            "--config.train.progress=False"]

  vae_dir = args.vae_workdir or str(out / "vae")
  if not args.vae_workdir:
    start = time.perf_counter()
    train_stage(load_config(str(REPO / "configs/demo_vae.py"),
                            common + [f"--config.train.num_steps={args.vae_steps}",
                                      f"--config.train.checkpoint_every={args.vae_steps}"]),
                vae_dir)
    print(f"VAE: {args.vae_steps} steps in {time.perf_counter() - start:.0f}s -> {vae_dir}",
          flush=True)

  runs = [(0, 0)] if 0 in args.crops else []
  runs += [(k, r) for k in args.crops if k > 0 for r in args.refresh]
  curves, rates = {}, {}
  for k, refresh in runs:
    workdir = out / f"denoiser_k{k}_r{refresh}"
    config = load_config(str(REPO / "configs/demo_denoiser.py"), common + [
        f"--config.dependencies.vae_workdir={vae_dir}", f"--config.train.num_steps={args.steps}",
        f"--config.train.eval_every={args.eval_every}", "--config.train.eval_batches=0",
        f"--config.train.checkpoint_every={args.steps}", "--config.train.log_every=100",
        f"--config.latent_cache.crops_per_clip={k}",
        f"--config.latent_cache.refresh_epochs={refresh}"])
    start = time.perf_counter()
    train_stage(config, str(workdir))
    rates[(k, refresh)] = args.steps / (time.perf_counter() - start)
    curves[(k, refresh)] = {r["step"]: r["eval/eps_mse"]
                            for r in read_jsonl(workdir / "metrics.jsonl") if "eval/eps_mse" in r}
    print(f"K={k} refresh={refresh}: {rates[(k, refresh)]:.0f} steps/s (with compile, "
          f"evaluation and the cache's encoding)", flush=True)

  labels = [f"K={k}" + (f" r={r}" if k else " (MLD)") for k, r in runs]
  print("\neval/eps_mse on the test split (same crops, t and noise for every run)")
  print(f"{'step':>6} | " + " | ".join(f"{label:>11}" for label in labels))
  steps = sorted(next(iter(curves.values())))
  for s in steps:
    print(f"{s:>6} | " + " | ".join(f"{curves[run][s]:>11.4f}" for run in runs))
  tail = steps[-args.tail:]
  means = [sum(curves[run][s] for s in tail) / len(tail) for run in runs]
  print(f"{'last ' + str(len(tail)):>6} | " + " | ".join(f"{m:>11.4f}" for m in means))
  print(f"{'st/s':>6} | " + " | ".join(f"{rates[run]:>11.0f}" for run in runs))
  return 0


if __name__ == "__main__":
  sys.exit(main())
