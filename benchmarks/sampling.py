"""Text-to-motion sampling throughput: the jitted JAX program against MLD's PyTorch loop, same CPU.

Measured (full-size MLD modules, random weights; text embeddings given, i.e. text encoding excluded
on both sides; 196 frames, 50 guided DDIM steps at scale 7.5, then decoding):
  jax f32      `lead_jax.pipeline.synthesize` jitted as `Pipeline` compiles it (float32, with
               `precision.compiler_options`): one lax.scan over the 50 steps (CFG by batch
               doubling), VAE decode, de-normalisation and joints (recover_from_ric) in one program
  jax bf16     the same with the matmul kernels cast to bfloat16 (`precision.cast_matmul_weights`:
               bfloat16 x bfloat16 -> float32 matmuls, everything else float32)
  +proj        the same with LEAD's projector round trip D_proj(E_proj(z0)) (projector overhead %)
  torch f32    `benchmarks.torch_reference.MLDModel` as MLD samples: a Python loop over the 50
               timesteps calling the denoiser on [uncond; cond], DDIM step in torch, then VAE decode and
               de-normalisation (no joints), `torch.inference_mode`, eval mode
  torch bf16   the same loop under `torch.autocast("cpu", dtype=torch.bfloat16)` (the like-for-like
               baseline of jax bf16; MLD itself samples in float32)
Both sides get the same weights (the torch state dict converted by lead_jax.convert.mld_ckpt) and the
same initial noise. Parity: max |features| difference jax f32 vs torch f32; `bf16 dev` = relative
L2 deviation of the jax bf16 features from jax f32 (random weights: the deviation of trained models,
printed by the demo report, is the one that matters).
Also: the full `Pipeline.generate` (MiniLM text encoding included, 384-d denoiser), peak resident
memory of the process after each phase, and motion textual inversion seconds per step (lead space,
batch 4 x 64 frames, MiniLM) in both precisions.

Time = median of --repeats calls after one warm-up call (compile time reported separately).
Targets (issue #6): >= 3x the torch throughput at batch 32, projector overhead < 5%.

Usage (2 busy cores: about 15 minutes without 256):
  JAX_PLATFORMS=cpu python benchmarks/sampling.py
  JAX_PLATFORMS=cpu python benchmarks/sampling.py --batches 1 32 256 --repeats 2
  JAX_PLATFORMS=cpu python benchmarks/sampling.py --batches 1 --steps 10 --skip-mti   # smoke run
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lead_jax.diffusion import schedulers  # noqa: E402
from lead_jax.models import (LatentDenoiser, MotionVAE, Projector, init_params,  # noqa: E402
                             precision)
from lead_jax.diffusion import motion_keys  # noqa: E402
from lead_jax.generate.synthesis import synthesize  # noqa: E402

FRAMES = 196


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeats: int) -> tuple[float, float]:
  """(first call seconds, median of `repeats` further calls)."""
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return first, statistics.median(times)


def load_stats() -> tuple[np.ndarray, np.ndarray]:
  root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                      "humanml3d")
  if os.path.isfile(os.path.join(root, "Mean.npy")):
    return (np.load(os.path.join(root, "Mean.npy")).astype(np.float32),
            np.load(os.path.join(root, "Std.npy")).astype(np.float32))
  print("(HumanML3D Mean/Std not found: using zeros/ones)")
  return np.zeros(263, np.float32), np.ones(263, np.float32)


def torch_sampler(model, torch, alphas_cumprod: np.ndarray, timesteps: np.ndarray,
                  prev_timesteps: np.ndarray, final_alpha: float, mean, std):
  """MLD's sampling loop (reference §3.4) in PyTorch: Python loop, CFG by batch doubling, DDIM."""
  abar = torch.from_numpy(alphas_cumprod.astype(np.float32))

  def sample(z, cond, uncond, lengths, scale: float = 7.5, bf16: bool = False):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
      batch = z.shape[0]
      text = torch.cat([uncond.expand(batch, -1), cond])[:, None]
      for t, prev in zip(timesteps.tolist(), prev_timesteps.tolist()):
        t_in = torch.full((2 * batch,), t, dtype=torch.long)
        eps = model.denoiser(torch.cat([z, z]), t_in, text)
        eps_u, eps_c = eps.chunk(2)
        eps = eps_u + scale * (eps_c - eps_u)
        a_t = abar[t]
        a_prev = abar[prev] if prev >= 0 else torch.tensor(final_alpha)
        x0 = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        z = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
      feats = model.vae.decode(z.permute(1, 0, 2), lengths, FRAMES)
      return feats.float() * std + mean

  return sample


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batches", type=int, nargs="+", default=[1, 32],
                      help="batch sizes (add 256 for the large batch; slow on 2 cores)")
  parser.add_argument("--steps", type=int, default=50)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--torch-threads", type=int, nargs="+", default=[1, 2],
                      help="torch thread counts to try; the fastest is kept (on a busy CPU torch's "
                           "spinning OpenMP threads can make 2 threads far slower than 1)")
  parser.add_argument("--skip-torch", action="store_true")
  parser.add_argument("--skip-mti", action="store_true")
  parser.add_argument("--skip-generate", action="store_true")
  args = parser.parse_args()

  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
  mean, std = load_stats()
  text_dim = 768
  vae, den, proj = MotionVAE(), LatentDenoiser(text_dim=text_dim), Projector(text_dim=text_dim)
  state = schedulers.make_ddim(num_inference_steps=args.steps)
  torch = None
  if not args.skip_torch:
    import torch  # pylint: disable=import-outside-toplevel
    from lead_jax.convert.mld_ckpt import state_dict_to_params  # pylint: disable=import-outside-toplevel
    from benchmarks.torch_reference import MLDModel  # pylint: disable=import-outside-toplevel
    torch.manual_seed(0)
    model = MLDModel(263, text_dim).eval()
    vae_params, den_params = state_dict_to_params(model.state_dict())
    sample_torch = torch_sampler(model, torch, np.asarray(state.alphas_cumprod),
                                 np.asarray(state.timesteps), np.asarray(state.prev_timesteps),
                                 float(state.final_alpha_cumprod), torch.from_numpy(mean),
                                 torch.from_numpy(std))
  else:
    vae_params = init_params("vae", vae, jax.random.key(0))
    den_params = init_params("denoiser", den, jax.random.key(1))
  params = {"vae": jax.tree.map(jnp.asarray, vae_params),
            "denoiser": jax.tree.map(jnp.asarray, den_params),
            "projector": jax.jit(lambda k: init_params("projector", proj, k))(jax.random.key(2))}

  dtypes = ("float32", "bfloat16")
  programs = {
      (dtype, use): jax.jit(functools.partial(synthesize, vae, den, proj if use else None,
                                              frames=FRAMES, joints_num=22),
                            compiler_options=precision.compiler_options(dtype))
      for dtype in dtypes for use in (False, True)}
  cast = {dtype: precision.cast_matmul_weights(params, dtype) for dtype in dtypes}
  print(f"\n{args.steps} guided DDIM steps + decode to {FRAMES} frames (text embeddings given); "
        "seconds per call")
  header = (f"{'batch':>5} | {'jax f32':>7} | {'jax bf16':>8} | {'torch f32':>9} | {'torch bf16':>10} | "
            f"{'f32 x':>5} | {'bf16 x':>6} | {'bf16/bf16 x':>11} | {'proj+% f32':>10} | "
            f"{'proj+% bf16':>11} | {'compile s':>9} | {'max|diff|':>9} | {'bf16 dev':>8} | "
            f"{'jax mot/s':>9} | {'peak MiB':>8}")
  print(header)
  print("-" * len(header))
  for batch in args.batches:
    rng = np.random.default_rng(batch)
    cond = jnp.asarray(rng.normal(size=(batch, text_dim)).astype(np.float32))
    uncond = jnp.asarray(rng.normal(size=(text_dim,)).astype(np.float32))
    lengths = jnp.full((batch,), FRAMES, jnp.int32)
    keys = motion_keys(jax.random.key(0), np.arange(batch), np.zeros(batch, int))
    call = {key: (lambda key=key: jax.block_until_ready(programs[key](
        cast[key[0]], cond, uncond, lengths, keys, jnp.float32(7.5), state, jnp.asarray(mean),
        jnp.asarray(std)))) for key in programs}
    t = {}
    first, t["float32", False] = timed(call["float32", False], args.repeats)
    for key in programs:
      if key != ("float32", False):
        t[key] = timed(call[key], args.repeats)[1]
    feats = {dtype: np.asarray(call[dtype, False]()[0]) for dtype in dtypes}
    dev = float(np.linalg.norm(feats["bfloat16"] - feats["float32"]) /
                np.linalg.norm(feats["float32"]))
    t_torch = {"float32": float("nan"), "bfloat16": float("nan")}
    diff = float("nan")
    if torch is not None:
      z_init = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (1, 256)))(keys))
      def run_torch(bf16):
        return sample_torch(torch.from_numpy(z_init.copy()), torch.from_numpy(np.array(cond)),
                            torch.from_numpy(np.array(uncond))[None], torch.full((batch,), FRAMES),
                            bf16=bf16)
      diff = float(np.abs(feats["float32"] - run_torch(False).numpy()).max())
      for dtype in dtypes:
        for threads in args.torch_threads:
          torch.set_num_threads(threads)
          t_torch[dtype] = np.nanmin([t_torch[dtype],
                                      timed(lambda: run_torch(dtype == "bfloat16"), args.repeats)[1]])
    f32, b16 = t["float32", False], t["bfloat16", False]
    print(f"{batch:>5} | {f32:>7.3f} | {b16:>8.3f} | {t_torch['float32']:>9.3f} | "
          f"{t_torch['bfloat16']:>10.3f} | {t_torch['float32'] / f32:>4.2f}x | "
          f"{t_torch['float32'] / b16:>5.2f}x | {t_torch['bfloat16'] / b16:>10.2f}x | "
          f"{100 * (t['float32', True] / f32 - 1):>10.1f} | "
          f"{100 * (t['bfloat16', True] / b16 - 1):>11.1f} | {first - f32:>9.1f} | {diff:>9.2e} | "
          f"{dev:>8.1e} | {batch / b16:>9.2f} | {peak_rss_mib():>8.0f}", flush=True)
  print("x = torch seconds / jax seconds (f32: both float32; bf16: jax bf16 vs MLD's float32 loop; "
        "bf16/bf16: both bfloat16); jax mot/s in bf16")

  if not args.skip_generate or not args.skip_mti:
    from lead_jax.generate import Pipeline  # pylint: disable=import-outside-toplevel
    from lead_jax.text import load_text_encoder  # pylint: disable=import-outside-toplevel
    encoder = load_text_encoder("minilm")
    small_den, small_proj = LatentDenoiser(text_dim=384), Projector(text_dim=384)
    small = {"vae": params["vae"],
             "denoiser": init_params("denoiser", small_den, jax.random.key(3)),
             "projector": jax.jit(lambda k: init_params("projector", small_proj, k))(
                 jax.random.key(4))}
    pipes = {dtype: Pipeline(vae=vae, denoiser=small_den, projector=small_proj, params=small,
                             text_encoder=encoder, mean=mean, std=std, matmul_dtype=dtype)
             for dtype in dtypes}
  if not args.skip_generate:
    print("\nPipeline.generate (MiniLM text encoding included, denoiser text_dim 384, projector on, "
          "lengths 137..196)")
    print(f"{'batch':>5} | {'matmuls':>8} | {'s/call':>7} | {'mot/s':>7} | {'compile s':>9} | "
          f"{'peak MiB':>8}")
    for batch in args.batches:
      texts = [f"a person walks forward and turns {i}" for i in range(batch)]
      lengths = [FRAMES - (i % 60) for i in range(batch)]
      for dtype, pipe in pipes.items():
        fn = lambda pipe=pipe: pipe.generate(texts, lengths, jax.random.key(0), steps=args.steps)
        first, t = timed(fn, args.repeats)
        print(f"{batch:>5} | {dtype:>8} | {t:>7.3f} | {batch / t:>7.2f} | {first - t:>9.1f} | "
              f"{peak_rss_mib():>8.0f}", flush=True)
  if not args.skip_mti:
    from lead_jax.commands.pipeline_args import inversion_config  # pylint: disable=import-outside-toplevel
    from lead_jax.train import inversion  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(0)
    motions = [mean + std * rng.normal(size=(120, 263)).astype(np.float32)]
    print("\nMTI (lead space, batch 4 x 64 frames, MiniLM, full-size models)")
    for dtype, pipe in pipes.items():
      run = inversion.invert(pipe, motions, f"<dance-{dtype}>", "walk",
                             inversion.InversionSettings.from_config(
                                 inversion_config(None), space="lead", steps=6))
      print(f"  {dtype}: {run.seconds_per_step:.3f} s/step after a {run.compile_seconds:.1f} s "
            f"first step; peak {peak_rss_mib():.0f} MiB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
