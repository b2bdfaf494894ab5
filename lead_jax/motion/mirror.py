"""Left/right mirroring of joints and of HumanML3D features (the `M` clips of HumanML3D).

Mirroring is the reflection x -> -x together with the swap of left and right joints. On features it
is applied block by block, without recovering joints:
  root_rot_vel -> negated (yaw turns the other way)      root_lin_vel -> x negated
  ric, local_vel -> x negated, left/right joints swapped  root_y -> unchanged
  rot6d -> R -> M R M (M = diag(-1, 1, 1)), joints swapped  foot_contact -> left/right swapped
Both functions are exact involutions (sign flips and permutations only).

Example:
  m = mirror_features(extract_features(joints))   # ~= extract_features(mirror_joints(joints))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError
from lead_jax.motion.features import feature_slices, features_dim
from lead_jax.motion.skeleton import SkeletonSpec, resolve_skeleton

Array = jax.Array


def mirror_joints(joints, skeleton: str | SkeletonSpec = "t2m") -> Array | np.ndarray:
  """[..., J, 3] -> [..., J, 3]: x negated, left/right joints swapped (a NumPy array for NumPy
  input, as the importers pass; a JAX array otherwise)."""
  skel = resolve_skeleton(skeleton)
  xp = np if isinstance(joints, np.ndarray) else jnp
  joints = xp.asarray(joints)
  if joints.ndim < 2 or joints.shape[-2:] != (skel.joints_num, 3):
    raise InputError(f"mirror_joints: joints must have shape [..., {skel.joints_num}, 3] for skeleton "
                     f"{skel.name!r}, found {tuple(joints.shape)}")
  flip = xp.asarray([-1.0, 1.0, 1.0], joints.dtype if xp.issubdtype(joints.dtype, xp.floating) else xp.float32)
  return joints[..., skel.mirror_permutation, :] * flip


def _feature_mirror_map(skel: SkeletonSpec) -> tuple[np.ndarray, np.ndarray]:
  """(source index [D], sign [D]) with `mirrored[..., i] = sign[i] * x[..., src[i]]`."""
  num = skel.joints_num
  sl = feature_slices(num)
  src = np.arange(features_dim(num))
  sign = np.ones(features_dim(num), np.float32)
  perm = skel.mirror_permutation
  sign[sl["root_rot_vel"]] = -1.0
  sign[sl["root_lin_vel"].start] = -1.0  # x of (x, z)
  # ric: joints 1..J-1.
  for block, first, width, signs in (("ric", 1, 3, (-1, 1, 1)),
                                     ("rot6d", 1, 6, (1, -1, -1, -1, 1, 1)),
                                     ("local_vel", 0, 3, (-1, 1, 1))):
    start = sl[block].start
    for j in range(first, num):
      dst = start + (j - first) * width
      src[dst:dst + width] = start + (perm[j] - first) * width + np.arange(width)
      sign[dst:dst + width] = signs
  fc = sl["foot_contact"].start
  src[fc:fc + 4] = fc + np.array([2, 3, 0, 1])  # [l, l, r, r] -> [r, r, l, l]
  return src, sign


def mirror_features(features, skeleton: str | SkeletonSpec = "t2m") -> Array:
  """[..., D] -> [..., D] features of the mirrored motion (see the module docstring).

  The 6D block holds the first two columns of each local rotation R; for `M R M` they become
  `(R00, -R10, -R20)` and `(-R01, R11, R21)`.
  """
  skel = resolve_skeleton(skeleton)
  x = jnp.asarray(features)
  if x.ndim < 1 or x.shape[-1] != skel.feature_dim:
    raise InputError(f"mirror_features: features must have shape [..., {skel.feature_dim}] for skeleton "
                     f"{skel.name!r}, found {tuple(x.shape)}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  src, sign = _feature_mirror_map(skel)
  return x[..., src] * jnp.asarray(sign, x.dtype)
