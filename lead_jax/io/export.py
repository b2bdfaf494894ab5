"""Writing HumanML3D motions (joints or 263-d features) as BVH on the SMPL 22-joint skeleton.

The BVH has 6 channels on the root (`pelvis`) and 3 rotation channels on every other joint
(default order `Zrotation Yrotation Xrotation`), which Blender, MotionBuilder and most viewers open.

Rest pose (`fit_rest_offsets`): each bone has the clip's median length along HumanML3D's
`raw_offsets` direction, except the children of the two branching joints (pelvis -> hips, spine1;
spine3 -> neck, collars), whose rest vectors are the clip's own average geometry expressed in the
branching joint's frame: a joint has one rotation for all its children, so only the true angles
between those bones let the BVH reproduce the positions.

Rotations (`bvh_inverse_kinematics`), per frame: a branching joint's global rotation is the
least-squares (Kabsch) fit of its children's rest vectors to their current bones; a joint with one
child takes the shortest-arc rotation, in its parent's frame, from the rest bone to the current
bone (no twist); leaves keep their parent's orientation. Positions then round-trip exactly for a
clip whose branching geometry is rigid (real data, retargeted mocap), and to within that
geometry's non-rigidity otherwise (generated motions).

Example:
  joints_to_bvh(np.load("new_joints/000000.npy"), "000000.bvh")
  features_to_bvh(np.load("new_joint_vecs/000000.npy"), "000000.bvh", use_rotations=False)
"""

from __future__ import annotations

import os

import numpy as np

from lead_jax.errors import InputError
from lead_jax.io import bvh
from lead_jax.io.retarget import UNITS
from lead_jax.motion import features as motion_features
from lead_jax.motion.skeleton import get_skeleton

_EPS = 1e-9


def _children(parents) -> list[list[int]]:
  children: list[list[int]] = [[] for _ in parents]
  for joint, parent in enumerate(parents):
    if parent >= 0:
      children[parent].append(joint)
  return children


def _check_joints(joints, fn: str) -> np.ndarray:
  joints = np.asarray(joints)
  if joints.ndim != 3 or joints.shape[1:] != (22, 3) or joints.shape[0] < 1:
    raise InputError(f"{fn}: joints must be [T, 22, 3] (HumanML3D / SMPL body joints), "
                     f"found shape {joints.shape}")
  joints = joints.astype(np.float64)
  if not np.isfinite(joints).all():
    bad = np.flatnonzero(~np.isfinite(joints).all(axis=(1, 2)))
    raise InputError(f"{fn}: joints contain NaN or infinite values in {bad.size} frame(s), first {bad[0]}")
  return joints


def kabsch(rest: np.ndarray, current: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
  """Rotations [T, 3, 3] minimising sum_c w_c |R rest_c - current_tc|^2; rest [C, 3], current [T, C, 3]."""
  w = np.ones(rest.shape[0]) if weights is None else np.asarray(weights, np.float64)
  h = np.einsum("c,ci,tcj->tij", w, rest, current)
  u, _, vt = np.linalg.svd(h)
  d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
  d = np.where(d == 0, 1.0, d)
  fix = np.broadcast_to(np.eye(3), h.shape).copy()
  fix[:, 2, 2] = d
  return np.swapaxes(vt, -1, -2) @ fix @ np.swapaxes(u, -1, -2)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Shortest-arc rotation matrices [..., 3, 3] turning direction a [..., 3] onto b [..., 3].

  Identity where either vector has zero length; a half turn about an axis perpendicular to `a`
  where they are opposite.
  """
  a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
  na = np.linalg.norm(a, axis=-1, keepdims=True)
  nb = np.linalg.norm(b, axis=-1, keepdims=True)
  degenerate = (na < _EPS) | (nb < _EPS)
  a = a / np.where(degenerate, 1.0, na)
  b = b / np.where(degenerate, 1.0, nb)
  w = 1.0 + np.sum(a * b, axis=-1, keepdims=True)
  xyz = np.cross(a, b)
  opposite = (w < 1e-10)
  # Perpendicular axis for opposite vectors: a x (the basis vector least aligned with a).
  basis = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
  perp = np.cross(a, basis)
  perp /= np.maximum(np.linalg.norm(perp, axis=-1, keepdims=True), _EPS)
  quat = np.where(opposite, np.concatenate([np.zeros_like(w), perp], -1),
                  np.concatenate([w, xyz], -1))
  quat = np.where(degenerate, np.array([1.0, 0.0, 0.0, 0.0]), quat)
  quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
  qw, qx, qy, qz = np.moveaxis(quat, -1, 0)
  return np.stack([
      1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw),
      2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw),
      2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy),
  ], axis=-1).reshape(quat.shape[:-1] + (3, 3))


def fit_rest_offsets(joints: np.ndarray) -> np.ndarray:
  """Rest offsets [22, 3] of a clip [T, 22, 3] (see the module docstring)."""
  joints = _check_joints(joints, "fit_rest_offsets")
  skel = get_skeleton("t2m")
  parents = np.asarray(skel.parents)
  raw = np.asarray(skel.raw_offsets, np.float64)
  bones = joints - joints[:, np.maximum(parents, 0)]
  lengths = np.median(np.linalg.norm(bones, axis=-1), axis=0)
  offsets = raw * lengths[:, None]
  offsets[0] = 0.0
  for joint, kids in enumerate(_children(parents)):
    if len(kids) < 2:
      continue
    # Frame of the branching joint: fit of the raw-direction rest vectors; then the children's
    # average bone in that frame (twice, so the frame follows the average geometry).
    rest = offsets[kids]
    for _ in range(2):
      frames = kabsch(rest, bones[:, kids])
      rest = np.einsum("tji,tcj->tci", frames, bones[:, kids]).mean(axis=0)
    offsets[kids] = rest
  return offsets


def bvh_inverse_kinematics(joints: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """BVH-convention local rotations [T, 22, 3, 3] for positions [T, 22, 3] on rest `offsets` [22, 3].

  `p_j = p_parent + G_parent @ offsets_j`, `G_j = G_parent @ L_j`; see the module docstring.
  """
  joints = _check_joints(joints, "bvh_inverse_kinematics")
  skel = get_skeleton("t2m")
  parents = np.asarray(skel.parents)
  children = _children(parents)
  num_frames = joints.shape[0]
  global_rot = np.zeros((num_frames, 22, 3, 3))
  local_rot = np.zeros((num_frames, 22, 3, 3))
  for joint in range(22):  # Parents precede children in the t2m order.
    parent = parents[joint]
    parent_rot = np.broadcast_to(np.eye(3), (num_frames, 3, 3)) if parent < 0 else global_rot[:, parent]
    kids = children[joint]
    if len(kids) >= 2:
      global_rot[:, joint] = kabsch(offsets[kids], joints[:, kids] - joints[:, joint:joint + 1])
      local_rot[:, joint] = np.swapaxes(parent_rot, -1, -2) @ global_rot[:, joint]
    elif len(kids) == 1:
      bone = joints[:, kids[0]] - joints[:, joint]
      bone_in_parent = np.einsum("tji,tj->ti", parent_rot, bone)
      local_rot[:, joint] = rotation_between(offsets[kids[0]], bone_in_parent)
      global_rot[:, joint] = parent_rot @ local_rot[:, joint]
    else:
      local_rot[:, joint] = np.eye(3)
      global_rot[:, joint] = parent_rot
  return local_rot


def t2m_bvh_skeleton(offsets: np.ndarray, rotation_order: str = "ZYX") -> bvh.BvhSkeleton:
  """The SMPL 22-joint BVH skeleton (HumanML3D joint names) on rest `offsets` [22, 3]."""
  skel = get_skeleton("t2m")
  offsets = np.asarray(offsets, np.float64)
  end_sites = np.full((22, 3), np.nan)
  for joint, kids in enumerate(_children(skel.parents)):
    if not kids:  # Leaves (feet, head, wrists): a short tip along the incoming bone.
      end_sites[joint] = 0.5 * offsets[joint]
  return bvh.make_skeleton(skel.joint_names, skel.parents, offsets, rotation_order, end_sites)


def _unit_factor(unit: str) -> float:
  if unit not in UNITS:
    raise InputError(f"unit must be one of {', '.join(UNITS)}, found {unit!r}")
  return 1.0 / UNITS[unit]


def joints_to_bvh(joints: np.ndarray, path: str | os.PathLike, fps: float = 20.0,
                  rotation_order: str = "ZYX", unit: str = "m") -> bvh.BvhMotion:
  """Writes joints [T, 22, 3] (metres, Y up) as a BVH file; returns the written `BvhMotion`.

  `unit` is the BVH's length unit ("m" or e.g. "cm" for tools that expect centimetres).
  """
  joints = _check_joints(joints, "joints_to_bvh")
  if not fps > 0:
    raise InputError(f"joints_to_bvh: fps must be positive, found {fps}")
  factor = _unit_factor(unit)
  offsets = fit_rest_offsets(joints)
  local = bvh_inverse_kinematics(joints, offsets)
  skeleton = t2m_bvh_skeleton(offsets * factor, rotation_order)
  return bvh.write_bvh(path, skeleton, joints[:, 0] * factor, local, 1.0 / fps)


def features_to_joints(features: np.ndarray, use_rotations: bool = True) -> np.ndarray:
  """Joints [T, 22, 3] from de-normalised features [T, 263].

  `use_rotations`: FK of the 6D rotation block (`cont6d_to_matrix` inside `recover_from_rot`) on
  bones of the clip's own lengths (medians of the RIC joints); otherwise the RIC joints.
  """
  features = np.asarray(features)
  if features.ndim != 2 or features.shape[1] != 263 or features.shape[0] < 1:
    raise InputError(f"features must be [T, 263] (HumanML3D, de-normalised), found shape {features.shape}")
  if not np.isfinite(features).all():
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    raise InputError(f"features contain NaN or infinite values in {bad.size} of "
                     f"{features.shape[0]} frame(s), first frame {bad[0]}")
  ric = np.asarray(motion_features.recover_from_ric(features, 22), np.float64)
  if not use_rotations:
    return ric
  skel = get_skeleton("t2m")
  parents = np.asarray(skel.parents)
  lengths = np.median(np.linalg.norm(ric - ric[:, np.maximum(parents, 0)], axis=-1), axis=0)
  offsets = (np.asarray(skel.raw_offsets, np.float64) * lengths[:, None]).astype(np.float32)
  return np.asarray(motion_features.recover_from_rot(features, 22, skel, offsets), np.float64)


def features_to_bvh(features: np.ndarray, path: str | os.PathLike, use_rotations: bool = True,
                    fps: float = 20.0, rotation_order: str = "ZYX", unit: str = "m") -> bvh.BvhMotion:
  """Writes de-normalised features [T, 263] as a BVH file (see `features_to_joints`)."""
  return joints_to_bvh(features_to_joints(features, use_rotations), path, fps, rotation_order, unit)
