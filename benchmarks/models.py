"""Forward-pass time of the Flax models against PyTorch baselines on the same CPU.

Modules (all jitted in JAX with the XLA options of the library's float32 programs,
`lead_jax.models.precision.compiler_options`; parameters passed as arguments, compile time
reported separately):
  vae_encode   MLD motion VAE encode, batch 64 x 196 frames x 263   (torch: torch_reference.MldVae)
  vae_decode   MLD motion VAE decode to 196 frames                    (torch: torch_reference.MldVae)
  denoiser     MLD latent denoiser, one step at batch 256              (torch: torch_reference.MldDenoiser)
  clip         CLIP ViT-L/14 text tower + projection, batch 64 x 77 tokens, random weights
               (torch: transformers CLIPTextModelWithProjection from a config, random weights)
  minilm       all-MiniLM-L6-v2 mean-pooled + L2-normalised, batch 64 x 32 tokens, installed weights
               (torch: transformers BertModel from the same config, random weights, same pooling)

Time = median of --repeats calls after warm-up (JAX: one call, `block_until_ready`; torch: two
calls, `torch.inference_mode`, eval mode). Inputs have the same shapes on both sides. Ratio = jax / torch
(below 1: JAX faster). `--torch-threads 1 2` times torch at each thread count and keeps the
faster: on a shared, oversubscribed CPU torch's OpenMP threads spin and 2 threads ran up to 8x
slower than 1, so a baseline at the default thread count alone can flatter JAX.

Usage (the defaults take 10+ minutes on 2 busy cores; the second line takes about 5):
  JAX_PLATFORMS=cpu python benchmarks/models.py --torch-threads 1 2
  JAX_PLATFORMS=cpu python benchmarks/models.py --clip-len 32 --repeats 2 --torch-threads 1
  JAX_PLATFORMS=cpu python benchmarks/models.py --only denoiser clip --repeats 10 --batch-text 16
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lead_jax.models import precision  # noqa: E402

MODULES = ("vae_encode", "vae_decode", "denoiser", "clip", "minilm")


@dataclasses.dataclass
class Case:
  """One module: a jittable JAX function with its arguments, and a torch callable."""
  name: str
  shape: str
  jax_fn: Callable[..., Any]
  jax_args: tuple
  torch_fn: Callable[[], Any]


@dataclasses.dataclass
class Result:
  name: str
  shape: str
  compile_s: float
  jax_ms: float
  torch_ms: float
  torch_threads: int


def time_jax(fn: Callable[..., Any], args: tuple, repeats: int) -> tuple[float, float]:
  """(trace + lower + compile seconds, median ms of the compiled call)."""
  start = time.perf_counter()
  compiled = jax.jit(fn, compiler_options=precision.compiler_options("float32")).lower(
      *args).compile()
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled(*args))  # warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return compile_s, 1e3 * statistics.median(times)


def time_torch(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
  """Median ms of `fn()` under `torch.inference_mode`, after `warmup` calls (the first calls of a
  torch CPU model are several times slower: kernel selection, allocator growth)."""
  import torch  # pylint: disable=import-outside-toplevel
  with torch.inference_mode():
    for _ in range(warmup):
      fn()
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def _lengths(rng: np.random.Generator, batch: int, frames: int) -> np.ndarray:
  """Per-sample lengths in [40, frames] with at least one full-length sample."""
  lengths = rng.integers(min(40, frames), frames + 1, size=batch)
  lengths[0] = frames
  return lengths


def vae_cases(batch: int, frames: int, rng: np.random.Generator) -> list[Case]:
  import torch  # pylint: disable=import-outside-toplevel
  from lead_jax.models import MotionVAE, init_params  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_reference import MldVae  # pylint: disable=import-outside-toplevel
  vae = MotionVAE()
  params = init_params("vae", vae, jax.random.key(0))
  feats = rng.standard_normal((batch, frames, vae.nfeats)).astype(np.float32)
  lengths = _lengths(rng, batch, frames)
  mask = np.arange(frames)[None] < lengths[:, None]
  z = rng.standard_normal((batch, 1, vae.latent_dim)).astype(np.float32)

  def encode(p, x, m):
    return vae.apply({"params": p}, x, m, method=MotionVAE.encode)[1]  # mu

  def decode(p, latent, m):
    return vae.apply({"params": p}, latent, m, method=MotionVAE.decode)

  torch_vae = MldVae(vae.nfeats).eval()
  feats_t, lengths_t = torch.from_numpy(feats), torch.from_numpy(lengths)
  z_t = torch.from_numpy(z).permute(1, 0, 2).contiguous()
  shape = f"B={batch} T={frames}"
  return [
      Case("vae_encode", shape, encode, (params, jnp.asarray(feats), jnp.asarray(mask)),
           lambda: torch_vae.encode(feats_t, lengths_t, sample=False)),
      Case("vae_decode", shape, decode, (params, jnp.asarray(z), jnp.asarray(mask)),
           lambda: torch_vae.decode(z_t, lengths_t, max_len=frames)),
  ]


def denoiser_case(batch: int, rng: np.random.Generator) -> Case:
  import torch  # pylint: disable=import-outside-toplevel
  from lead_jax.models import LatentDenoiser, init_params  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_reference import MldDenoiser  # pylint: disable=import-outside-toplevel
  den = LatentDenoiser(text_dim=768)
  params = init_params("denoiser", den, jax.random.key(1))
  z = rng.standard_normal((batch, 1, den.latent_dim)).astype(np.float32)
  t = rng.integers(0, 1000, size=batch).astype(np.int32)
  text = rng.standard_normal((batch, den.text_dim)).astype(np.float32)

  def step(p, z_t, timesteps, text_emb):
    return den.apply({"params": p}, z_t, timesteps, text_emb)

  torch_den = MldDenoiser(768).eval()
  z_t, t_t = torch.from_numpy(z), torch.from_numpy(t.astype(np.int64))
  text_t = torch.from_numpy(text)[:, None]
  return Case("denoiser", f"B={batch}", step,
              (params, jnp.asarray(z), jnp.asarray(t), jnp.asarray(text)),
              lambda: torch_den(z_t, t_t, text_t))


def clip_case(batch: int, length: int, rng: np.random.Generator) -> Case:
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  from lead_jax.text.clip import CLIPTextConfig, CLIPTextTransformer  # pylint: disable=import-outside-toplevel
  config = CLIPTextConfig()  # ViT-L/14 text tower
  module = CLIPTextTransformer(config)
  ids = rng.integers(0, config.vocab_size - 1, size=(batch, length)).astype(np.int32)
  eos = rng.integers(1, length, size=batch).astype(np.int32)
  ids[np.arange(batch), eos] = config.vocab_size - 1  # end-of-text = the largest id (argmax pool)
  ids[:, 0] = config.vocab_size - 2
  mask = np.ones_like(ids)
  params = module.init(jax.random.key(2), jnp.asarray(ids[:1]), jnp.asarray(mask[:1]),
                       jnp.asarray(eos[:1]))["params"]

  def forward(p, token_ids, attention_mask, eos_index):
    return module.apply({"params": p}, token_ids, attention_mask, eos_index)[0]

  hf_config = transformers.CLIPTextConfig(
      vocab_size=config.vocab_size, hidden_size=config.hidden_size,
      intermediate_size=config.intermediate_size, num_hidden_layers=config.num_layers,
      num_attention_heads=config.num_heads, max_position_embeddings=config.max_positions,
      projection_dim=config.projection_dim, hidden_act=config.hidden_act,
      layer_norm_eps=config.layer_norm_eps)
  torch_clip = transformers.CLIPTextModelWithProjection(hf_config).eval()
  ids_t = torch.from_numpy(ids.astype(np.int64))
  return Case("clip", f"B={batch} L={length}", forward,
              (params, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(eos)),
              lambda: torch_clip(input_ids=ids_t).text_embeds)


def minilm_case(batch: int, length: int, rng: np.random.Generator) -> Case:
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  from lead_jax.text.minilm import load_minilm, minilm_package_dir  # pylint: disable=import-outside-toplevel
  encoder = load_minilm()
  ids = rng.integers(1000, 30000, size=(batch, length)).astype(np.int32)
  lengths = rng.integers(8, length + 1, size=batch)
  mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
  ids = np.where(mask > 0, ids, 0).astype(np.int32)
  eos = (lengths - 1).astype(np.int32)

  def forward(p, token_ids, attention_mask, eos_index):
    return encoder.module.apply({"params": p}, token_ids, attention_mask, eos_index)[0]

  hf_config = transformers.AutoConfig.from_pretrained(str(minilm_package_dir()))
  bert = transformers.BertModel(hf_config, add_pooling_layer=False).eval()
  ids_t, mask_t = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask.astype(np.int64))

  def torch_forward():
    hidden = bert(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
    weights = mask_t[..., None].to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)

  return Case("minilm", f"B={batch} L={length}", forward,
              (encoder.params, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(eos)),
              torch_forward)


def build_cases(args: argparse.Namespace) -> list[Case]:
  rng = np.random.default_rng(0)
  wanted = set(args.only)
  cases: list[Case] = []
  if wanted & {"vae_encode", "vae_decode"}:
    cases += [c for c in vae_cases(args.batch_vae, args.frames, rng) if c.name in wanted]
  if "denoiser" in wanted:
    cases.append(denoiser_case(args.batch_denoiser, rng))
  if "clip" in wanted:
    cases.append(clip_case(args.batch_text, args.clip_len, rng))
  if "minilm" in wanted:
    cases.append(minilm_case(args.batch_text, args.minilm_len, rng))
  return cases


HEADER = (f"{'module':<11} | {'shape':<13} | {'compile s':>9} | {'jax ms':>9} | {'torch ms':>9} | "
          f"{'thr':>3} | {'ratio':>6}")


def format_row(r: Result) -> str:
  return (f"{r.name:<11} | {r.shape:<13} | {r.compile_s:>9.2f} | {r.jax_ms:>9.1f} | "
          f"{r.torch_ms:>9.1f} | {r.torch_threads:>3} | {r.jax_ms / r.torch_ms:>6.2f}")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--only", nargs="+", choices=MODULES, default=list(MODULES))
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per module (median)")
  parser.add_argument("--batch-vae", type=int, default=64)
  parser.add_argument("--frames", type=int, default=196)
  parser.add_argument("--batch-denoiser", type=int, default=256)
  parser.add_argument("--batch-text", type=int, default=64)
  parser.add_argument("--clip-len", type=int, default=77, help="CLIP tokens (MLD pads to 77)")
  parser.add_argument("--minilm-len", type=int, default=32)
  parser.add_argument(
      "--torch-threads", type=int, nargs="+", default=[0],
      help="torch intra-op thread counts to try (0: torch's default); the fastest is reported. "
           "On an oversubscribed machine 2 OpenMP threads can be several times slower than 1.")
  args = parser.parse_args(argv)

  import torch  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  default_threads = torch.get_num_threads()
  thread_counts = [n or default_threads for n in args.torch_threads]
  print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} CPUs); "
        f"torch {torch.__version__}, best of {thread_counts} threads (thr column); "
        f"median of {args.repeats} calls; baseline = PyTorch (torch_reference / transformers)")
  print(HEADER)
  print("-" * len(HEADER), flush=True)
  for case in build_cases(args):  # rows print as they finish (the big ones take minutes)
    compile_s, jax_ms = time_jax(case.jax_fn, case.jax_args, args.repeats)
    torch_ms, threads = float("inf"), 0
    for n in thread_counts:
      torch.set_num_threads(n)
      ms = time_torch(case.torch_fn, args.repeats)
      if ms < torch_ms:
        torch_ms, threads = ms, n
    print(format_row(Result(case.name, case.shape, compile_s, jax_ms, torch_ms, threads)),
          flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
