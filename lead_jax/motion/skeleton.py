"""The HumanML3D (`t2m`, 22 SMPL joints) and KIT-ML (`kit`, 21 joints) skeletons, FK and IK.

Constants follow HumanML3D's `paramUtil.py` and `motion_representation.ipynb` (reference.md §7.1).

Rotation semantics. HumanML3D walks each kinematic chain starting from the *root* rotation, also
for chains that start at another joint (the arms start at spine3): the local rotation of the
first joint of such a chain (t2m: collars 13, 14; kit: shoulders 5, 8) is relative to the root,
not to its positional parent. `SkeletonSpec.rotation_parents` records this (`parents` is the
positional tree). `inverse_kinematics` produces, and `forward_kinematics(..., skeleton)` consumes,
local rotations with these semantics, as do the 6D features.

Backends: the public functions compute in JAX (jittable). The cores they share (`offsets_of`,
`facing_quaternions`, `ik_quaternions`, `fk_quaternions`, `gaussian_smooth_time`, `take_static`,
`barrier`) also run on NumPy arrays (float64 in, float64 out, no compilation): the per-clip path of
the importers (`lead_jax.motion.features.extract_features_np`).

Example:
  skel = get_skeleton("t2m")
  quats = inverse_kinematics(joints, skel)                       # [T, 22, 4]
  offsets = get_offsets(joints[0], skel)                         # [22, 3]
  again = forward_kinematics(quats, joints[:, 0], offsets, skel)  # [T, 22, 3] ~= joints
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError
from lead_jax.motion import rotations

Array = jax.Array

# Offsets of HumanML3D's target skeleton: `get_offsets` of the first frame of clip 000021's joints
# (`skeleton_example_h3d.npy[:22]`), computed in float32 as HumanML3D does. Every clip is rescaled
# to these bone lengths before feature extraction.
T2M_TARGET_OFFSETS = np.array([
    [0.0, 0.0, 0.0],
    [0.10307397, 0.0, 0.0],
    [-0.10988337, 0.0, 0.0],
    [0.0, 0.13156824, 0.0],
    [0.0, -0.39362320, 0.0],
    [0.0, -0.39018822, 0.0],
    [0.0, 0.14319022, 0.0],
    [0.0, -0.43243307, 0.0],
    [0.0, -0.42564335, 0.0],
    [0.0, 0.057364736, 0.0],
    [0.0, 0.0, 0.14338182],
    [0.0, 0.0, 0.14941907],
    [0.0, 0.21936006, 0.0],
    [0.13748677, 0.0, 0.0],
    [-0.14338283, 0.0, 0.0],
    [0.0, 0.0, 0.10303922],
    [0.0, -0.13161404, 0.0],
    [0.0, -0.12298438, 0.0],
    [0.0, -0.25683999, 0.0],
    [0.0, -0.26309174, 0.0],
    [0.0, -0.26601171, 0.0],
    [0.0, -0.26987639, 0.0],
], dtype=np.float32)
T2M_TARGET_OFFSETS.setflags(write=False)


@dataclasses.dataclass(frozen=True, eq=False)
class SkeletonSpec:
  """A skeleton's constants. Instances from `get_skeleton` are singletons, hashable by identity
  (usable as static jit arguments)."""
  name: str
  joints_num: int
  joint_names: tuple[str, ...]
  parents: tuple[int, ...]            # positional parent, -1 for the root
  rotation_parents: tuple[int, ...]   # whose global rotation a joint's local rotation composes with
  kinematic_chain: tuple[tuple[int, ...], ...]
  raw_offsets: np.ndarray             # [J, 3] unit bone directions in the rest pose
  fid_l: tuple[int, ...]              # left foot joints (ankle, toe) for contacts
  fid_r: tuple[int, ...]
  face_joint_indx: tuple[int, int, int, int]  # r_hip, l_hip, r_shoulder, l_shoulder
  l_idx1: int                         # the two leg joints whose bone lengths give the scale
  l_idx2: int
  feature_dim: int
  fps: float
  foot_contact_threshold: float
  example_skeleton_id: str
  left_right_pairs: tuple[tuple[int, int], ...]  # (left, right) joint pairs swapped by mirroring
  target_offsets: np.ndarray | None   # [J, 3] offsets of the example skeleton, None if unknown

  @property
  def mirror_permutation(self) -> np.ndarray:
    """[J] index array: joint j of a mirrored pose comes from joint `perm[j]`."""
    perm = np.arange(self.joints_num)
    for left, right in self.left_right_pairs:
      perm[left], perm[right] = right, left
    return perm


def _parents_from_chain(chain, joints_num: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  parents = [-1] * joints_num
  rot_parents = [-1] * joints_num
  for c in chain:
    for i in range(1, len(c)):
      parents[c[i]] = c[i - 1]
      rot_parents[c[i]] = c[i - 1] if i > 1 else 0  # chains start from the root's rotation
  return tuple(parents), tuple(rot_parents)


def _frozen(a) -> np.ndarray:
  a = np.asarray(a, dtype=np.float32)
  a.setflags(write=False)
  return a


_T2M_CHAIN = ((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21),
              (9, 13, 16, 18, 20))
_T2M_RAW = [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0],
            [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0],
            [-1, 0, 0], [0, 0, 1], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
            [0, -1, 0]]
_T2M_NAMES = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
              "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
              "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist")

_KIT_CHAIN = ((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7),
              (3, 8, 9, 10))
_KIT_RAW = [[0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, -1, 0],
            [0, -1, 0], [-1, 0, 0], [0, -1, 0], [0, -1, 0], [1, 0, 0], [0, -1, 0], [0, -1, 0],
            [0, 0, 1], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, -1, 0], [0, 0, 1], [0, 0, 1]]
# KIT-ML / MMM joints: root, pelvis, torso, lower and upper neck, arms, legs (MMM names in brackets).
_KIT_NAMES = ("root", "pelvis", "torso", "lower_neck", "head", "right_shoulder", "right_elbow",
              "right_wrist", "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee",
              "right_ankle", "right_midfoot", "right_toe", "left_hip", "left_knee", "left_ankle",
              "left_midfoot", "left_toe")


@functools.cache
def get_skeleton(name: str) -> SkeletonSpec:
  """The skeleton `"t2m"` (HumanML3D, 22 joints) or `"kit"` (KIT-ML, 21 joints)."""
  if name in ("t2m", "humanml3d", "humanml"):
    parents, rot_parents = _parents_from_chain(_T2M_CHAIN, 22)
    return SkeletonSpec(
        name="t2m", joints_num=22, joint_names=_T2M_NAMES, parents=parents,
        rotation_parents=rot_parents, kinematic_chain=_T2M_CHAIN, raw_offsets=_frozen(_T2M_RAW),
        fid_l=(7, 10), fid_r=(8, 11), face_joint_indx=(2, 1, 17, 16), l_idx1=5, l_idx2=8,
        feature_dim=263, fps=20.0, foot_contact_threshold=0.002, example_skeleton_id="000021",
        left_right_pairs=((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21)),
        target_offsets=T2M_TARGET_OFFSETS)
  if name in ("kit", "kit-ml", "kit_ml"):
    parents, rot_parents = _parents_from_chain(_KIT_CHAIN, 21)
    return SkeletonSpec(
        name="kit", joints_num=21, joint_names=_KIT_NAMES, parents=parents,
        rotation_parents=rot_parents, kinematic_chain=_KIT_CHAIN, raw_offsets=_frozen(_KIT_RAW),
        fid_l=(19, 20), fid_r=(14, 15), face_joint_indx=(11, 16, 5, 8), l_idx1=17, l_idx2=18,
        feature_dim=251, fps=12.5, foot_contact_threshold=0.05, example_skeleton_id="03950_gt",
        left_right_pairs=((8, 5), (9, 6), (10, 7), (16, 11), (17, 12), (18, 13), (19, 14), (20, 15)),
        target_offsets=None)
  raise InputError(f"unknown skeleton {name!r}: expected 't2m' (HumanML3D, 22 joints) or 'kit' (21 joints)")


def resolve_skeleton(skeleton: str | SkeletonSpec) -> SkeletonSpec:
  """A `SkeletonSpec` from a spec or a name."""
  return skeleton if isinstance(skeleton, SkeletonSpec) else get_skeleton(skeleton)


def skeleton_for_joints(joints_num: int) -> SkeletonSpec:
  """The skeleton with `joints_num` joints (22 -> t2m, 21 -> kit)."""
  for name in ("t2m", "kit"):
    if get_skeleton(name).joints_num == joints_num:
      return get_skeleton(name)
  raise InputError(f"no skeleton with {joints_num} joints: expected 22 (t2m) or 21 (kit)")


def _check_joints(joints, skel: SkeletonSpec, fn: str) -> Array:
  joints = jnp.asarray(joints)
  if joints.ndim < 2 or joints.shape[-2:] != (skel.joints_num, 3):
    raise InputError(f"{fn}: joints must have shape [..., {skel.joints_num}, 3] for skeleton "
                     f"{skel.name!r}, found {tuple(joints.shape)}")
  if not jnp.issubdtype(joints.dtype, jnp.floating):
    joints = joints.astype(jnp.float32)
  return joints


@functools.lru_cache(maxsize=32)
def _ancestor_tables(parents: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
  """Ancestor table and ancestor-or-self indicator of the tree `parents`.

  Returns:
    chain [J, D]: row j lists j's ancestors from the root down to j itself, left-padded with J
      (an index that selects the identity); D is the tree depth + 1.
    indicator [J, J]: `indicator[j, k] = 1` if k is j or an ancestor of j, k != root.
  """
  num = len(parents)
  paths = []
  for j in range(num):
    path, p = [j], parents[j]
    while p >= 0:
      path.append(p)
      p = parents[p]
      if len(path) > num:
        raise InputError(f"parents {parents} contain a cycle")
    if path[-1] != 0:
      raise InputError(f"parents {parents}: joint {j} does not descend from the root joint 0")
    paths.append(path[::-1])
  depth = max(len(p) for p in paths)
  chain = np.full((num, depth), num, np.int32)
  indicator = np.zeros((num, num), np.float32)
  for j, path in enumerate(paths):
    chain[j, depth - len(path):] = path
    indicator[j, path[1:]] = 1.0
  return chain, indicator


def get_offsets(joints_frame0, skeleton: str | SkeletonSpec = "t2m") -> Array:
  """Bone offsets of one pose: `|joint - parent| * raw_offset` per joint (HumanML3D `get_offsets_joints`).

  Args:
    joints_frame0: [..., J, 3] one pose (typically the first frame).
  Returns:
    [..., J, 3] offsets (row 0, the root, is zero).
  """
  skel = resolve_skeleton(skeleton)
  return offsets_of(_check_joints(joints_frame0, skel, "get_offsets"), skel)


def offsets_of(joints, skel: SkeletonSpec):
  """`get_offsets` on checked joints [..., J, 3] of either backend (JAX or NumPy)."""
  xp = rotations._namespace(joints)
  parents = np.array(skel.parents)
  parents[0] = 0
  bone_vec = joints - take_static(joints, parents, -2)
  bone = xp.sqrt(rotations._dot(bone_vec, bone_vec))
  return bone * xp.asarray(skel.raw_offsets, joints.dtype)


def barrier(x):
  """`jax.lax.optimization_barrier` on JAX values (XLA:CPU would re-compute `x` in every consumer);
  NumPy values pass through."""
  return jax.lax.optimization_barrier(x) if isinstance(x, jax.Array) else x


def _parents_pair(parents, rotation_parents) -> tuple[tuple[int, ...], tuple[int, ...]]:
  if isinstance(parents, SkeletonSpec):
    parents, rotation_parents = parents.parents, parents.rotation_parents
  parents = tuple(int(p) for p in parents)
  rotation_parents = parents if rotation_parents is None else tuple(int(p) for p in rotation_parents)
  if len(rotation_parents) != len(parents):
    raise InputError(f"forward_kinematics: rotation_parents has {len(rotation_parents)} entries, "
                     f"parents {len(parents)}")
  return parents, rotation_parents


def _matmul3(a: Array, b: Array) -> Array:
  """Batched 3x3 products [..., 3, 3] as three broadcast multiply-adds (fused by XLA; also avoids
  a dot_general layout bug of XLA:CPU, jax 0.10, under vmap)."""
  return a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :] + a[..., :, 2:3] * b[..., 2:3, :]


def _fk_core(local: list[Array], root_pos: Array, offsets: Array, parents, rotation_parents,
             compose, apply) -> Array:
  """FK over per-joint rotation blocks `local[j]` (quaternions or matrices), each joint once."""
  xp = rotations._namespace(root_pos, offsets, *local)
  num = len(parents)
  glob = [None] * num
  glob[0] = local[0]
  for j in _topological_order(rotation_parents)[1:]:
    # The barrier keeps XLA from re-computing the whole ancestor chain inside every consumer.
    glob[j] = barrier(compose(glob[rotation_parents[j]], local[j]))
  pos = [None] * num
  pos[0] = root_pos
  for j in _topological_order(parents)[1:]:
    pos[j] = pos[parents[j]] + apply(glob[j], xp.broadcast_to(offsets[..., j, :], root_pos.shape))
  return xp.stack(pos, axis=-2)


@functools.lru_cache(maxsize=32)
def _topological_order(parents: tuple[int, ...]) -> tuple[int, ...]:
  """Joints sorted so that every parent precedes its children (root first)."""
  chain, _ = _ancestor_tables(parents)
  depth = (chain < len(parents)).sum(axis=1)
  return tuple(int(j) for j in np.argsort(depth, kind="stable"))


@functools.partial(jax.jit, static_argnames=("parents", "rotation_parents"))
def _fk_matrices(rot: Array, root_pos: Array, offsets: Array, parents, rotation_parents) -> Array:
  local = [rot[..., j, :, :] for j in range(len(parents))]
  return _fk_core(local, root_pos, offsets, parents, rotation_parents, _matmul3,
                  lambda m, v: jnp.sum(m * v[..., None, :], axis=-1))


def fk_quaternions(quat, root_pos, offsets, parents: tuple[int, ...],
                   rotation_parents: tuple[int, ...]):
  """`forward_kinematics` on checked arguments of either backend (JAX or NumPy): local rotations
  [..., T, J, 4], root_pos [..., T, 3], offsets [J, 3] (or broadcastable) -> [..., T, J, 3]."""
  local = [quat[..., j, :] for j in range(len(parents))]
  return _fk_core(local, root_pos, offsets, parents, rotation_parents, rotations.qmul, rotations.qrot)


_fk_quaternions = jax.jit(fk_quaternions, static_argnames=("parents", "rotation_parents"))


def _check_fk_args(rot, root_pos, offsets, num: int, trailing: tuple[int, ...]):
  if not jnp.issubdtype(rot.dtype, jnp.floating):
    rot = rot.astype(jnp.float32)
  if rot.ndim < 1 + len(trailing) or rot.shape[-1 - len(trailing):] != (num,) + trailing:
    shape = ", ".join(str(d) for d in (num,) + trailing)
    raise InputError(f"forward_kinematics: local rotations must have shape [..., T, {shape}], "
                     f"found {tuple(rot.shape)}")
  batch = rot.shape[:-1 - len(trailing)]
  root_pos = jnp.asarray(root_pos, rot.dtype)
  offsets = jnp.asarray(offsets, rot.dtype)
  if root_pos.shape != batch + (3,):
    raise InputError(f"forward_kinematics: root_pos must have shape {batch + (3,)}, "
                     f"found {tuple(root_pos.shape)}")
  if offsets.ndim < 2 or offsets.shape[-2:] != (num, 3):
    raise InputError(f"forward_kinematics: offsets must have shape [{num}, 3] or [..., {num}, 3], "
                     f"found {tuple(offsets.shape)}")
  if offsets.ndim > 2:  # [..., J, 3] per clip: broadcast over time.
    offsets = offsets[..., None, :, :]
  return rot, root_pos, offsets


def forward_kinematics_matrices(rotations_mat, root_pos, offsets, parents,
                                rotation_parents=None) -> Array:
  """FK from local rotation matrices [..., T, J, 3, 3]; see `forward_kinematics`."""
  parents, rotation_parents = _parents_pair(parents, rotation_parents)
  rot, root_pos, offsets = _check_fk_args(jnp.asarray(rotations_mat), root_pos, offsets, len(parents), (3, 3))
  return _fk_matrices(rot, root_pos, offsets, parents, rotation_parents)


def forward_kinematics(rotations_quat, root_pos, offsets, parents, rotation_parents=None) -> Array:
  """Joint positions from local rotations.

  `G_j = G_{rotation_parents[j]} q_j` (G_root = q_root), `p_j = p_{parents[j]} + G_j offsets_j`.

  Args:
    rotations_quat: [..., T, J, 4] local rotations (root first: its global rotation).
    root_pos: [..., T, 3].
    offsets: [J, 3] or [..., J, 3] (one per clip) rest-pose bone vectors.
    parents: tuple of J parent indices (-1 for the root), or a `SkeletonSpec`, which also sets
      `rotation_parents` to HumanML3D's chain semantics (the right choice for the output of
      `inverse_kinematics` and for 6D features).
    rotation_parents: defaults to `parents` (ordinary tree FK, e.g. for BVH).
  Returns:
    [..., T, J, 3] joint positions.
  """
  parents, rotation_parents = _parents_pair(parents, rotation_parents)
  q, root_pos, offsets = _check_fk_args(jnp.asarray(rotations_quat), root_pos, offsets, len(parents), (4,))
  return _fk_quaternions(q, root_pos, offsets, parents, rotation_parents)


@functools.lru_cache(maxsize=64)
def gaussian_smoothing_matrix(length: int, sigma: float = 20.0, truncate: float = 4.0) -> np.ndarray:
  """[T, T] matrix `M` with `M @ x == scipy.ndimage.gaussian_filter1d(x, sigma, axis=0, mode='nearest')`."""
  radius = int(truncate * sigma + 0.5)
  taps = np.arange(-radius, radius + 1)
  weights = np.exp(-0.5 * (taps / sigma) ** 2)
  weights /= weights.sum()
  src = np.clip(np.arange(length)[:, None] + taps[None, :], 0, length - 1)
  mat = np.zeros((length, length), np.float64)
  np.add.at(mat, (np.repeat(np.arange(length), len(taps)), src.ravel()), np.tile(weights, length))
  mat = mat.astype(np.float32)
  mat.setflags(write=False)
  return mat


def gaussian_smooth_time(x, sigma: float = 20.0):
  """Gaussian filter along the time axis -2 of [..., T, C], edges extended ('nearest'); NumPy
  input stays NumPy."""
  mat = gaussian_smoothing_matrix(int(np.shape(x)[-2]), float(sigma))
  if isinstance(x, np.ndarray):
    return np.einsum("ts,...sc->...tc", mat.astype(x.dtype), x)
  x = jnp.asarray(x)
  return jnp.einsum("ts,...sc->...tc", jnp.asarray(mat, x.dtype), x,
                    precision=jax.lax.Precision.HIGHEST)


def take_static(x, indices, axis: int):
  """`jnp.take(x, indices, axis)` for static indices as slices + one concatenation (XLA:CPU gathers
  along an inner axis are slow); `np.take` for NumPy input."""
  if isinstance(x, np.ndarray):
    return np.take(x, np.asarray(indices, np.int64), axis=axis)
  indices = [int(i) for i in indices]
  axis = axis % x.ndim
  runs, start = [], 0
  for k in range(1, len(indices) + 1):
    if k == len(indices) or indices[k] != indices[k - 1] + 1:
      runs.append((indices[start], indices[k - 1] + 1))
      start = k
  parts = [jax.lax.slice_in_dim(x, a, b, axis=axis) for a, b in runs]
  return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=axis)


def _normalize(v):
  xp = rotations._namespace(v)
  n = xp.sqrt(rotations._dot(v, v))
  return v / xp.where(n > 0, n, 1.0)


def facing_rotation(joints, skeleton: str | SkeletonSpec = "t2m", smooth_forward: bool = False,
                    sigma: float = 20.0) -> Array:
  """The yaw quaternions [..., T, 4] turning each frame's forward direction onto +Z, as HumanML3D IK.

  Uses HumanML3D's IK across-vector, hip term reversed:
  `across = (j[face[1]] - j[face[0]]) + (j[face[2]] - j[face[3]])`, `forward = Y × across`,
  optionally Gaussian-smoothed over time (sigma 20, mode nearest). Frame 0 is *not* forced to the
  identity here (`inverse_kinematics` does that).
  """
  skel = resolve_skeleton(skeleton)
  return facing_quaternions(_check_joints(joints, skel, "facing_rotation"), skel, smooth_forward,
                            sigma)


def facing_quaternions(joints, skel: SkeletonSpec, smooth_forward: bool = False,
                       sigma: float = 20.0):
  """`facing_rotation` on checked joints [..., T, J, 3] of either backend (JAX or NumPy)."""
  xp = rotations._namespace(joints)
  r_hip_, l_hip_, sdr_r, sdr_l = skel.face_joint_indx
  # HumanML3D unpacks the same list as (l_hip, r_hip, sdr_r, sdr_l) inside IK.
  across = (joints[..., l_hip_, :] - joints[..., r_hip_, :]) + (joints[..., sdr_r, :] - joints[..., sdr_l, :])
  across = _normalize(across)
  up = xp.asarray([0.0, 1.0, 0.0], joints.dtype)
  forward = rotations.cross(xp.broadcast_to(up, across.shape), across)
  if smooth_forward:
    forward = gaussian_smooth_time(forward, sigma)
  forward = _normalize(forward)
  return rotations.qbetween(forward, xp.broadcast_to(xp.asarray([0.0, 0.0, 1.0], joints.dtype), forward.shape))


def inverse_kinematics(joints, skeleton: str | SkeletonSpec = "t2m", smooth_forward: bool = True) -> Array:
  """Local joint rotations from positions, HumanML3D `Skeleton.inverse_kinematics_np` semantics.

  Root: the facing rotation (`facing_rotation`, with the reversed hip term), frame 0 forced to the
  identity. Joint j: `qinv(G_{rotation_parents[j]}) ⊗ qbetween(raw_offsets[j], unit bone j)`, where
  the global rotation of every non-root joint is the shortest arc from its raw offset to its bone.

  Args:
    joints: [..., T, J, 3].
    smooth_forward: Gaussian-smooth the forward direction over time (sigma 20). Note that the
      HumanML3D function's own default is False; feature extraction uses True.
  Returns:
    [..., T, J, 4] local quaternions.
  """
  skel = resolve_skeleton(skeleton)
  joints = _check_joints(joints, skel, "inverse_kinematics")
  if joints.ndim < 3:
    raise InputError(f"inverse_kinematics: joints must have shape [..., T, {skel.joints_num}, 3], "
                     f"found {tuple(joints.shape)}")
  return _inverse_kinematics(joints, skel, smooth_forward)


def ik_quaternions(joints, skel: SkeletonSpec, smooth_forward: bool):
  """`inverse_kinematics` on checked joints [..., T, J, 3] of either backend (JAX or NumPy)."""
  xp = rotations._namespace(joints)
  root = facing_quaternions(joints, skel, smooth_forward)
  identity = xp.broadcast_to(xp.asarray([1.0, 0.0, 0.0, 0.0], root.dtype), root[..., :1, :].shape)
  root = xp.concatenate([identity, root[..., 1:, :]], axis=-2)  # frame 0 faces as it is
  parents = np.array(skel.parents)
  parents[0] = 0
  bones = _normalize(joints - take_static(joints, parents, -2))
  global_rot = rotations.qbetween(xp.asarray(skel.raw_offsets, joints.dtype), bones)
  global_rot = barrier(global_rot)  # XLA:CPU would recompute it per use
  global_rot = xp.concatenate([root[..., None, :], global_rot[..., 1:, :]], axis=-2)
  rot_parents = np.array(skel.rotation_parents)
  rot_parents[0] = 0
  local = rotations.qmul(rotations.qinv(take_static(global_rot, rot_parents, -2)), global_rot)
  return xp.concatenate([root[..., None, :], local[..., 1:, :]], axis=-2)


_inverse_kinematics = jax.jit(ik_quaternions, static_argnames=("skel", "smooth_forward"))
