"""Text-to-motion sampling throughput: the jitted JAX program against MLD's PyTorch loop, same CPU.

Measured (full-size MLD modules, random weights; text embeddings given, i.e. text encoding excluded
on both sides; 196 frames, 50 guided DDIM steps at scale 7.5, then decoding):
  jax          `lead_jax.pipeline.synthesize` jitted: one lax.scan over the 50 steps (CFG by batch
               doubling), VAE decode, de-normalisation and joints (recover_from_ric) in one program
  jax+proj     the same with LEAD's projector round trip D_proj(E_proj(z0)) (projector overhead %)
  torch        `lead_jax.reference.torch_mld.MLDModel` as MLD samples: a Python loop over the 50
               timesteps calling the denoiser on [uncond; cond], DDIM step in torch, then VAE decode and
               de-normalisation (no joints), `torch.inference_mode`, eval mode
Both sides get the same weights (the torch state dict converted by lead_jax.convert.mld_ckpt) and the
same initial noise; the max |features| difference is printed as a parity check.
Also: the full `Pipeline.generate` (MiniLM text encoding included, 384-d denoiser), peak resident
memory of the process after each phase, and motion textual inversion seconds per step (lead space,
batch 4 x 64 frames, MiniLM).

Time = median of --repeats calls after one warm-up call (compile time reported separately).
Targets (issue #6): >= 3x the torch throughput at batch 32, projector overhead < 5%.

Usage (2 busy cores: about 10 minutes without 256):
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
from lead_jax.models import LatentDenoiser, MotionVAE, Projector, init_params  # noqa: E402
from lead_jax.pipeline import motion_keys, synthesize  # noqa: E402

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

  def sample(z, cond, uncond, lengths, scale: float = 7.5):
    with torch.inference_mode():
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
      return feats * std + mean

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
    from lead_jax.reference.torch_mld import MLDModel  # pylint: disable=import-outside-toplevel
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

  programs = {
      use: jax.jit(functools.partial(synthesize, vae, den, proj if use else None,
                                     max_frames=FRAMES, joints_num=22))
      for use in (False, True)}
  rows = []
  print(f"\n{args.steps} guided DDIM steps + decode to {FRAMES} frames (text embeddings given)")
  header = (f"{'batch':>5} | {'jax s':>7} | {'jax+proj s':>10} | {'proj +%':>7} | {'torch s':>8} | "
            f"{'jax mot/s':>9} | {'torch mot/s':>11} | {'speed-up':>8} | {'compile s':>9} | "
            f"{'max|diff|':>9} | {'peak MiB':>8}")
  print(header)
  print("-" * len(header))
  for batch in args.batches:
    rng = np.random.default_rng(batch)
    cond = jnp.asarray(rng.normal(size=(batch, text_dim)).astype(np.float32))
    uncond = jnp.asarray(rng.normal(size=(text_dim,)).astype(np.float32))
    lengths = jnp.full((batch,), FRAMES, jnp.int32)
    keys = motion_keys(jax.random.key(0), np.arange(batch), np.zeros(batch, int))
    call = {use: (lambda use=use: jax.block_until_ready(programs[use](
        params, cond, uncond, lengths, keys, jnp.float32(7.5), state, jnp.asarray(mean),
        jnp.asarray(std)))) for use in (False, True)}
    first, t_jax = timed(call[False], args.repeats)
    _, t_proj = timed(call[True], args.repeats)
    t_torch, diff = float("nan"), float("nan")
    if torch is not None:
      z_init = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (1, 256)))(keys))
      run_torch = lambda: sample_torch(torch.from_numpy(z_init.copy()),
                                       torch.from_numpy(np.array(cond)),
                                       torch.from_numpy(np.array(uncond))[None],
                                       torch.full((batch,), FRAMES))
      ref = run_torch().numpy()
      for threads in args.torch_threads:
        torch.set_num_threads(threads)
        t_torch = min(t_torch, timed(run_torch, args.repeats)[1]) if t_torch == t_torch else timed(
            run_torch, args.repeats)[1]
      diff = float(np.abs(np.asarray(call[False]()[0]) - ref).max())
    rows.append((batch, t_jax, t_proj, t_torch))
    print(f"{batch:>5} | {t_jax:>7.3f} | {t_proj:>10.3f} | {100 * (t_proj / t_jax - 1):>7.1f} | "
          f"{t_torch:>8.3f} | {batch / t_jax:>9.2f} | {batch / t_torch:>11.2f} | "
          f"{t_torch / t_jax:>7.2f}x | {first - t_jax:>9.1f} | {diff:>9.2e} | "
          f"{peak_rss_mib():>8.0f}", flush=True)

  if not args.skip_generate or not args.skip_mti:
    from lead_jax.pipeline import Pipeline  # pylint: disable=import-outside-toplevel
    from lead_jax.text import load_text_encoder  # pylint: disable=import-outside-toplevel
    encoder = load_text_encoder("minilm")
    small_den, small_proj = LatentDenoiser(text_dim=384), Projector(text_dim=384)
    pipe = Pipeline(vae=vae, denoiser=small_den, projector=small_proj,
                    params={"vae": params["vae"],
                            "denoiser": init_params("denoiser", small_den, jax.random.key(3)),
                            "projector": jax.jit(lambda k: init_params("projector", small_proj, k))(
                                jax.random.key(4))},
                    text_encoder=encoder, mean=mean, std=std)
  if not args.skip_generate:
    print("\nPipeline.generate (MiniLM text encoding included, denoiser text_dim 384, projector on)")
    print(f"{'batch':>5} | {'s/call':>7} | {'mot/s':>7} | {'compile s':>9} | {'peak MiB':>8}")
    for batch in args.batches:
      texts = [f"a person walks forward and turns {i}" for i in range(batch)]
      lengths = [FRAMES - (i % 60) for i in range(batch)]
      fn = lambda: pipe.generate(texts, lengths, jax.random.key(0), steps=args.steps)
      first, t = timed(fn, args.repeats)
      print(f"{batch:>5} | {t:>7.3f} | {batch / t:>7.2f} | {first - t:>9.1f} | "
            f"{peak_rss_mib():>8.0f}", flush=True)
  if not args.skip_mti:
    from lead_jax import inversion  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(0)
    motions = [mean + std * rng.normal(size=(120, 263)).astype(np.float32)]
    run = inversion.invert(pipe, motions, "<dance-x>", "walk",
                           inversion.InversionSettings(space="lead", steps=6))
    print(f"\nMTI (lead space, batch 4 x 64 frames, MiniLM, full-size models): "
          f"{run.seconds_per_step:.3f} s/step after a {run.compile_seconds:.1f} s first step; "
          f"peak {peak_rss_mib():.0f} MiB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
