"""The HumanML3D motion features (263-d for `t2m`, 251-d for `kit`): extraction and recovery.

Layout per frame (reference.md §7.2, `J` joints):
  root_rot_vel [1] | root_lin_vel [2] | root_y [1] | ric [(J-1)*3] | rot6d [(J-1)*6] |
  local_vel [J*3] | foot_contact [4]

`extract_features` is HumanML3D's `process_file`; `recover_from_ric` / `recover_from_rot` invert it
(joints from the rotation-invariant positions / from FK of the 6D rotations). Everything is
vectorised over leading dimensions, accepts NumPy input and is jittable (`joints_num`, the
skeleton and the threshold static).

`extract_features_np` / `recover_from_ric_np` run the same code on NumPy in float64 (no
compilation: the per-clip path of the importers, where every clip length would otherwise compile
its own program); they agree with the jitted float32 functions to float32 rounding.

Example:
  feats = extract_features(joints)                 # [T, 22, 3] -> [T-1, 263]
  again = recover_from_ric(feats, joints_num=22)   # [T-1, 22, 3]
  batch = extract_features_batch(joints_b)         # [B, T, 22, 3] -> [B, T-1, 263], jitted
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import ConfigError, InputError
from lead_jax.motion import rotations
from lead_jax.motion.skeleton import (SkeletonSpec, barrier, fk_quaternions,
                                      forward_kinematics_matrices, ik_quaternions,
                                      inverse_kinematics, offsets_of, resolve_skeleton,
                                      skeleton_for_joints, take_static)

Array = jax.Array

FEATURE_GROUPS = ("root_rot_vel", "root_lin_vel", "root_y", "ric", "rot6d", "local_vel", "foot_contact")


def features_dim(joints_num: int) -> int:
  """Feature size for `joints_num` joints: 263 for 22, 251 for 21."""
  return 8 + (joints_num - 1) * 9 + joints_num * 3


def feature_slices(joints_num: int) -> dict[str, slice]:
  """The named blocks of the feature vector, in order (see the module docstring)."""
  sizes = (1, 2, 1, (joints_num - 1) * 3, (joints_num - 1) * 6, joints_num * 3, 4)
  out, start = {}, 0
  for name, size in zip(FEATURE_GROUPS, sizes):
    out[name] = slice(start, start + size)
    start += size
  return out


def _check_features(features, joints_num: int, fn: str) -> Array:
  x = jnp.asarray(features)
  dim = features_dim(joints_num)
  if x.ndim < 2 or x.shape[-1] != dim:
    raise InputError(f"{fn}: features must have shape [..., T, {dim}] for {joints_num} joints, "
                     f"found {tuple(x.shape)}")
  # float64 clips (HumanML3D ships some) are computed in float32.
  return x.astype(jnp.float32)


def _yaw_angles(x: Array) -> Array:
  """Half yaw angles θ_t [..., T]: the shift-by-one cumulative sum of the root angular velocity."""
  xp = rotations._namespace(x)
  rot_vel = x[..., 0]
  return xp.cumsum(xp.concatenate([xp.zeros_like(rot_vel[..., :1]), rot_vel[..., :-1]], -1), -1)


def _root_position(x: Array, cos2: Array, sin2: Array) -> Array:
  """Root positions [..., T, 3]: the facing-frame velocities turned to the world and summed."""
  xp = rotations._namespace(x)
  vx = xp.concatenate([xp.zeros_like(x[..., :1, 1]), x[..., :-1, 1]], -1)
  vz = xp.concatenate([xp.zeros_like(x[..., :1, 2]), x[..., :-1, 2]], -1)
  # qrot(qinv(q_t), v) for the yaw quaternion q_t = (cos θ, 0, sin θ, 0): a turn by -2θ about Y.
  px = xp.cumsum(cos2 * vx - sin2 * vz, -1)
  pz = xp.cumsum(sin2 * vx + cos2 * vz, -1)
  return xp.stack([px, x[..., 3], pz], -1)


def recover_root_rot_pos(features) -> tuple[Array, Array]:
  """Root yaw and position from the root block.

  Args:
    features: [..., T, D] (de-normalised); only `[..., :4]` is read.
  Returns:
    r_rot_quat [..., T, 4]: `(cos θ_t, 0, sin θ_t, 0)`, θ_t the cumulative sum of `x[0]` up to t-1.
    r_pos [..., T, 3]: `Σ_{s≤t} qrot(qinv(q_s), (x_{s-1}[1], 0, x_{s-1}[2]))`, y = `x[3]`.
  """
  x = jnp.asarray(features)
  if x.ndim < 2 or x.shape[-1] < 4:
    raise InputError(f"recover_root_rot_pos: features must have shape [..., T, D>=4], found {tuple(x.shape)}")
  return _recover_root_rot_pos(x.astype(jnp.float32))


@jax.jit
def _recover_root_rot_pos(x: Array) -> tuple[Array, Array]:
  angle = _yaw_angles(x)
  zeros = jnp.zeros_like(angle)
  r_rot_quat = jnp.stack([jnp.cos(angle), zeros, jnp.sin(angle), zeros], axis=-1)
  return r_rot_quat, _root_position(x, jnp.cos(2 * angle), jnp.sin(2 * angle))


def recover_from_ric(features, joints_num: int = 22) -> Array:
  """Joint positions from the rotation-invariant coordinates: [..., T, D] -> [..., T, J, 3]."""
  return _recover_from_ric(_check_features(features, joints_num, "recover_from_ric"), joints_num)


def recover_from_ric_np(features, joints_num: int = 22) -> np.ndarray:
  """`recover_from_ric` in NumPy float64 (no compilation): [..., T, D] -> [..., T, J, 3] float32."""
  x = np.asarray(features, np.float64)
  dim = features_dim(joints_num)
  if x.ndim < 2 or x.shape[-1] != dim:
    raise InputError(f"recover_from_ric_np: features must have shape [..., T, {dim}] for "
                     f"{joints_num} joints, found {x.shape}")
  return _ric_to_joints(x, joints_num).astype(np.float32)


def _ric_to_joints(x, joints_num: int):
  """`recover_from_ric` on checked features of either backend (JAX or NumPy)."""
  xp = rotations._namespace(x)
  angle = _yaw_angles(x)
  cos2, sin2 = xp.cos(2 * angle)[..., None], xp.sin(2 * angle)[..., None]
  root = _root_position(x, cos2[..., 0], sin2[..., 0])
  ric = x[..., feature_slices(joints_num)["ric"]]
  lx, ly, lz = ric[..., 0::3], ric[..., 1::3], ric[..., 2::3]  # [..., T, J-1]
  wx = cos2 * lx - sin2 * lz + root[..., :1]
  wz = sin2 * lx + cos2 * lz + root[..., 2:]
  joints = xp.stack([wx, ly, wz], -1)
  return xp.concatenate([root[..., None, :], joints], axis=-2)


_recover_from_ric = jax.jit(_ric_to_joints, static_argnames=("joints_num",))


def _target_offsets(skel: SkeletonSpec, target_offsets, fn: str) -> Array:
  if target_offsets is None:
    if skel.target_offsets is None:
      raise ConfigError(f"{fn}: skeleton {skel.name!r} ships no target offsets (its example skeleton "
                        f"{skel.example_skeleton_id} is not bundled): pass `target_offsets` "
                        f"[{skel.joints_num}, 3], e.g. `get_offsets(example_joints[0], '{skel.name}')`")
    target_offsets = skel.target_offsets
  off = jnp.asarray(target_offsets, jnp.float32)
  if off.ndim < 2 or off.shape[-2:] != (skel.joints_num, 3):
    raise InputError(f"{fn}: target_offsets must have shape [{skel.joints_num}, 3] or "
                     f"[..., {skel.joints_num}, 3], found {tuple(off.shape)}")
  return off


def recover_from_rot(features, joints_num: int = 22, skeleton: str | SkeletonSpec | None = None,
                     offsets=None) -> Array:
  """Joint positions by FK of the 6D local rotations: [..., T, D] -> [..., T, J, 3].

  The root rotation and position come from `recover_root_rot_pos`; bone offsets default to the
  skeleton's target offsets (required for `kit`).
  """
  skel = skeleton_for_joints(joints_num) if skeleton is None else resolve_skeleton(skeleton)
  if skel.joints_num != joints_num:
    raise InputError(f"recover_from_rot: skeleton {skel.name!r} has {skel.joints_num} joints, joints_num is {joints_num}")
  x = _check_features(features, joints_num, "recover_from_rot")
  off = _target_offsets(skel, offsets, "recover_from_rot")
  return _recover_from_rot(x, off, skel)


@functools.partial(jax.jit, static_argnames=("skel",))
def _recover_from_rot(x: Array, off: Array, skel: SkeletonSpec) -> Array:
  joints_num = skel.joints_num
  r_rot_quat, r_pos = recover_root_rot_pos(x)
  d6 = x[..., feature_slices(joints_num)["rot6d"]]
  local = rotations.cont6d_to_matrix(d6.reshape(d6.shape[:-1] + (joints_num - 1, 6)))
  root = rotations.cont6d_to_matrix(rotations.quaternion_to_cont6d(r_rot_quat))
  mats = jnp.concatenate([root[..., None, :, :], local], axis=-3)
  return forward_kinematics_matrices(mats, r_pos, off, skel)


def uniform_skeleton(joints, skeleton: str | SkeletonSpec = "t2m", target_offsets=None) -> Array:
  """Retargets [..., T, J, 3] onto the target bone lengths (HumanML3D `uniform_skeleton`).

  The root trajectory is scaled by the ratio of target to source lower-limb length (bones
  `l_idx1`, `l_idx2` of frame 0); rotations come from IK without smoothing and are replayed with the
  target offsets.
  """
  skel = resolve_skeleton(skeleton)
  tgt = _target_offsets(skel, target_offsets, "uniform_skeleton")
  joints = jnp.asarray(joints, jnp.float32)
  if joints.ndim < 3 or joints.shape[-2:] != (skel.joints_num, 3):
    raise InputError(f"uniform_skeleton: joints must have shape [..., T, {skel.joints_num}, 3], "
                     f"found {tuple(joints.shape)}")
  return _uniform_skeleton(joints, tgt, skel)


def _uniform(joints, tgt, skel: SkeletonSpec):
  """`uniform_skeleton` on checked joints [..., T, J, 3] and offsets [J, 3] (or [..., J, 3]) of
  either backend (JAX or NumPy)."""
  xp = rotations._namespace(joints, tgt)
  src = offsets_of(joints[..., 0, :, :], skel)
  leg = lambda o: (xp.max(xp.abs(o[..., skel.l_idx1, :]), -1)
                   + xp.max(xp.abs(o[..., skel.l_idx2, :]), -1))
  scale = leg(tgt) / leg(src)
  quats = ik_quaternions(joints, skel, smooth_forward=False)
  root = joints[..., 0, :] * scale[..., None, None]
  offsets = tgt[..., None, :, :] if tgt.ndim > 2 else tgt  # per-clip offsets broadcast over time
  return fk_quaternions(quats, root, offsets, skel.parents, skel.rotation_parents)


_uniform_skeleton = jax.jit(_uniform, static_argnames=("skel",))


def _extract(joints: Array, skel: SkeletonSpec, feet_threshold: float | Array, tgt: Array) -> Array:
  """`process_file` on [..., T, J, 3] float32 (shapes already checked)."""
  xp = rotations._namespace(joints, tgt)
  num = skel.joints_num
  positions = barrier(uniform_skeleton(joints, skel, tgt) if xp is jnp else
                      _uniform(joints, tgt, skel))
  # Put on the floor; first-frame root XZ to the origin.
  floor = xp.min(positions[..., 1], axis=(-2, -1))
  positions = positions - xp.stack([xp.zeros_like(floor), floor, xp.zeros_like(floor)], -1)[..., None, None, :]
  init = positions[..., 0, :, :]  # [..., J, 3]
  positions = positions - (init[..., 0, :] * xp.asarray([1.0, 0.0, 1.0]))[..., None, None, :]
  # All clips initially face +Z (this across-vector has the hip term the right way round).
  r_hip, l_hip, sdr_r, sdr_l = skel.face_joint_indx
  across = (init[..., r_hip, :] - init[..., l_hip, :]) + (init[..., sdr_r, :] - init[..., sdr_l, :])
  across = across / xp.linalg.norm(across, axis=-1, keepdims=True)
  forward = rotations.cross(xp.broadcast_to(xp.asarray([0.0, 1.0, 0.0]), across.shape), across)
  forward = forward / xp.linalg.norm(forward, axis=-1, keepdims=True)
  q_init = rotations.qbetween(forward, xp.broadcast_to(xp.asarray([0.0, 0.0, 1.0]), forward.shape))
  positions = rotations.qrot(q_init[..., None, None, :], positions)
  # Barriers materialise intermediates that many consumers read (XLA:CPU would re-compute them).
  positions = barrier(positions)
  global_positions = positions

  # Foot contacts: squared displacement below the threshold.
  delta = global_positions[..., 1:, :, :] - global_positions[..., :-1, :, :]
  speed2 = rotations._dot(delta, delta)[..., 0]  # [..., T-1, J]
  feet = take_static(speed2, skel.fid_l + skel.fid_r, -1)
  contacts = (feet < xp.asarray(feet_threshold, feet.dtype)).astype(
      jnp.float32 if xp is jnp else feet.dtype)

  # Rotations with the smoothed facing direction.
  quats = barrier(inverse_kinematics(positions, skel, smooth_forward=True) if xp is jnp else
                  ik_quaternions(positions, skel, True))
  cont6d = rotations.quaternion_to_cont6d(quats)
  r_rot = quats[..., 0, :]
  root_vel = rotations.qrot(r_rot[..., 1:, :], positions[..., 1:, 0, :] - positions[..., :-1, 0, :])
  r_velocity = rotations.qmul(r_rot[..., 1:, :], rotations.qinv(r_rot[..., :-1, :]))

  # Rotation-invariant coordinates: root XZ removed, facing +Z.
  ric = positions - (positions[..., 0:1, :] * xp.asarray([1.0, 0.0, 1.0]))
  ric = rotations.qrot(r_rot[..., None, :], ric)

  root_data = xp.concatenate([
      xp.arcsin(xp.clip(r_velocity[..., 2:3], -1.0, 1.0)),
      root_vel[..., 0:1], root_vel[..., 2:3],
      ric[..., :-1, 0, 1:2],
  ], axis=-1)
  lead = ric.shape[:-3]
  steps = ric.shape[-3] - 1
  ric_data = ric[..., :-1, 1:, :].reshape(lead + (steps, (num - 1) * 3))
  rot_data = cont6d[..., :-1, 1:, :].reshape(lead + (steps, (num - 1) * 6))
  local_vel = rotations.qrot(r_rot[..., :-1, None, :], delta).reshape(lead + (steps, num * 3))
  return xp.concatenate([root_data, ric_data, rot_data, local_vel, contacts], axis=-1)


def _check_extract_args(joints, skeleton, feet_threshold):
  skel = resolve_skeleton(skeleton)
  joints = jnp.asarray(joints) if not isinstance(joints, np.ndarray) else joints
  if joints.ndim < 3 or joints.shape[-2:] != (skel.joints_num, 3):
    raise InputError(f"extract_features: joints must have shape [..., T, {skel.joints_num}, 3] for "
                     f"skeleton {skel.name!r}, found {tuple(joints.shape)}"
                     + (" (slice [..., :22, :] for SMPL-H joints)" if joints.ndim >= 2 and
                        joints.shape[-2] > skel.joints_num else ""))
  if joints.shape[-3] < 2:
    raise InputError(f"extract_features: need at least 2 frames, found {joints.shape[-3]}")
  if isinstance(joints, np.ndarray) and not np.isfinite(joints).all():
    bad = np.flatnonzero(~np.isfinite(joints.reshape(-1, *joints.shape[-2:])).all(axis=(1, 2)))
    raise InputError(f"extract_features: joints contain NaN or inf in {bad.size} frame(s), first "
                     f"frame {bad[0] % joints.shape[-3]}")
  thres = skel.foot_contact_threshold if feet_threshold is None else float(feet_threshold)
  return skel, thres


def extract_features(joints, skeleton: str | SkeletonSpec = "t2m", feet_threshold: float | None = None,
                     target_offsets=None) -> Array:
  """HumanML3D `process_file`: joint positions [..., T, J, 3] -> features [..., T-1, D].

  Steps: uniform skeleton (rescale to `target_offsets`, default the HumanML3D example skeleton),
  floor at y=0, first-frame root XZ at the origin, first frame facing +Z, IK with the smoothed
  forward direction, then the 7 feature blocks. Leading dimensions are clips processed
  independently.

  Args:
    joints: [..., T, J, 3] positions in metres, Y up.
    skeleton: "t2m" / "kit" or a `SkeletonSpec`.
    feet_threshold: squared per-frame foot displacement below which a foot is in contact; default
      the skeleton's (0.002 for t2m).
    target_offsets: [J, 3] bone offsets to rescale to; required for "kit".
  Returns:
    [..., T-1, D] float32 features. The computation is jitted (one compile per shape); the
    function can itself be used under `jax.jit` / `jax.vmap`.
  """
  skel, thres = _check_extract_args(joints, skeleton, feet_threshold)
  tgt = _target_offsets(skel, target_offsets, "extract_features")
  return _extract_jit(jnp.asarray(joints, jnp.float32), tgt, skel, thres)


@functools.partial(jax.jit, static_argnames=("skel",))
def _extract_jit(joints, tgt, skel, thres):
  return _extract(joints, skel, thres, tgt)


def extract_features_np(joints, skeleton: str | SkeletonSpec = "t2m",
                        feet_threshold: float | None = None, target_offsets=None) -> np.ndarray:
  """`extract_features` computed in NumPy float64, without compiling: [..., T, J, 3] -> [..., T-1, D]
  float32. For importers, where clips of many lengths would each compile a program; agrees with
  `extract_features` to float32 rounding (a foot contact may differ where a foot's squared speed
  lies within rounding of the threshold)."""
  skel, thres = _check_extract_args(np.asarray(joints), skeleton, feet_threshold)
  if target_offsets is None and skel.target_offsets is None:
    _target_offsets(skel, None, "extract_features_np")  # raises the ConfigError naming the fix
  tgt = np.asarray(skel.target_offsets if target_offsets is None else target_offsets, np.float64)
  if tgt.shape != (skel.joints_num, 3):
    raise InputError(f"extract_features_np: target_offsets must have shape "
                     f"[{skel.joints_num}, 3], found {tgt.shape}")
  # NumPy only: nothing here initialises a JAX backend (importers fork reader processes).
  return _extract(np.asarray(joints, np.float64), skel, thres, tgt).astype(np.float32)


def extract_features_batch(joints, skeleton: str | SkeletonSpec = "t2m", feet_threshold: float | None = None,
                           target_offsets=None) -> Array:
  """`extract_features` for a batch of equal-length clips [B, T, J, 3] -> [B, T-1, D].

  `target_offsets` may be [J, 3] (shared) or [B, J, 3] (per clip).
  """
  joints = jnp.asarray(joints) if not isinstance(joints, np.ndarray) else joints
  if joints.ndim != 4:
    raise InputError(f"extract_features_batch: joints must have shape [B, T, J, 3], found {tuple(joints.shape)}")
  return extract_features(joints, skeleton, feet_threshold, target_offsets)
