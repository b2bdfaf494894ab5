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
{prompt, sample, length, projector, truncated, features, joints, bvh, animation, error} (paths
relative to --out; rewritten after every batch).

--length defaults to the stages' longest training clip (`data.max_len`); a shorter length than
their shortest (`data.min_len`) and a prompt longer than the text encoder's context (cut, and
`truncated` in index.json) warn. A motion that comes out non-finite (NaN, e.g. from an extreme
--guidance-scale) is not written, and a BVH export or animation that fails for one motion leaves
the others: each is named (prompt, sample) on stderr and in index.json (`error`), and the exit
status is 1. Bad arguments (--out naming a file, --fps 0) fail before the stages load.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import warnings

from lead_jax.commands import pipeline_args
from lead_jax.errors import InputError, LeadJaxWarning, MissingFileError, output_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True,
                      help="projector stage workdir (LEAD), denoiser stage workdir (MLD mode) or LCM "
                           "stage workdir (MotionLCM)")
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--prompt", action="append", help="a caption (repeatable)")
  source.add_argument("--prompts", help="file of lines 'LENGTH caption' or 'caption'")
  parser.add_argument("--length", type=int, default=None,
                      help="frames (20 fps) when not given per line (default: the stages' "
                           "data.max_len)")
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


def read_prompts(path: str | pathlib.Path, default_length: int | None
                 ) -> list[tuple[str, int | None]]:
  """`[(caption, length)]` from a file of `LENGTH caption` or `caption` lines (`default_length`
  for the latter; None = decided once the stages are loaded)."""
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


def check_output_arguments(args: argparse.Namespace) -> pathlib.Path:
  """Checks --out, --fps, --batch-size, --num-samples, --length before anything slow; makes --out
  (so a read-only or full disk is found now, not after sampling). Returns the output folder."""
  if args.batch_size < 1 or args.num_samples < 1:
    raise InputError("--batch-size and --num-samples must be >= 1")
  if not args.fps > 0:
    raise InputError(f"--fps must be positive, found {args.fps:g}")
  if args.length is not None and args.length < 1:
    raise InputError(f"--length must be >= 1, found {args.length}")
  out = pathlib.Path(args.out)
  if out.exists() and not out.is_dir():
    raise InputError(f"--out {out} is a file; give a folder (it holds features/, joints/, bvh/, "
                     "animations/ and index.json)")
  try:
    out.mkdir(parents=True, exist_ok=True)
    probe = out / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
  except OSError as e:
    raise output_error(e, f"the output folder {out}") from None
  return out


def write_index(out: pathlib.Path, index: list[dict]) -> None:
  """index.json, replaced atomically (a crash leaves the previous batch's complete index)."""
  tmp = out / "index.json.tmp"
  try:
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / "index.json")
  except OSError as e:
    raise output_error(e, f"{out / 'index.json'}") from None


def run(args: argparse.Namespace) -> int:
  import jax  # pylint: disable=import-outside-toplevel
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  out = check_output_arguments(args)
  if args.prompts:
    prompts = read_prompts(args.prompts, args.length)
  else:
    prompts = [(p, args.length) for p in args.prompt]
  from lead_jax.generate.prompts import check_texts  # pylint: disable=import-outside-toplevel
  from lead_jax.text.concepts import load_concept  # pylint: disable=import-outside-toplevel
  check_texts([p for p, _ in prompts])
  concepts = [load_concept(path) for path in args.concept]
  pipe = pipeline_args.load_pipeline(args)
  use_projector = pipe.has_projector and not args.no_projector
  prompts = [(p, pipe.max_frames if n is None else n) for p, n in prompts]
  # Check every prompt before the first (slow) batch.
  pipe.check_lengths([n for _, n in prompts], len(prompts))
  short = [(i, n) for i, (_, n) in enumerate(prompts) if n < pipe.min_frames]
  if short:
    shown = ", ".join(f"prompt {i} ({n})" for i, n in short[:5]) + (" ..." if len(short) > 5 else "")
    warnings.warn(f"{len(short)} length(s) below {pipe.min_frames} frames, the shortest clip the "
                  f"stages trained on (data.min_len): {shown}; such motions are untested",
                  LeadJaxWarning, stacklevel=1)

  from lead_jax.io.generated import failed_entries, save_generation  # pylint: disable=import-outside-toplevel

  per_batch = max(1, args.batch_size // args.num_samples)
  key = jax.random.key(args.seed)
  index: list[dict] = []
  starts = range(0, len(prompts), per_batch)
  for start in tqdm(starts, desc="sample", unit="batch", disable=len(starts) < 2):
    chunk = prompts[start:start + per_batch]
    result = pipe.generate([p for p, _ in chunk], [n for _, n in chunk], key,
                           guidance_scale=args.guidance_scale, steps=args.steps,
                           use_projector=use_projector, scheduler=args.scheduler,
                           num_samples=args.num_samples,
                           prompt_ids=list(range(start, start + len(chunk))), concepts=concepts)
    for local, cut in enumerate(result["truncated"]):
      if cut:
        warnings.warn(f"prompt {start + local} is longer than the text encoder's context "
                      f"({pipe.text_encoder.max_length} tokens) and was cut: "
                      f"{chunk[local][0][:80]!r}", LeadJaxWarning, stacklevel=1)
    index += save_generation(result, out, prompt_offset=start, fps=args.fps,
                             bvh=not args.no_bvh, animation=not args.no_animation)
    write_index(out, index)
  failed = failed_entries(index)
  written = sum(e["features"] is not None for e in index)
  print(f"wrote {written} of {len(index)} motions to {out} (index.json)")
  if failed:
    print(f"lead-jax sample: {len(failed)} motion(s) failed:", file=sys.stderr)
    for e in failed:
      print(f"  prompt {e['prompt']!r} sample {e['sample']}: {e['error']}", file=sys.stderr)
    return 1
  return 0
