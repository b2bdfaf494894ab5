"""One process of the multi-process training check (`tests/train/test_multiprocess.py`).

STAGES (comma-separated, in order): `vae` trains the tiny VAE, `denoiser` the denoiser on the
latent cache, `projector` the projector re-encoding (2 steps each, evaluated at step 2), `resume`
resumes the denoiser to step 3. Then writes the ids of this process's data shards to
OUT/shards-<process index>.json. The same global batches on 2 processes and on 1 with 2 shards:

  scripts/multiprocess.sh 2 python tests/train/multiprocess_stages.py DATA OUT \
      vae,denoiser,projector,resume --config.multihost=True
  XLA_FLAGS=--xla_force_host_platform_device_count=2 python tests/train/multiprocess_stages.py \
      DATA OUT vae,denoiser,projector,resume --config.data.shards=2
"""

import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

import jax  # noqa: E402
from fakes import HashTextEncoder  # noqa: E402

from lead_jax.config_loader import load_config  # noqa: E402
from lead_jax.train import inputs, stage, train_stage  # noqa: E402


STAGES = ("vae", "denoiser", "projector", "resume")


def main(data_dir: str, out: str, stages: list[str], overrides: list[str]) -> None:
  """Runs `stages` in order (OUT/vae must hold a VAE workdir when 'vae' is not among them)."""
  def config(name, *more):
    return load_config(os.path.join(REPO, "configs", f"{name}.py"),
                       [f"--config.data.dir={data_dir}", "--config.train.eval_every=2",
                        "--config.train.num_steps=2", *overrides, *more])
  text = HashTextEncoder(384)
  vae = f"--config.dependencies.vae_workdir={out}/vae"
  denoiser = lambda steps: train_stage(
      config("test_denoiser", vae, "--config.latent_cache.crops_per_clip=2",
             f"--config.train.num_steps={steps}"), f"{out}/denoiser", text_encoder=text)
  run = {"vae": lambda: train_stage(config("test_vae"), f"{out}/vae"),
         "denoiser": lambda: denoiser(2),
         "projector": lambda: train_stage(
             config("test_projector", vae, "--config.latent_cache.crops_per_clip=0"),
             f"{out}/projector", text_encoder=text),
         "resume": lambda: denoiser(3)}  # the denoiser resumes at step 2
  for name in stages:
    start = time.perf_counter()
    run[name]()
    print(f"TIMING {name} {time.perf_counter() - start:.1f}s", flush=True)
  stream = inputs.make_train_stream(config("test_vae"), stage.CaptionsUnused())
  with open(os.path.join(out, f"shards-{jax.process_index()}.json"), "w") as f:
    json.dump({"processes": jax.process_count(), "devices": jax.device_count(),
               "ids": [table.ids for table in stream.tables]}, f)
  stream.close()


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4:])
