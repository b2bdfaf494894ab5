"""Write HumanML3D joints [T, 22, 3] or features [T, 263] as a BVH file on the SMPL 22-joint skeleton.

The input's shape decides: [T, 22, 3] is joint positions (metres, Y up), [T, 263] is features
(de-normalised; pass --mean/--std if they are normalised). Features go through FK of their 6D
rotations (or the RIC joints with --ric), then inverse kinematics onto the BVH skeleton.

Example:
  lead-jax export-bvh data/deepmimic/new_joint_vecs/humanoid3d_walk.npy --out walk.bvh
  lead-jax export-bvh samples/0.npy --mean Mean.npy --std Std.npy --out sample.bvh --unit cm
"""

from __future__ import annotations

import argparse

import numpy as np

from lead_jax.errors import InputError
from lead_jax.io.arrays import load_npy


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("input", help="a .npy file: joints [T, 22, 3] or features [T, 263]")
  parser.add_argument("--out", required=True, help="the BVH file to write")
  parser.add_argument("--fps", type=float, default=20.0, help="frame rate (default 20, HumanML3D)")
  parser.add_argument("--mean", help="Mean.npy (263,) to de-normalise features")
  parser.add_argument("--std", help="Std.npy (263,) to de-normalise features")
  parser.add_argument("--ric", action="store_true",
                      help="features: use the RIC joint positions instead of FK of the 6D rotations")
  parser.add_argument("--rotation-order", default="ZYX", choices=["ZYX", "ZXY", "XYZ", "XZY", "YXZ", "YZX"],
                      help="Euler channel order of the BVH (default ZYX)")
  parser.add_argument("--unit", default="m", choices=["m", "cm", "mm"], help="BVH length unit (default m)")


def run(args: argparse.Namespace) -> int:
  from lead_jax.io import export  # Heavy (JAX): imported when the command runs.

  if not args.fps > 0:
    raise InputError(f"--fps must be positive, found {args.fps:g}")
  data = load_npy(args.input, "input")
  if (args.mean is None) != (args.std is None):
    raise InputError("pass both --mean and --std, or neither")
  check_finite(data, args.input)
  if data.ndim == 3 and data.shape[1:] == (22, 3):
    if args.mean is not None:
      raise InputError(f"{args.input}: --mean/--std apply to features [T, 263], but the input is "
                       f"joints {data.shape}")
    motion = export.joints_to_bvh(data, args.out, args.fps, args.rotation_order, args.unit)
    kind = "joints"
  elif data.ndim == 2 and data.shape[1] == 263:
    if args.mean is not None:
      mean, std = load_npy(args.mean, "--mean"), load_npy(args.std, "--std")
      for name, path, stat in (("--mean", args.mean, mean), ("--std", args.std, std)):
        if stat.shape != (263,):
          raise InputError(f"{name} must have shape (263,), found {stat.shape}")
        check_finite(stat[None], path)
      data = data * std + mean
      check_finite(data, f"{args.input} de-normalised with {args.mean} and {args.std}")
    motion = export.features_to_bvh(data, args.out, not args.ric, args.fps, args.rotation_order,
                                    args.unit)
    kind = "features"
  else:
    raise InputError(f"{args.input}: expected joints [T, 22, 3] or features [T, 263], "
                     f"found shape {data.shape}")
  print(f"wrote {args.out}: {motion.num_frames} frames at {args.fps:g} fps from {kind} {data.shape}")
  return 0


def check_finite(data, source: str) -> None:
  """`InputError` naming `source` and the first frame when `data [T, ...]` holds NaN or inf."""
  finite = np.isfinite(data).reshape(data.shape[0], -1).all(axis=1) if data.ndim else \
      np.isfinite(data)[None]
  if not finite.all():
    bad = np.flatnonzero(~finite)
    raise InputError(f"{source}: NaN or infinite values in {bad.size} of {finite.size} frame(s), "
                     f"first frame {bad[0]}; nothing written")
