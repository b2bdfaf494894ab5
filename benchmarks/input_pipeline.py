"""Input-pipeline throughput against the denoiser training step it feeds.

  JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/input_pipeline.py [--batches 64 256]

Data: a HumanML3D-layout folder written to a temporary directory from the real clips of
../shared/data/humanml3d (each real clip also as sub-clips starting 2, 4, ... frames later, so the
split has `--clips` clips of realistic lengths, 2 captions each). Text embeddings: a 768-dim
(CLIP-sized) deterministic hashing encoder, paid once by the cache like any encoder.
Measured: batches/s of `lead_jax.train.inputs.make_train_stream` with the tf.data backend (TFDS
records prepared first) and the NumPy backend (grain prefetch thread on and off), steady state after
warm-up, on this machine.
Baseline: steps/s of the real stage-2 step (`lead_jax.train.step.make_train_program` with
`lead_jax.train.denoiser.make_loss_fn`: frozen MLD VAE encode + denoiser forward/backward + AdamW)
at the paper's model size (configs/denoiser_humanml3d.py), same batch size. Target: input >= 5x.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # configs/

import jax  # pylint: disable=wrong-import-position
import ml_collections  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from configs import denoiser_humanml3d, train_common  # pylint: disable=wrong-import-position
from lead_jax.models import build_denoiser, build_vae, init_params  # pylint: disable=wrong-import-position
from lead_jax.diffusion import make_scheduler  # pylint: disable=wrong-import-position
from lead_jax.train import denoiser, inputs  # pylint: disable=wrong-import-position
from lead_jax.train import mesh as mesh_lib  # pylint: disable=wrong-import-position
from lead_jax.train.step import make_train_program  # pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("LEAD_JAX_SHARED_DATA", REPO.parent / "shared" / "data"))


class HashEncoder:
  """768-dim deterministic caption embedding (the cache makes any encoder's cost one-off)."""
  name, embed_dim = "bench-hash-768", 768

  def encode(self, texts):
    out = np.empty((len(texts), self.embed_dim), np.float32)
    for i, t in enumerate(texts):
      seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
      out[i] = np.random.default_rng(seed).standard_normal(self.embed_dim)
    return out


def write_folder(out: pathlib.Path, num_clips: int) -> pathlib.Path:
  src = SHARED / "humanml3d"
  (out / "new_joint_vecs").mkdir(parents=True)
  (out / "texts").mkdir()
  for name in ("Mean.npy", "Std.npy"):
    (out / name).write_bytes((src / name).read_bytes())
  reals = [np.load(p).astype(np.float32) for p in sorted((src / "new_joint_vecs").glob("*.npy"))]
  ids = []
  for k in range(num_clips):
    motion = reals[k % len(reals)]
    shift = min(2 * (k // len(reals)), len(motion) - 40)
    clip_id = f"{k:06d}"
    np.save(out / "new_joint_vecs" / f"{clip_id}.npy", motion[shift:])
    (out / "texts" / f"{clip_id}.txt").write_text(
        f"a person moves, clip {k}.#a/DET person/NOUN move/VERB#0.0#0.0\n"
        f"someone steps, part of clip {k}#someone/PRON step/VERB#0.5#2.5\n")
    ids.append(clip_id)
  for split in ("train", "val", "test"):
    (out / f"{split}.txt").write_text("\n".join(ids if split == "train" else ids[:8]) + "\n")
  return out


def make_config(folder, tmp, batch, backend, prefetch) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = train_common.data_config(str(folder), "humanml3d", batch_size=batch)
  c.data.update(backend=backend, prefetch=prefetch, tfds_dir=str(tmp / "tfds"),
                text_cache_dir=str(tmp / "cache"))
  return c


def batches_per_second(stream, seconds: float, warmup: int = 3) -> float:
  for _ in range(warmup):
    next(stream)
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(stream)
    n += 1
  return n / (time.perf_counter() - start)


def denoiser_steps_per_second(batch: int, seconds: float) -> float:
  """The real stage-2 step at paper size (VAE 18.0M frozen, denoiser 8.3M, CLIP-sized text)."""
  config = train_common.denoiser_training(denoiser_humanml3d.get_config(), num_steps=1000,
                                          batch_size=batch)
  mesh = mesh_lib.make_mesh(config)
  vae, model = build_vae(config.vae), build_denoiser(config.denoiser)
  program = make_train_program(
      config, mesh, lambda key: init_params("denoiser", model, key),
      denoiser.make_loss_fn(model, vae, make_scheduler(config.scheduler, "ddpm"), config))
  state = program.init(jax.random.key(0))
  rng = np.random.default_rng(0)
  length = np.full(batch, 196)
  local = {"motion": rng.standard_normal((batch, 196, config.vae.nfeats)).astype(np.float32),
           "mask": np.arange(196)[None] < length[:, None],
           "text_emb": rng.standard_normal((batch, config.denoiser.text_dim)).astype(np.float32)}
  batch_arrays = mesh_lib.to_global_batch(local, mesh)
  frozen = {"vae": init_params("vae", vae, jax.random.key(1)),
            "null_text_emb": jax.numpy.zeros((config.denoiser.text_dim,))}
  key = jax.random.key(2)
  for _ in range(2):  # compile + warm-up
    state, metrics = program.step(state, batch_arrays, frozen, key)
  jax.block_until_ready(metrics)
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds or n < 3:
    state, metrics = program.step(state, batch_arrays, frozen, key)
    jax.block_until_ready(metrics)
    n += 1
  return n / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--clips", type=int, default=1024)
  parser.add_argument("--seconds", type=float, default=4.0)
  parser.add_argument("--no-step", action="store_true", help="skip the denoiser-step baseline")
  args = parser.parse_args()
  print(f"devices: {jax.devices()}; CPU cores visible: {os.cpu_count()}")
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    folder = write_folder(tmp / "HumanML3D", args.clips)
    rows = []
    for batch in args.batches:
      row = {"batch": batch}
      for name, backend, prefetch in (("tf.data", "tf", 2), ("numpy+grain", "numpy", 2),
                                      ("numpy", "numpy", 0)):
        t0 = time.perf_counter()
        stream = inputs.make_train_stream(make_config(folder, tmp, batch, backend, prefetch),
                                          HashEncoder(), 0, 1)
        row[f"{name} setup s"] = time.perf_counter() - t0
        row[name] = batches_per_second(stream, args.seconds)
        stream.close()
      if not args.no_step:
        row["denoiser step/s"] = denoiser_steps_per_second(batch, args.seconds)
        row["min ratio"] = min(row[k] for k in ("tf.data", "numpy+grain", "numpy")) / \
            row["denoiser step/s"]
      rows.append(row)
  keys = list(rows[0])
  print("\n" + " | ".join(f"{k:>16}" for k in keys))
  for r in rows:
    print(" | ".join(f"{r[k]:>16.2f}" if isinstance(r[k], float) else f"{r[k]:>16}"
                     for k in keys))
  print("\nbatches/s of make_train_stream (motion [B,196,263], mask, length, text_emb [B,768]) "
        "vs steps/s of the paper-size denoiser training step; target: min ratio >= 5.")


if __name__ == "__main__":
  main()
