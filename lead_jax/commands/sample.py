r"""Generate motions from text with the trained stages (LEAD, or MLD with --no-projector).

Usage:
  lead-jax sample --workdir runs/projector --prompt "a person walks forward." --length 120 --out gen
  lead-jax sample --workdir runs/projector --prompts prompts.txt --num-samples 3 --seed 1 --out gen
  lead-jax sample --workdir runs/denoiser --prompt "someone jumps" --out gen_mld   # MLD mode
  lead-jax sample --workdir runs/lcm --steps 1 --prompt "someone jumps" --out gen_lcm  # MotionLCM
  lead-jax sample --workdir runs/projector --denoiser-workdir runs/lcm --scheduler lcm --steps 4 \
      --prompt "someone jumps" --out gen_lead_lcm                          # LEAD-MotionLCM
  lead-jax sample --workdir runs/projector --concept dance-x.npz --prompt "a person <dance-x>" \
      --out gen_concept

`--workdir` is the last trained stage's workdir (the projector's; the denoiser's for MLD mode; an
LCM stage's for MotionLCM, sampled with the LCM scheduler at 1, 2 or 4 steps); its config names the
workdirs of the stages it depends on (override with --denoiser-workdir, which may name an LCM
stage, and --vae-workdir). A prompts file has one prompt per line, `LENGTH caption` (as MLD's example file) or
just `caption` (then --length applies); blank lines and lines starting with '#' are skipped.

Writes, per motion `P<prompt>_S<sample>`: `features/*.npy` ([T, 263], de-normalised),
`joints/*.npy` ([T, 22, 3]), `bvh/*.bvh`, `animations/*.gif`, and `index.json`: a list of
{prompt, sample, length, projector, features, joints, bvh, animation} (paths relative to --out).
"""

from __future__ import annotations

import argparse
import json
import pathlib

from lead_jax.commands import pipeline_args
from lead_jax.errors import InputError, MissingFileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True,
                      help="projector stage workdir (LEAD), denoiser stage workdir (MLD mode) or LCM "
                           "stage workdir (MotionLCM)")
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--prompt", action="append", help="a caption (repeatable)")
  source.add_argument("--prompts", help="file of lines 'LENGTH caption' or 'caption'")
  parser.add_argument("--length", type=int, default=196, help="frames (20 fps) when not given per line")
  parser.add_argument("--num-samples", type=int, default=1, help="motions per prompt")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--guidance-scale", type=float, default=7.5)
  parser.add_argument("--steps", type=int, default=None,
                      help="sampler steps (default: 50 for ddim/ddpm, 1 for lcm)")
  parser.add_argument("--scheduler", choices=("ddim", "ddpm", "lcm"), default=None,
                      help="default: ddim for an MLD denoiser, lcm for a consistency model")
  parser.add_argument("--no-projector", action="store_true",
                      help="skip LEAD's projector round trip (the MLD baseline)")
  parser.add_argument("--concept", action="append", default=[],
                      help="concept .npz from `lead-jax invert` (repeatable)")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--batch-size", type=int, default=32, help="motions per generation call")
  parser.add_argument("--fps", type=float, default=20.0)
  parser.add_argument("--no-bvh", action="store_true", help="do not write BVH files")
  parser.add_argument("--no-animation", action="store_true", help="do not render GIFs")
  pipeline_args.add_pipeline_arguments(parser)


def read_prompts(path: str | pathlib.Path, default_length: int) -> list[tuple[str, int]]:
  """`[(caption, length)]` from a file of `LENGTH caption` or `caption` lines."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"prompts file not found: {path}")
  prompts = []
  for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    head, _, rest = line.partition(" ")
    if head.lstrip("+-").isdigit():
      if not rest.strip():
        raise InputError(f"{path}:{number}: a length ({head}) without a caption")
      prompts.append((rest.strip(), int(head)))
    else:
      prompts.append((line, default_length))
  if not prompts:
    raise InputError(f"{path}: no prompts (expected lines 'LENGTH caption' or 'caption')")
  return prompts


def run(args: argparse.Namespace) -> int:
  import jax  # pylint: disable=import-outside-toplevel
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  if args.prompts:
    prompts = read_prompts(args.prompts, args.length)
  else:
    prompts = [(p, args.length) for p in args.prompt]
  if args.batch_size < 1 or args.num_samples < 1:
    raise InputError("--batch-size and --num-samples must be >= 1")
  from lead_jax.generate.prompts import check_texts  # pylint: disable=import-outside-toplevel
  from lead_jax.text.concepts import load_concept  # pylint: disable=import-outside-toplevel
  pipe = pipeline_args.load_pipeline(args)
  concepts = [load_concept(path) for path in args.concept]
  use_projector = pipe.has_projector and not args.no_projector
  # Check every prompt before the first (slow) batch.
  pipe.check_lengths([n for _, n in prompts], len(prompts))
  check_texts([p for p, _ in prompts])

  from lead_jax.io.generated import save_generation  # pylint: disable=import-outside-toplevel

  out = pathlib.Path(args.out)
  per_batch = max(1, args.batch_size // args.num_samples)
  key = jax.random.key(args.seed)
  index = []
  starts = range(0, len(prompts), per_batch)
  for start in tqdm(starts, desc="sample", unit="batch", disable=len(starts) < 2):
    chunk = prompts[start:start + per_batch]
    result = pipe.generate([p for p, _ in chunk], [n for _, n in chunk], key,
                           guidance_scale=args.guidance_scale, steps=args.steps,
                           use_projector=use_projector, scheduler=args.scheduler,
                           num_samples=args.num_samples,
                           prompt_ids=list(range(start, start + len(chunk))), concepts=concepts)
    index += save_generation(result, out, prompt_offset=start, fps=args.fps,
                             bvh=not args.no_bvh, animation=not args.no_animation)
  (out / "index.json").write_text(json.dumps(index, indent=1))
  print(f"wrote {len(index)} motions to {out} (index.json)")
  return 0
