"""Forward kinematics of any joint tree and key-frame resampling, in NumPy float64 (motion files).

The BVH and DeepMimic importers (`lead_jax.io.bvh`, `lead_jax.io.deepmimic`) pose their skeletons
with `forward_kinematics` from per-frame local rotations and translations, and resample clips with
`lerp_keyframes` (positions) and `slerp_keyframes` (rotations, scipy's `Slerp`). The jittable FK
of the HumanML3D skeletons, with their chain semantics, is `motion.skeleton.forward_kinematics`.

  positions, global_rotations = forward_kinematics(local_rotations, translations, parents)
  root_pos = lerp_keyframes(key_times, root_pos, times)           # [M, 3]
  local_quats = slerp_keyframes(key_times, local_quats, times)     # [M, J, 4]
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import transform

from lead_jax.errors import InputError
from lead_jax.motion import rotations


def forward_kinematics(local_rotations, translations, parents) -> tuple[np.ndarray, np.ndarray]:
  """Composes local transforms down a tree: `G_j = G_parent R_j`, `p_j = p_parent + G_parent t_j`
  (a root: `G = R`, `p = t`).

  Args:
    local_rotations: [T, J, 3, 3] joint-to-parent rotation matrices (`v_parent = R v + t`).
    translations: [T, J, 3] joint origins in the parent's frame (a root's: its position in the
      world).
    parents: [J] parent indices, -1 for a root; parents precede children.
  Returns:
    positions [T, J, 3] and global rotations [T, J, 3, 3], float64.
  """
  local_rotations = np.asarray(local_rotations, np.float64)
  parents = np.asarray(parents, np.int64)
  num_joints = parents.shape[0]
  if local_rotations.ndim != 4 or local_rotations.shape[1:] != (num_joints, 3, 3):
    raise InputError(f"forward_kinematics: local rotations must be [T, J={num_joints}, 3, 3], "
                     f"found {local_rotations.shape}")
  num_frames = local_rotations.shape[0]
  translations = np.asarray(translations, np.float64)
  if translations.shape != (num_frames, num_joints, 3):
    raise InputError(f"forward_kinematics: translations must be [T={num_frames}, "
                     f"J={num_joints}, 3], found {translations.shape}")
  bad = [j for j, p in enumerate(parents) if p >= j]
  if bad:
    raise InputError(f"forward_kinematics: parents {parents.tolist()} must list every parent "
                     f"before its children (joint {bad[0]} has parent {parents[bad[0]]})")
  positions = np.empty((num_frames, num_joints, 3), np.float64)
  global_rotations = np.empty((num_frames, num_joints, 3, 3), np.float64)
  for joint, parent in enumerate(parents):
    if parent < 0:
      positions[:, joint] = translations[:, joint]
      global_rotations[:, joint] = local_rotations[:, joint]
    else:
      parent_rotation = global_rotations[:, parent]
      positions[:, joint] = positions[:, parent] + np.einsum(
          "tij,tj->ti", parent_rotation, translations[:, joint])
      global_rotations[:, joint] = parent_rotation @ local_rotations[:, joint]
  return positions, global_rotations


def _check_keyframes(fn: str, key_times, values, times, trailing: tuple[int, ...] = ()):
  """`key_times` [N] strictly increasing, `values` [N, ..., *trailing], `times` [M], as float64."""
  key_times, values, times = (np.asarray(a, np.float64) for a in (key_times, values, times))
  n = key_times.shape[0] if key_times.ndim == 1 else -1
  shape = ", ".join(["N", "..."] + [str(d) for d in trailing])
  if (n < 1 or values.ndim < 1 + len(trailing) or values.shape[0] != n or times.ndim != 1
      or values.shape[values.ndim - len(trailing):] != trailing):
    raise InputError(f"{fn}: expected key_times [N], values [{shape}] and times [M], found "
                     f"{key_times.shape}, {values.shape} and {times.shape}")
  if np.any(np.diff(key_times) <= 0):
    raise InputError(f"{fn}: key_times must be strictly increasing")
  return key_times, values, np.clip(times, key_times[0], key_times[-1])


def lerp_keyframes(key_times, values, times) -> np.ndarray:
  """Linear interpolation of key-framed `values` [N, ...] at `key_times` [N] (strictly increasing)
  to `times` [M] (clamped to the key range) -> [M, ...] float64."""
  key_times, values, times = _check_keyframes("lerp_keyframes", key_times, values, times)
  n = key_times.shape[0]
  if n == 1:
    return np.broadcast_to(values[0], times.shape + values.shape[1:]).copy()
  hi = np.clip(np.searchsorted(key_times, times, side="right"), 1, n - 1)
  lo = hi - 1
  alpha = np.clip((times - key_times[lo]) / (key_times[hi] - key_times[lo]), 0.0, 1.0)
  alpha = alpha.reshape(alpha.shape + (1,) * (values.ndim - 1))
  return (1.0 - alpha) * values[lo] + alpha * values[hi]


def slerp_keyframes(key_times, quats, times) -> np.ndarray:
  """Key-framed rotations `quats` [N, ..., 4] (w, x, y, z; not necessarily unit) at `key_times` [N]
  (strictly increasing), sampled at `times` [M] (clamped to the key range) by slerp along the
  shortest arc between the surrounding key frames (scipy's `Slerp`, per trailing index)
  -> unit quaternions [M, ..., 4] float64."""
  key_times, quats, times = _check_keyframes("slerp_keyframes", key_times, quats, times, (4,))
  if np.any(np.linalg.norm(quats, axis=-1) < 1e-12):
    raise InputError("slerp_keyframes: quats contain zero-length quaternions")
  n = key_times.shape[0]
  flat = quats.reshape(n, -1, 4)
  if n == 1:
    out = np.broadcast_to(rotations.qnormalize(flat), (times.shape[0],) + flat.shape[1:])
  else:
    # scipy's `Slerp` for every trailing index at once: key frames k, k+1 around each time,
    # r(t) = r_k * exp(alpha * log(r_k^-1 r_{k+1})), alpha the fraction of the interval.
    lo = np.maximum(np.searchsorted(key_times, times) - 1, 0)  # scipy's choice at key times
    hi = lo + 1
    alpha = (times - key_times[lo]) / (key_times[hi] - key_times[lo])
    width = flat.shape[1]
    r_lo = rotations.to_scipy(flat[lo])
    delta = (r_lo.inv() * rotations.to_scipy(flat[hi])).as_rotvec()
    step = transform.Rotation.from_rotvec(delta * np.repeat(alpha, width)[:, None])
    out = rotations.from_scipy(r_lo * step, (times.shape[0], width))
  return out.reshape(times.shape + quats.shape[1:])
