"""Rotations: quaternions `(w, x, y, z)`, matrices, continuous 6D, Euler angles, axis-angle, slerp.

The one module of rotation maths, for the jitted motion code and for the file importers alike.

Conventions follow HumanML3D's `common/quaternion.py` (reference.md §7.2):
* quaternions are `(w, x, y, z)`, Hamilton product, `qrot(q, v)` rotates `v` by `q`;
* a rotation matrix acts on column vectors, `v' = R v`;
* 6D = the first two *columns* of the matrix, `cat(R[..., :, 0], R[..., :, 1])`, and
  `cont6d_to_matrix` re-orthonormalises with Gram-Schmidt (`x = a1/|a1|`, `z = x × a2/|.|`,
  `y = z × x`, `R = [x y z]`);
* Euler angles are radians, `angles[..., i]` about axis `order[i]`, intrinsic by default (the BVH
  channel convention): the same as scipy's `Rotation.from_euler('ZXY' | 'zxy')`.

Two backends, one set of functions (they broadcast over leading dimensions):
* any JAX array (or tracer) among the inputs -> `jax.numpy`: jittable, float32 unless the input is
  a wider float under `jax_enable_x64`;
* otherwise (NumPy arrays, lists, scalars) -> NumPy, in the inputs' float dtype (integers become
  float64): the float64 path of the BVH / DeepMimic importers.
The formulas are shared; on the NumPy side the conversions *to* Euler angles are
`scipy.spatial.transform`'s (which resolves gimbal lock; `to_scipy` / `from_scipy` convert
quaternions to and from its `Rotation`), while Euler angles -> quaternions / matrices use the
closed form of both backends (the product of three axis rotations: 30x faster than scipy's
`from_euler` on a clip, same values to 1e-15).
"""

from __future__ import annotations

import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import transform

from lead_jax.errors import InputError

Array = jax.Array
AnyArray = jax.Array | np.ndarray  # the backend of the inputs

_AXES = {"X": 0, "Y": 1, "Z": 2}


def _namespace(*xs) -> types.ModuleType:
  """`jax.numpy` when any argument is a JAX array or tracer, else `numpy`."""
  return jnp if any(isinstance(x, jax.Array) for x in xs) else np


def _floats(*xs) -> tuple[types.ModuleType, list]:
  """The backend of the inputs and the inputs as float arrays of it."""
  xp = _namespace(*xs)
  out = []
  for x in xs:
    x = xp.asarray(x)
    if not xp.issubdtype(x.dtype, xp.floating):
      x = x.astype(jnp.float32 if xp is jnp else np.float64)
    out.append(x)
  return xp, out


def _check_last(x, n: int, name: str, fn: str) -> None:
  if x.ndim < 1 or x.shape[-1] != n:
    raise InputError(f"{fn}: `{name}` must have shape [..., {n}], found {tuple(x.shape)}")


def _check_matrices(m, fn: str) -> None:
  if m.ndim < 2 or m.shape[-2:] != (3, 3):
    raise InputError(f"{fn}: matrices must have shape [..., 3, 3], found {tuple(m.shape)}")


def _dot(a, b) -> AnyArray:
  """Dot product over a short last axis, kept as size 1 (unrolled: XLA:CPU reduces a minor axis
  of size 3-4 slowly)."""
  out = a[..., 0:1] * b[..., 0:1]
  for i in range(1, max(a.shape[-1], b.shape[-1])):
    out = out + a[..., i:i + 1] * b[..., i:i + 1]
  return out


def cross(a, b) -> AnyArray:
  """Cross product over the last axis [..., 3] (broadcasting): `jnp.cross` for JAX inputs; for
  NumPy, the component formula (`np.cross` costs ~0.2 ms of overhead a call)."""
  if _namespace(a, b) is jnp:
    return jnp.cross(a, b)
  a, b = np.asarray(a), np.asarray(b)
  a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
  b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
  return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _safe_norm(v) -> AnyArray:
  """Euclidean norm over the last axis (kept), with a finite gradient at 0."""
  xp = _namespace(v)
  sq = _dot(v, v)
  safe = xp.where(sq > 0, sq, 1.0)
  return xp.where(sq > 0, xp.sqrt(safe), 0.0)


def _rsqrt(xp: types.ModuleType, x: AnyArray) -> AnyArray:
  return jax.lax.rsqrt(x) if xp is jnp else 1.0 / np.sqrt(x)


def _slice(x, start: int, stop: int, axis: int) -> AnyArray:
  """`x` restricted to `start:stop` along `axis` (a static slice under jit)."""
  return x[(slice(None),) * axis + (slice(start, stop),)]


# ---------------------------------------------------------------------------------------------
# Quaternion algebra.


def qmul(q, r) -> AnyArray:
  """Hamilton product `q ⊗ r`: [..., 4] x [..., 4] -> [..., 4] (broadcasting)."""
  xp, (q, r) = _floats(q, r)
  _check_last(q, 4, "q", "qmul")
  _check_last(r, 4, "r", "qmul")
  w1, x1, y1, z1 = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  w2, x2, y2, z2 = r[..., 0], r[..., 1], r[..., 2], r[..., 3]
  return xp.stack([
      w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
      w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
      w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
      w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
  ], axis=-1)


def qinv(q) -> AnyArray:
  """Conjugate `(w, -x, -y, -z)`: the inverse of a unit quaternion. [..., 4] -> [..., 4]."""
  xp, (q,) = _floats(q)
  _check_last(q, 4, "q", "qinv")
  return q * xp.asarray([1.0, -1.0, -1.0, -1.0], q.dtype)


def qnormalize(q) -> AnyArray:
  """Unit quaternion `q / |q|` ([..., 4]); a zero quaternion becomes the identity."""
  xp, (q,) = _floats(q)
  _check_last(q, 4, "q", "qnormalize")
  n = _safe_norm(q)
  identity = xp.asarray([1.0, 0.0, 0.0, 0.0], q.dtype)
  return xp.where(n > 0, q / xp.where(n > 0, n, 1.0), identity)


def qrot(q, v) -> AnyArray:
  """Rotates vectors `v` [..., 3] by quaternions `q` [..., 4] (broadcasting): `v + 2(w u×v + u×(u×v))`."""
  xp, (q, v) = _floats(q, v)
  _check_last(q, 4, "q", "qrot")
  _check_last(v, 3, "v", "qrot")
  u = q[..., 1:]
  uv = cross(u, v)
  uuv = cross(u, uv)
  return v + 2.0 * (q[..., :1] * uv + uuv)


def qbetween(v0, v1) -> AnyArray:
  """The shortest-arc unit quaternion rotating direction `v0` onto `v1`: [..., 3] x [..., 3] -> [..., 4].

  `normalize([sqrt(|v0|²|v1|²) + v0·v1, v0 × v1])` as HumanML3D. Opposite directions give the
  half turn about an axis perpendicular to `v0`; a zero vector gives the identity.
  """
  xp, (v0, v1) = _floats(v0, v1)
  _check_last(v0, 3, "v0", "qbetween")
  _check_last(v1, 3, "v1", "qbetween")
  # Fallback for opposite directions: the half turn about v0 x e, e = X unless v0 is mostly along
  # X, then Y; for a zero vector: the identity. Computed at v0's own shape (often a constant).
  n0 = _safe_norm(v0)
  mostly_x = xp.abs(v0[..., :1]) > 0.9 * n0
  e = xp.where(mostly_x, xp.asarray([0.0, 1.0, 0.0], v0.dtype), xp.asarray([1.0, 0.0, 0.0], v0.dtype))
  axis = cross(v0, e)
  axis = axis / xp.maximum(_safe_norm(axis), 1e-30)
  half_turn = xp.concatenate([xp.zeros_like(n0), axis], -1)
  identity = xp.asarray([1.0, 0.0, 0.0, 0.0], v0.dtype)
  n0n1 = xp.sqrt(_dot(v0, v0) * _dot(v1, v1))
  q = xp.concatenate([n0n1 + _dot(v0, v1), cross(v0, v1)], axis=-1)
  n2 = _dot(q, q)
  good = n2 > (1e-7 * n0n1) ** 2 + 1e-30
  out = q * _rsqrt(xp, xp.where(good, n2, 1.0))
  return xp.where(good, out, xp.where(n0n1 > 0, half_turn, identity))


def qfix(q, time_axis: int = -3) -> AnyArray:
  """Sign-continuity across time: flips `q[t]` where needed so consecutive frames have `q[t]·q[t-1] ≥ 0`.

  Args:
    q: [..., T, J, 4] (time axis `time_axis`, default -3 as HumanML3D) or e.g. [T, 4] with
      `time_axis=-2`.
  """
  xp, (q,) = _floats(q)
  _check_last(q, 4, "q", "qfix")
  axis = time_axis % q.ndim
  if axis == q.ndim - 1:
    raise InputError(f"qfix: time_axis {time_axis} is the quaternion axis of shape {tuple(q.shape)}")
  n = q.shape[axis]
  if n < 2:
    return q
  cur = _slice(q, 1, n, axis)
  prev = _slice(q, 0, n - 1, axis)
  flips = (xp.sum(cur * prev, axis=-1, keepdims=True) < 0).astype(xp.int32)
  parity = xp.cumsum(flips, axis=axis) % 2
  sign = xp.where(parity == 1, -1.0, 1.0).astype(q.dtype)
  return xp.concatenate([_slice(q, 0, 1, axis), cur * sign], axis=axis)


# ---------------------------------------------------------------------------------------------
# Matrices and 6D.


def quaternion_to_matrix(q) -> AnyArray:
  """[..., 4] (w, x, y, z), not necessarily unit -> rotation matrices [..., 3, 3] (`v' = R v`)."""
  xp, (q,) = _floats(q)
  _check_last(q, 4, "q", "quaternion_to_matrix")
  w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  s = 2.0 / (w * w + x * x + y * y + z * z)
  return xp.stack([
      xp.stack([1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)], -1),
      xp.stack([s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)], -1),
      xp.stack([s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)], -1),
  ], axis=-2)


def matrix_to_quaternion(m) -> AnyArray:
  """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] with `w ≥ 0`.

  Branch-free Shepperd method: of the four candidate formulas the one with the largest squared
  component is used, so the result is accurate for every rotation.
  """
  xp, (m,) = _floats(m)
  _check_matrices(m, "matrix_to_quaternion")
  m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
  m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
  m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
  # 4*w^2, 4*x^2, 4*y^2, 4*z^2.
  sq = xp.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1)
  # Row c: 4*q_c*(w, x, y, z).
  cands = xp.stack([
      xp.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
      xp.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], -1),
      xp.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], -1),
      xp.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], -1),
  ], axis=-2)
  best = xp.argmax(sq, axis=-1)
  denom = 2.0 * xp.sqrt(xp.maximum(xp.take_along_axis(sq, best[..., None], -1), 1e-12))
  quat = xp.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :] / denom
  quat = xp.where(quat[..., :1] < 0, -quat, quat)
  return qnormalize(quat)


def cont6d_to_matrix(d6) -> AnyArray:
  """Continuous 6D [..., 6] -> rotation matrices [..., 3, 3] by Gram-Schmidt on the two columns."""
  xp, (d6,) = _floats(d6)
  _check_last(d6, 6, "cont6d", "cont6d_to_matrix")
  a1, a2 = d6[..., :3], d6[..., 3:]
  x = a1 / xp.maximum(_safe_norm(a1), 1e-12)
  z = cross(x, a2)
  z = z / xp.maximum(_safe_norm(z), 1e-12)
  y = cross(z, x)
  return xp.stack([x, y, z], axis=-1)


def matrix_to_cont6d(m) -> AnyArray:
  """Rotation matrices [..., 3, 3] -> 6D [..., 6]: first column then second column."""
  xp, (m,) = _floats(m)
  _check_matrices(m, "matrix_to_cont6d")
  return xp.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def quaternion_to_cont6d(q) -> AnyArray:
  """[..., 4] -> [..., 6]: the first two columns of the rotation matrix (computed directly)."""
  xp, (q,) = _floats(q)
  _check_last(q, 4, "q", "quaternion_to_cont6d")
  w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  s = 2.0 / (w * w + x * x + y * y + z * z)
  return xp.stack([1 - s * (y * y + z * z), s * (x * y + z * w), s * (x * z - y * w),
                   s * (x * y - z * w), 1 - s * (x * x + z * z), s * (y * z + x * w)], axis=-1)


def cont6d_to_quaternion(d6) -> AnyArray:
  """[..., 6] -> unit quaternions [..., 4] (`w ≥ 0`)."""
  return matrix_to_quaternion(cont6d_to_matrix(d6))


# ---------------------------------------------------------------------------------------------
# Euler angles (NumPy side: scipy, which also resolves gimbal lock).


def _parse_order(order: str, fn: str) -> tuple[int, int, int]:
  if not isinstance(order, str) or len(order) != 3 or any(c not in _AXES for c in order.upper()):
    raise InputError(f"{fn}: order must be three of X/Y/Z such as 'ZXY', found {order!r}")
  axes = tuple(_AXES[c] for c in order.upper())
  if len(set(axes)) != 3:
    raise InputError(f"{fn}: only Tait-Bryan orders with three distinct axes are supported, found {order!r}")
  return axes


def _scipy_sequence(order: str, intrinsic: bool) -> str:
  return order.upper() if intrinsic else order.lower()


def to_scipy(q) -> transform.Rotation:
  """NumPy quaternions [..., 4] (w, x, y, z) -> one scipy `Rotation` of the flattened batch."""
  return transform.Rotation.from_quat(np.asarray(q).reshape(-1, 4)[:, [1, 2, 3, 0]])


def from_scipy(r: transform.Rotation, batch: tuple[int, ...] = (-1,),
               dtype=np.float64) -> np.ndarray:
  """A scipy `Rotation` -> NumPy quaternions [*batch, 4] (w, x, y, z) of `dtype`."""
  return r.as_quat().reshape(-1, 4)[:, [3, 0, 1, 2]].reshape(tuple(batch) + (4,)).astype(dtype)


def _as_euler(r: transform.Rotation, order: str, intrinsic: bool, batch: tuple[int, ...],
              dtype) -> np.ndarray:
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # Gimbal lock: scipy picks a valid solution.
    angles = r.as_euler(_scipy_sequence(order, intrinsic))
  return angles.reshape(batch + (3,)).astype(dtype)


def _axis_quaternion(angle: AnyArray, axis: int) -> AnyArray:
  xp = _namespace(angle)
  half = 0.5 * angle
  zeros = xp.zeros_like(angle)
  parts = [zeros, zeros, zeros]
  parts[axis] = xp.sin(half)
  return xp.stack([xp.cos(half)] + parts, axis=-1)


def euler_to_quaternion(angles, order: str, intrinsic: bool = True) -> AnyArray:
  """Euler angles in radians [..., 3] -> unit quaternions [..., 4].

  `angles[..., i]` is the angle about axis `order[i]` (case ignored). Intrinsic (moving axes, the
  BVH convention for a channel list `Zrotation Xrotation Yrotation`): `R = R_{o0} R_{o1} R_{o2}`;
  extrinsic (fixed axes): `R = R_{o2} R_{o1} R_{o0}`. Same as scipy's `from_euler('ZXY'|'zxy')`.
  """
  xp, (angles,) = _floats(angles)
  _check_last(angles, 3, "angles", "euler_to_quaternion")
  axes = _parse_order(order, "euler_to_quaternion")
  qs = [_axis_quaternion(angles[..., i], axes[i]) for i in range(3)]
  if not intrinsic:
    qs = qs[::-1]
  return qmul(qmul(qs[0], qs[1]), qs[2])


def matrix_to_euler(m, order: str, intrinsic: bool = True) -> AnyArray:
  """Rotation matrices [..., 3, 3] -> Euler angles in radians [..., 3] (`euler_to_matrix` inverse).

  The middle angle is in [-pi/2, pi/2]; the others in (-pi, pi]. At gimbal lock (middle angle
  ±pi/2) the split between the first and last angle is arbitrary (NumPy: scipy's, last angle 0).
  """
  xp, (m,) = _floats(m)
  _check_matrices(m, "matrix_to_euler")
  axes = _parse_order(order, "matrix_to_euler")
  if xp is np:
    r = transform.Rotation.from_matrix(m.reshape(-1, 3, 3))
    return _as_euler(r, order, intrinsic, m.shape[:-2], m.dtype)
  if not intrinsic:
    axes = axes[::-1]  # extrinsic 'abc' == intrinsic 'cba' with the angles reversed
  i, j, k = axes
  sign = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 for cyclic orders XYZ, YZX, ZXY
  a = jnp.arctan2(-sign * m[..., j, k], m[..., k, k])
  b = jnp.arcsin(jnp.clip(sign * m[..., i, k], -1.0, 1.0))
  c = jnp.arctan2(-sign * m[..., i, j], m[..., i, i])
  out = jnp.stack([a, b, c], axis=-1)
  return out[..., ::-1] if not intrinsic else out


def quaternion_to_euler(q, order: str, intrinsic: bool = True) -> AnyArray:
  """Unit quaternions [..., 4] -> Euler angles in radians [..., 3], the inverse of
  `euler_to_quaternion` (ranges and gimbal lock as `matrix_to_euler`)."""
  xp, (q,) = _floats(q)
  _check_last(q, 4, "q", "quaternion_to_euler")
  if xp is np:
    _parse_order(order, "quaternion_to_euler")
    return _as_euler(to_scipy(q), order, intrinsic, q.shape[:-1], q.dtype)
  return matrix_to_euler(quaternion_to_matrix(q), order, intrinsic)


def euler_to_matrix(angles, order: str, intrinsic: bool = True) -> AnyArray:
  """Euler angles in radians [..., 3] -> rotation matrices [..., 3, 3] (as `euler_to_quaternion`)."""
  return quaternion_to_matrix(euler_to_quaternion(angles, order, intrinsic))


# ---------------------------------------------------------------------------------------------
# Axis-angle and interpolation.


def axis_angle_to_quaternion(axis_angle) -> AnyArray:
  """Axis-angle (rotation vector, radians) [..., 3] -> unit quaternions [..., 4]."""
  xp, (aa,) = _floats(axis_angle)
  _check_last(aa, 3, "axis_angle", "axis_angle_to_quaternion")
  theta = _safe_norm(aa)
  return xp.concatenate([xp.cos(0.5 * theta), 0.5 * xp.sinc(theta / (2 * np.pi)) * aa], axis=-1)


def quaternion_to_axis_angle(q) -> AnyArray:
  """Unit quaternions [..., 4] -> axis-angle [..., 3] with angle in [0, pi]."""
  xp, (q,) = _floats(q)
  _check_last(q, 4, "q", "quaternion_to_axis_angle")
  q = xp.where(q[..., :1] < 0, -q, q)
  sin_half = _safe_norm(q[..., 1:])
  angle = 2.0 * xp.arctan2(sin_half, q[..., :1])
  # angle / sin(angle/2) -> 2 as angle -> 0.
  scale = xp.where(sin_half > 1e-8, angle / xp.where(sin_half > 1e-8, sin_half, 1.0), 2.0)
  return q[..., 1:] * scale


def quaternion_slerp(q0, q1, t) -> AnyArray:
  """Spherical linear interpolation along the shortest arc.

  Args:
    q0, q1: unit quaternions [..., 4] (broadcasting).
    t: interpolation weights [...] (0 -> q0, 1 -> q1), broadcast against the quaternions' batch.
  Returns:
    unit quaternions [..., 4].
  """
  xp, (q0, q1, t) = _floats(q0, q1, t)
  _check_last(q0, 4, "q0", "quaternion_slerp")
  _check_last(q1, 4, "q1", "quaternion_slerp")
  t = t[..., None]
  dot = xp.sum(q0 * q1, axis=-1, keepdims=True)
  q1 = xp.where(dot < 0, -q1, q1)
  dot = xp.abs(dot)
  close = dot > 0.9995
  omega = xp.arccos(xp.clip(dot, -1.0, 1.0))
  sin_omega = xp.where(close, 1.0, xp.sin(omega))
  w0 = xp.where(close, 1.0 - t, xp.sin((1.0 - t) * omega) / sin_omega)
  w1 = xp.where(close, t, xp.sin(t * omega) / sin_omega)
  return qnormalize(w0 * q0 + w1 * q1)

