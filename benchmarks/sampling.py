"""End-to-end text-to-motion sampling: what a user waits for, ours against MLD's original pipeline.

Every row goes from caption strings to de-normalised motions (full-size models, random weights,
the same weights on both sides), on this machine, in one run:
  torch MLD    MLD's own pipeline (reference §3.4, §4) re-stated in PyTorch
               (`benchmarks.torch_reference`): the Hugging Face CLIP ViT-L/14 text tower on
               `[""] * B + captions` padded to 77 tokens, 50 guided DDIM steps in a Python loop over
               the doubled batch, VAE decode at the batch's longest length, de-normalisation
               (no joints); float32, `torch.inference_mode`
  ddim50       ours, MLD mode: `Pipeline.generate`: a text program (CLIP on the prompts' real
               tokens only, packed as prefix trees in rows of 64 slots, its layers on the compact
               tokens, attention in the rows; the empty prompt's embedding computed once per
               pipeline) and a motion program (50 guided DDIM steps in a lax.scan, VAE decode of
               the real frames only, compact, attention in rows of the batch's frame bucket, the
               decoder's first self-attention block read from a per-pipeline table; joints)
  lcm1/2/4     ours, MotionLCM: the same program with a consistency-distilled denoiser
               (`cond_proj_dim` 256) and the LCM scheduler at 1, 2, 4 steps (no CFG doubling)
  +proj        the same with LEAD's projector round trip
The text tower is CLIP ViT-L/14's (123,650,304 parameters, random weights written in the Hugging
Face layout to a temp dir, the real BPE vocabulary from ../shared/data/clip); captions are
HumanML3D-style sentences with lengths of 40-196 frames (20 fps). float32 and bfloat16 (our
matmul precision; the text encoder runs float32). Time: median of --repeats calls after a first
call (compile time = first call - median), the rows of a batch timed round-robin (so a change of
load on a shared machine hits every row alike); peak RSS of the process after each row's first
call; `x` = torch MLD seconds / ours. `--profile` adds where an LCM-1 call spends its time, each
piece at the generation program's packed shapes: text (rows x slots per row, the compact tokens
computed, and the prompts' real tokens), sampling, decode + joints (rows x slots per row, the
compact frames computed, and the real frames).

Target (issue #14): lcm1 at batch 32 >= 10x the torch MLD pipeline in float32.

`--protocol` instead times generation as the evaluation protocol runs it (the same captions in
every replication): captions encoded in every call (`Pipeline.generate`) against each caption
encoded once (`protocol.PromptEmbeddings`, what `lead-jax evaluate` and the study use).

`--quality DEMO_OUT --evaluator EVAL_WORKDIR` instead scores the demo's LEAD stages
(`lead-jax demo`'s DEMO_OUT/workdirs) at DDIM 50 and LCM 1, 2, 4 steps with a trained evaluator
(configs/evaluator_demo.py, trained on the demo's data): FID and R-precision over --replications
passes of --split (the demo's 15 clips: 'all').

Usage (2 shared cores: the batch-256 torch row alone takes minutes):
  JAX_PLATFORMS=cpu python benchmarks/sampling.py --batches 1 32 --profile
  JAX_PLATFORMS=cpu python benchmarks/sampling.py --batches 256 --repeats 1 --dtypes float32
  JAX_PLATFORMS=cpu python benchmarks/sampling.py --quality demo --evaluator runs/evaluator_demo
  JAX_PLATFORMS=cpu python benchmarks/sampling.py --mti      # motion textual inversion s/step
  JAX_PLATFORMS=cpu python benchmarks/sampling.py --protocol --batches 32 --replications 3
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lead_jax.diffusion import motion_keys, schedulers  # noqa: E402
from lead_jax.generate import Pipeline, prompts, synthesis  # noqa: E402
from lead_jax.models import (LatentDenoiser, MotionVAE, Projector, init_params,  # noqa: E402
                             precision)

SHARED = REPO.parent / "shared" / "data"
MAX_FRAMES = 196
CAPTIONS = (
    "a person walks forward, turns around and walks back.",
    "a man jumps up and down twice.",
    "someone raises their right hand and waves.",
    "a person runs in a circle counterclockwise.",
    "the person is doing jumping jacks.",
    "a man kicks with his left leg and then steps back.",
    "a person sits down on a chair and stands up again.",
    "a person slowly walks up the stairs while holding the rail with the left hand.",
    "someone throws a ball with the right hand.",
    "a person crouches down, picks something up from the floor and places it on a table.",
    "the man dances happily, swinging his arms from side to side.",
    "a person stumbles forward and regains balance.",
    "a person does a cartwheel to the left.",
    "a figure walks in a zigzag pattern.",
    "a person bends forward and touches their toes.",
    "a person is boxing, punching forward with both fists.",
    "the person jogs forward then stops abruptly.",
    "a person turns to the right and sits on the ground.",
    "a man swims breaststroke in the air.",
    "someone claps their hands above their head three times.",
    "a person walks backward carefully.",
    "a person hops on the left foot.",
    "the person lifts a heavy box and carries it to the right.",
    "a person stretches both arms upward and then to the sides.",
    "a man waves both hands over his head as if signalling someone far away.",
    "a person walks forward while looking at their phone.",
    "someone performs a roundhouse kick.",
    "a person side steps to the left and then to the right.",
    "a person drinks from a cup with the right hand.",
    "the man balances on one leg with his arms spread out.",
    "a person climbs over an obstacle.",
    "a person walks like a zombie with arms stretched out.",
)


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
  root = SHARED / "humanml3d"
  if (root / "Mean.npy").is_file():
    return (np.load(root / "Mean.npy").astype(np.float32),
            np.load(root / "Std.npy").astype(np.float32))
  print("(HumanML3D Mean/Std not found: using zeros/ones)")
  return np.zeros(263, np.float32), np.ones(263, np.float32)


def batch_of(batch: int, seed: int = 0) -> tuple[list[str], list[int]]:
  """`batch` captions (cycled) and lengths in [40, 196] frames (multiples of 4, HumanML3D's)."""
  rng = np.random.default_rng(seed)
  texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch)]
  lengths = (4 * rng.integers(10, 50, size=batch)).tolist()
  lengths[0] = MAX_FRAMES if batch >= 8 else lengths[0]  # a full batch usually has a 196-frame clip
  return texts, [int(n) for n in lengths]


def write_clip_l(directory: pathlib.Path):
  """Random CLIP ViT-L/14 text tower (with projection) in the Hugging Face layout; returns the
  torch model (eval mode) and its tokenizer."""
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  from lead_jax.text.clip import clip_tokenizer_from_bpe  # pylint: disable=import-outside-toplevel
  bpe = SHARED / "clip" / "bpe_simple_vocab_16e6.txt.gz"
  if not bpe.is_file():
    sys.exit(f"the CLIP BPE vocabulary is missing: {bpe}")
  tokenizer = clip_tokenizer_from_bpe(bpe, max_length=77)
  config = transformers.CLIPTextConfig(
      vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
      num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
      hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id,
      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
  torch.manual_seed(0)
  model = transformers.CLIPTextModelWithProjection(config).eval()
  model.save_pretrained(directory)
  tokenizer.save_pretrained(directory)
  return model, tokenizer


def torch_mld_pipeline(mld, clip, tokenizer, alphas_cumprod: np.ndarray, mean, std):
  """MLD's sampling (reference §3.4) in PyTorch, from captions to de-normalised features."""
  import torch  # pylint: disable=import-outside-toplevel
  ddim = schedulers.make_ddim(num_inference_steps=50)
  steps = [(int(t), int(p)) for t, p in zip(np.asarray(ddim.timesteps),
                                            np.asarray(ddim.prev_timesteps))]
  abar = torch.from_numpy(alphas_cumprod.astype(np.float32))
  final = abar[0]

  def run(texts: list[str], lengths: list[int], z: np.ndarray, scale: float = 7.5,
          timings: dict | None = None):
    with torch.inference_mode():
      start = time.perf_counter()
      batch = len(texts)
      tokens = tokenizer([""] * batch + texts, padding="max_length", truncation=True,
                         max_length=77, return_tensors="pt")
      text = clip(input_ids=tokens.input_ids).text_embeds[:, None]
      text_done = time.perf_counter()
      latent = torch.from_numpy(z.copy())
      for t, prev in steps:
        t_in = torch.full((2 * batch,), t, dtype=torch.long)
        eps = mld.denoiser(torch.cat([latent, latent]), t_in, text)
        eps_u, eps_c = eps.chunk(2)
        eps = eps_u + scale * (eps_c - eps_u)
        a_t, a_prev = abar[t], (abar[prev] if prev >= 0 else final)
        x0 = (latent - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        latent = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
      loop_done = time.perf_counter()
      n = torch.tensor(lengths)
      feats = mld.vae.decode(latent.permute(1, 0, 2), n, int(max(lengths)))
      out = feats * std + mean
      if timings is not None:
        timings.update(text=text_done - start, loop=loop_done - text_done,
                       decode=time.perf_counter() - loop_done)
      return out

  return run


def end_to_end(args) -> None:
  import torch  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_reference import MLDModel  # pylint: disable=import-outside-toplevel
  from lead_jax.convert.mld_ckpt import (  # pylint: disable=import-outside-toplevel
      state_dict_to_params)
  from lead_jax.text.clip import load_clip  # pylint: disable=import-outside-toplevel

  mean, std = load_stats()
  tmp = tempfile.TemporaryDirectory(prefix="clip_l_")
  start = time.perf_counter()
  clip_torch, tokenizer = write_clip_l(pathlib.Path(tmp.name))
  clip = load_clip(tmp.name)
  print(f"CLIP ViT-L/14 text tower (random) written and loaded in "
        f"{time.perf_counter() - start:.0f} s; peak {peak_rss_mib():.0f} MiB")

  torch.manual_seed(0)
  mld = MLDModel(263, 768).eval()
  vae_params, den_params = state_dict_to_params(mld.state_dict())
  vae, den = MotionVAE(), LatentDenoiser(text_dim=768)
  lcm = LatentDenoiser(text_dim=768, cond_proj_dim=256)
  proj = Projector(text_dim=768)
  cond = 0.02 * np.random.default_rng(0).standard_normal((256, 768)).astype(np.float32)
  lcm_params = jax.tree.map(lambda x: x, den_params)
  lcm_params["time_embedding"] = dict(lcm_params["time_embedding"], cond_proj={"kernel": cond})
  proj_params = jax.jit(lambda k: init_params("projector", proj, k))(jax.random.key(2))
  pipes = {}
  for dtype in args.dtypes:
    common = dict(vae=vae, text_encoder=clip, mean=mean, std=std, matmul_dtype=dtype)
    pipes["mld", dtype] = Pipeline(denoiser=den, projector=proj, params={
        "vae": vae_params, "denoiser": den_params, "projector": proj_params}, **common)
    pipes["lcm", dtype] = Pipeline(denoiser=lcm, projector=proj, params={
        "vae": vae_params, "denoiser": lcm_params, "projector": proj_params}, **common)
  variants = [("ddim50", "mld", "ddim", 50, False), ("ddim50+proj", "mld", "ddim", 50, True)]
  variants += [(f"lcm{k}", "lcm", "lcm", k, False) for k in args.lcm_steps]
  variants += [(f"lcm{args.lcm_steps[0]}+proj", "lcm", "lcm", args.lcm_steps[0], True)]
  sample_torch = torch_mld_pipeline(mld, clip_torch, tokenizer,
                                    np.asarray(schedulers.make_ddim().alphas_cumprod),
                                    torch.from_numpy(mean), torch.from_numpy(std))

  print(f"\nend to end, captions -> motions ({'/'.join(args.dtypes)} matmuls); seconds per call")
  header = (f"{'batch':>5} | {'method':>12} | {'dtype':>8} | {'s/call':>7} | {'mot/s':>7} | "
            f"{'x torch':>7} | {'compile s':>9} | {'peak MiB':>8}")
  print(header)
  print("-" * len(header))
  for batch in args.batches:
    texts, lengths = batch_of(batch)
    calls = {}  # (method, dtype) -> call; timed round-robin so load changes hit every row alike
    if not args.skip_torch:
      torch.set_num_threads(args.torch_threads)
      keys = motion_keys(jax.random.key(0), np.arange(batch), np.zeros(batch, int))
      z = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (1, 256)))(keys))
      calls["torch MLD", "float32"] = lambda: sample_torch(texts, lengths, z)
    for name, which, scheduler, steps, use_proj in variants:
      for dtype in args.dtypes:
        calls[name, dtype] = (lambda pipe=pipes[which, dtype], scheduler=scheduler, steps=steps,
                              use_proj=use_proj: pipe.generate(
                                  texts, lengths, jax.random.key(0), scheduler=scheduler,
                                  steps=steps, use_projector=use_proj))
    first, peak, times = {}, {}, {k: [] for k in calls}
    for k, fn in calls.items():
      start = time.perf_counter()
      fn()
      first[k] = time.perf_counter() - start
      peak[k] = peak_rss_mib()
    for _ in range(args.repeats):
      for k, fn in calls.items():
        start = time.perf_counter()
        fn()
        times[k].append(time.perf_counter() - start)
    t = {k: statistics.median(v) for k, v in times.items()}
    t_torch = t.get(("torch MLD", "float32"), float("nan"))
    for (name, dtype), seconds in t.items():
      compile_s = "-" if name == "torch MLD" else f"{max(first[name, dtype] - seconds, 0):.1f}"
      print(f"{batch:>5} | {name:>12} | {dtype:>8} | {seconds:>7.3f} | {batch / seconds:>7.2f} | "
            f"{t_torch / seconds:>6.2f}x | {compile_s:>9} | {peak[name, dtype]:>8.0f}", flush=True)
    if args.profile:
      if not args.skip_torch:
        parts = {}
        sample_torch(texts, lengths, z, timings=parts)
        print(f"      torch MLD: text (CLIP, {2 * batch} x 77 tokens) {parts['text']:.3f} s, "
              f"50 guided DDIM steps {parts['loop']:.3f} s, decode ({batch} x {max(lengths)} "
              f"frames) {parts['decode']:.3f} s")
      profile(pipes["lcm", args.dtypes[0]], texts, lengths, args.repeats, args.lcm_steps[0])
  tmp.cleanup()


def profile(pipe: Pipeline, texts: list[str], lengths: list[int], repeats: int,
            steps: int) -> None:
  """Median seconds of the pieces of one LCM call, each jitted alone, at the program's packed
  shapes (`prompts.pack_prompts`, `prompts.pack_motions`)."""
  enc = pipe.text_encoder
  tokens, _ = prompts.pack_prompts(enc, texts, enc.no_extra_tokens())
  (rows, width), real_tokens = tokens.shape, int(tokens.packing.item_length.sum())
  text_computed = tokens.packing.num_tokens
  tokens = jax.tree.map(jnp.asarray, tokens)
  n = prompts.next_pow2(len(texts))
  motions = prompts.pack_motions(np.concatenate([lengths, np.zeros(n - len(lengths), int)]),
                                 pipe.max_frames)
  frame_rows, frames = motions.shape
  first_block = pipe.first_block
  options = precision.compiler_options(pipe.matmul_dtype)  # as the generation program's
  text_fn = jax.jit(enc.encode_packed_ids, compiler_options=options)
  pooled = text_fn(enc.params, tokens)
  keys = motion_keys(jax.random.key(0), np.arange(n), np.zeros(n, int))
  state = pipe.scheduler_state("lcm", steps)
  params = pipe.compute_params
  sample_fn = jax.jit(lambda p, c, k: synthesis.sample(pipe.denoiser, p, k, c, None,
                                                       jnp.float32(7.5), state),
                      compiler_options=options)
  cond = pooled[jnp.zeros(n, jnp.int32)]
  z0 = sample_fn(params["denoiser"], cond, keys)
  mean, std = jnp.asarray(pipe.mean), jnp.asarray(pipe.std)
  decode_fn = jax.jit(lambda p, z, m, table: synthesis.decode_packed(
      pipe.vae, p, z, m, frames, mean, std, pipe.joints_num, table), compiler_options=options)
  parts = {
      f"text ({rows} x {width} slots, {text_computed} computed, {real_tokens} real)":
          lambda: jax.block_until_ready(text_fn(enc.params, tokens)),
      f"sample ({n} x {steps} step)": lambda: jax.block_until_ready(sample_fn(
          params["denoiser"], cond, keys)),
      f"decode + joints ({frame_rows} x {frames} slots, {motions.num_tokens} computed, "
      f"{sum(lengths)} real)":
          lambda: jax.block_until_ready(decode_fn(params["vae"], z0, motions, first_block)),
      "whole generate call": lambda: pipe.generate(texts, lengths, jax.random.key(0),
                                                   scheduler="lcm", steps=steps)}
  for name, fn in parts.items():
    print(f"      {name:>48}: {timed(fn, repeats)[1]:.3f} s")


ADVERBS = ("", "slowly", "quickly", "twice", "carefully", "with energy", "while looking down",
           "three times")


def distinct_captions(count: int) -> list[str]:
  """`count` different HumanML3D-style captions (CAPTIONS with a manner or repetition added)."""
  out = []
  for i in range(count):
    base, adverb = CAPTIONS[i % len(CAPTIONS)], ADVERBS[(i // len(CAPTIONS)) % len(ADVERBS)]
    rounds = i // (len(CAPTIONS) * len(ADVERBS))
    extra = (f" {adverb}" if adverb else "") + (f" ({rounds})" if rounds else "")
    out.append(base[:-1] + extra + ".")
  return out


def protocol_generation(args) -> None:
  """Generation as the evaluation protocol runs it: `--captions` distinct captions, generated in
  every one of `--replications` replications (new keys, same captions and lengths), in chunks of
  `--batches[0]` prompts. Baseline: `Pipeline.generate` on the captions in every replication (the
  text encoder runs each time); ours: `protocol.pipeline_generator` over a `PromptEmbeddings`
  table (each caption encoded once, in the first replication). CLIP ViT-L/14 (random), full-size
  VAE/denoiser (random), float32."""
  from lead_jax.evaluation import protocol  # pylint: disable=import-outside-toplevel
  from lead_jax.text.clip import load_clip  # pylint: disable=import-outside-toplevel
  mean, std = load_stats()
  tmp = tempfile.TemporaryDirectory(prefix="clip_l_")
  write_clip_l(pathlib.Path(tmp.name))
  clip = load_clip(tmp.name)
  vae, den = MotionVAE(), LatentDenoiser(text_dim=768)
  lcm = LatentDenoiser(text_dim=768, cond_proj_dim=256)
  vae_params = init_params("vae", vae, jax.random.key(0))
  pipes = {"mld": Pipeline(vae=vae, denoiser=den, projector=None, text_encoder=clip, mean=mean,
                           std=std, params={"vae": vae_params,
                                            "denoiser": init_params("denoiser", den,
                                                                    jax.random.key(1))}),
           "lcm": Pipeline(vae=vae, denoiser=lcm, projector=None, text_encoder=clip, mean=mean,
                           std=std, params={"vae": vae_params,
                                            "denoiser": init_params("denoiser", lcm,
                                                                    jax.random.key(1))})}
  captions = distinct_captions(args.captions)
  lengths = np.asarray(batch_of(args.captions, seed=1)[1])
  chunk = args.batches[0]

  def uncached(pipe, steps):
    def generate(caps, lens, key):
      for i, start in enumerate(range(0, len(caps), chunk)):
        pipe.generate(caps[start:start + chunk], lens[start:start + chunk],
                      jax.random.fold_in(key, i), steps=steps, use_projector=False)
    return generate

  rows = [("ddim50", "mld", 50)] + [(f"lcm{k}", "lcm", k) for k in args.lcm_steps]
  if args.replications < 2:
    sys.exit("--protocol needs --replications >= 2 (the first one fills the table)")
  print(f"\nprotocol generation: {args.captions} distinct captions x {args.replications} "
        f"replications, chunks of {chunk}, float32; seconds: all the replications, the first, "
        "and the median of the others")
  header = (f"{'method':>8} | {'encode every call':>26} | {'each caption once':>26} | "
            f"{'speed-up':>8} | {'later reps':>10}")
  print(header)
  print("-" * len(header))
  for name, which, steps in rows:
    pipe = pipes[which]
    uncached(pipe, steps)(captions, lengths, jax.random.key(99))  # compile every shape
    seconds = {}
    for way in ("uncached", "cached"):  # the cached table starts empty: replication 0 encodes
      generate = (uncached(pipe, steps) if way == "uncached" else
                  protocol.pipeline_generator(pipe, False, steps=steps, batch_size=chunk))
      reps = []
      for rep in range(args.replications):
        start = time.perf_counter()
        generate(captions, lengths, jax.random.key(rep))
        reps.append(time.perf_counter() - start)
      seconds[way] = (sum(reps), reps[0], statistics.median(reps[1:]))
    cell = lambda t: f"{t[0]:7.2f} ({t[1]:5.2f}, {t[2]:5.2f})"
    print(f"{name:>8} | {cell(seconds['uncached']):>26} | {cell(seconds['cached']):>26} | "
          f"{seconds['uncached'][0] / seconds['cached'][0]:>7.2f}x | "
          f"{seconds['uncached'][2] / seconds['cached'][2]:>9.2f}x", flush=True)
  tmp.cleanup()


def quality(args) -> None:
  """FID / R-precision of the demo's LEAD stages at DDIM 50 and LCM 1/2/4 steps."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  from lead_jax import checkpoints  # pylint: disable=import-outside-toplevel
  from lead_jax import workdir as stage_io  # pylint: disable=import-outside-toplevel
  from lead_jax.evaluation import protocol  # pylint: disable=import-outside-toplevel
  from lead_jax.metrics import embedders  # pylint: disable=import-outside-toplevel

  workdirs = pathlib.Path(args.quality) / "workdirs"
  ddim = Pipeline.from_workdir(workdirs / "projector")
  fast = Pipeline.from_workdir(workdirs / "projector", denoiser_workdir=str(workdirs / "lcm"))
  mean, std = np.asarray(ddim.mean), np.asarray(ddim.std)
  embedder = embedders.TrainedEmbedder(stage_io.load_trained_evaluator(args.evaluator), mean, std)
  config = ml_collections.ConfigDict(checkpoints.load_config(workdirs / "projector"))
  config.data.update(batch_size=32, prefetch=0)
  batches = protocol.stream_batches(config, ddim.text_encoder, args.split)
  methods = {"LEAD DDIM 50": protocol.pipeline_generator(ddim, True, steps=50),
             "MLD DDIM 50": protocol.pipeline_generator(ddim, False, steps=50)}
  methods.update(protocol.lcm_methods(fast, steps=tuple(args.lcm_steps)))
  settings = protocol.ProtocolSettings(replications=args.replications, mm_prompts=0)
  result = protocol.evaluate(embedder, batches, methods, settings, mean, std,
                             progress=lambda s: print(s, file=sys.stderr))
  eff = result["settings"]["effective"]
  columns = ["FID"] + [f"R@{k + 1}" for k in range(eff["top_k"])] + ["Diversity"]
  print(f"\nquality on the demo model: {args.replications} replications of the {args.split!r} "
        f"split (R-precision in groups of {eff['group_size']})")
  print(f"{'method':>26} | " + " | ".join(f"{c:>14}" for c in columns))
  for name, row in result["summary"].items():
    cell = lambda k: f"{row[k]['mean']:.3f} ±{row[k]['ci95']:.3f}"
    print(f"{name:>26} | " + " | ".join(f"{cell(c):>14}" for c in columns))


def mti(args) -> None:
  """Motion textual inversion seconds per step (lead space, MiniLM, full-size models)."""
  from lead_jax.commands.pipeline_args import (  # pylint: disable=import-outside-toplevel
      inversion_config)
  from lead_jax.text import load_text_encoder  # pylint: disable=import-outside-toplevel
  from lead_jax.train import inversion  # pylint: disable=import-outside-toplevel
  mean, std = load_stats()
  vae, den, proj = MotionVAE(), LatentDenoiser(text_dim=384), Projector(text_dim=384)
  params = {"vae": init_params("vae", vae, jax.random.key(0)),
            "denoiser": init_params("denoiser", den, jax.random.key(1)),
            "projector": jax.jit(lambda k: init_params("projector", proj, k))(jax.random.key(2))}
  rng = np.random.default_rng(0)
  motions = [mean + std * rng.normal(size=(120, 263)).astype(np.float32)]
  print("\nMTI (lead space, batch 4 x 64 frames, MiniLM, full-size models)")
  for dtype in args.dtypes:
    pipe = Pipeline(vae=vae, denoiser=den, projector=proj, params=params,
                    text_encoder=load_text_encoder("minilm"), mean=mean, std=std,
                    matmul_dtype=dtype)
    run = inversion.invert(pipe, motions, f"<dance-{dtype}>", "walk",
                           inversion.InversionSettings.from_config(
                               inversion_config(None), space="lead", steps=6))
    print(f"  {dtype}: {run.seconds_per_step:.3f} s/step after a {run.compile_seconds:.1f} s "
          f"first step; peak {peak_rss_mib():.0f} MiB")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
  parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                      choices=("float32", "bfloat16"))
  parser.add_argument("--lcm-steps", type=int, nargs="+", default=[1, 2, 4])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--torch-threads", type=int, default=2,
                      help="torch threads (on a busy CPU, 1 can beat 2)")
  parser.add_argument("--skip-torch", action="store_true")
  parser.add_argument("--profile", action="store_true", help="time the pieces of an LCM call")
  parser.add_argument("--quality", default=None, help="a `lead-jax demo` output folder")
  parser.add_argument("--evaluator", default=None, help="trained evaluator workdir (--quality)")
  parser.add_argument("--replications", type=int, default=3)
  parser.add_argument("--split", default="all",
                      help="split scored by --quality (the demo's 15 clips: 'all'; 'test' has 2)")
  parser.add_argument("--mti", action="store_true", help="motion textual inversion s/step")
  parser.add_argument("--protocol", action="store_true",
                      help="evaluation-protocol generation: captions encoded per call vs once")
  parser.add_argument("--captions", type=int, default=128, help="distinct captions (--protocol)")
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}")
  if args.quality:
    if not args.evaluator:
      sys.exit("--quality needs --evaluator (a workdir of configs/evaluator_demo.py)")
    quality(args)
  elif args.mti:
    mti(args)
  elif args.protocol:
    protocol_generation(args)
  else:
    end_to_end(args)
  print(f"load average at the end {os.getloadavg()[0]:.1f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
