"""Render joints [T, 22, 3] or features [T, 263] as a stick-figure animation or key-frame strip.

Usage:
  lead-jax render data/deepmimic/new_joints/humanoid3d_walk.npy --out walk.gif
  lead-jax render a.npy b.npy --caption "a person walks" --caption "a person runs" --out ab.mp4
  lead-jax render gen.npy --mean data/Mean.npy --std data/Std.npy --out gen.png --frames 8

`.mp4` needs ffmpeg on PATH (otherwise a `.gif` is written next to it); `.png` gives a strip of
key frames (one row per motion). Features are de-normalised with --mean/--std when given.
"""

from __future__ import annotations

import argparse

from lead_jax.errors import InputError
from lead_jax.io.arrays import load_npy


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("inputs", nargs="+", help=".npy joints [T, 22, 3] or features [T, 263]")
  parser.add_argument("--out", required=True, help="output .mp4, .gif or .png")
  parser.add_argument("--caption", action="append", default=[], help="one per input, in order")
  parser.add_argument("--fps", type=float, default=20.0)
  parser.add_argument("--mean", default=None, help="Mean.npy to de-normalise features")
  parser.add_argument("--std", default=None, help="Std.npy to de-normalise features")
  parser.add_argument("--frames", type=int, default=8, help="key frames of a .png strip")


def _load_stat(path: str | None):
  if path is None:
    return None
  return load_npy(path, "statistics file")


def run(args: argparse.Namespace) -> int:
  from lead_jax.io import render  # pylint: disable=g-import-not-at-top
  mean, std = _load_stat(args.mean), _load_stat(args.std)
  joints = [render.load_motion(p, mean, std) for p in args.inputs]
  if len(args.caption) > len(joints):
    raise InputError(f"{len(args.caption)} --caption for {len(joints)} inputs")
  suffix = args.out.lower().rsplit(".", 1)[-1]
  if suffix == "png":
    path = render.render_strip(joints, args.out, args.caption, num_frames=args.frames)
  elif suffix in ("gif", "mp4"):
    path = render.render_animation(joints, args.out, args.caption, fps=args.fps)
  else:
    raise InputError(f"--out must end in .mp4, .gif or .png, found {args.out}")
  print(f"wrote {path}")
  return 0
