"""Rotations: quaternions `(w, x, y, z)`, rotation matrices and the continuous 6D representation.

Conventions follow HumanML3D's `common/quaternion.py` (reference.md §7.2):
* quaternions are `(w, x, y, z)`, Hamilton product, `qrot(q, v)` rotates `v` by `q`;
* a rotation matrix acts on column vectors, `v' = R v`;
* 6D = the first two *columns* of the matrix, `cat(R[..., :, 0], R[..., :, 1])`, and
  `cont6d_to_matrix` re-orthonormalises with Gram-Schmidt (`x = a1/|a1|`, `z = x × a2/|.|`,
  `y = z × x`, `R = [x y z]`).

Every function is pure `jax.numpy`, broadcasts over leading dimensions, accepts NumPy input and is
jittable. Results are float32 unless the input is a wider float under `jax_enable_x64`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError

Array = jax.Array

_AXES = {"X": 0, "Y": 1, "Z": 2}


def _as_float(x) -> Array:
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x


def _check_last(x, n: int, name: str, fn: str) -> None:
  if x.ndim < 1 or x.shape[-1] != n:
    raise InputError(f"{fn}: `{name}` must have shape [..., {n}], found {tuple(x.shape)}")


def _dot(a: Array, b: Array) -> Array:
  """Dot product over a short last axis, kept as size 1 (unrolled: XLA:CPU reduces a minor axis
  of size 3-4 slowly)."""
  out = a[..., 0:1] * b[..., 0:1]
  for i in range(1, max(a.shape[-1], b.shape[-1])):
    out = out + a[..., i:i + 1] * b[..., i:i + 1]
  return out


def _safe_norm(v: Array) -> Array:
  """Euclidean norm over the last axis (kept), with a finite gradient at 0."""
  sq = _dot(v, v)
  safe = jnp.where(sq > 0, sq, 1.0)
  return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


# ---------------------------------------------------------------------------------------------
# Quaternion algebra.


def qmul(q, r) -> Array:
  """Hamilton product `q ⊗ r`: [..., 4] x [..., 4] -> [..., 4] (broadcasting)."""
  q, r = _as_float(q), _as_float(r)
  _check_last(q, 4, "q", "qmul")
  _check_last(r, 4, "r", "qmul")
  w1, x1, y1, z1 = jnp.moveaxis(q, -1, 0)
  w2, x2, y2, z2 = jnp.moveaxis(r, -1, 0)
  return jnp.stack([
      w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
      w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
      w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
      w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
  ], axis=-1)


def qinv(q) -> Array:
  """Conjugate `(w, -x, -y, -z)`: the inverse of a unit quaternion. [..., 4] -> [..., 4]."""
  q = _as_float(q)
  _check_last(q, 4, "q", "qinv")
  return q * jnp.asarray([1.0, -1.0, -1.0, -1.0], q.dtype)


def qnormalize(q) -> Array:
  """Unit quaternion `q / |q|` ([..., 4]); a zero quaternion becomes the identity."""
  q = _as_float(q)
  _check_last(q, 4, "q", "qnormalize")
  n = _safe_norm(q)
  identity = jnp.asarray([1.0, 0.0, 0.0, 0.0], q.dtype)
  return jnp.where(n > 0, q / jnp.where(n > 0, n, 1.0), identity)


def qrot(q, v) -> Array:
  """Rotates vectors `v` [..., 3] by quaternions `q` [..., 4] (broadcasting): `v + 2(w u×v + u×(u×v))`."""
  q, v = _as_float(q), _as_float(v)
  _check_last(q, 4, "q", "qrot")
  _check_last(v, 3, "v", "qrot")
  u = q[..., 1:]
  uv = jnp.cross(u, v)
  uuv = jnp.cross(u, uv)
  return v + 2.0 * (q[..., :1] * uv + uuv)


def qbetween(v0, v1) -> Array:
  """The shortest-arc unit quaternion rotating direction `v0` onto `v1`: [..., 3] x [..., 3] -> [..., 4].

  `normalize([sqrt(|v0|²|v1|²) + v0·v1, v0 × v1])` as HumanML3D. Opposite directions give the
  half turn about an axis perpendicular to `v0`; a zero vector gives the identity.
  """
  v0, v1 = _as_float(v0), _as_float(v1)
  _check_last(v0, 3, "v0", "qbetween")
  _check_last(v1, 3, "v1", "qbetween")
  # Fallback for opposite directions: the half turn about v0 x e, e = X unless v0 is mostly along
  # X, then Y; for a zero vector: the identity. Computed at v0's own shape (often a constant).
  n0 = _safe_norm(v0)
  mostly_x = jnp.abs(v0[..., :1]) > 0.9 * n0
  e = jnp.where(mostly_x, jnp.asarray([0.0, 1.0, 0.0], v0.dtype), jnp.asarray([1.0, 0.0, 0.0], v0.dtype))
  axis = jnp.cross(v0, e)
  axis = axis / jnp.maximum(_safe_norm(axis), 1e-30)
  half_turn = jnp.concatenate([jnp.zeros_like(n0), axis], -1)
  identity = jnp.asarray([1.0, 0.0, 0.0, 0.0], v0.dtype)
  n0n1 = jnp.sqrt(_dot(v0, v0) * _dot(v1, v1))
  q = jnp.concatenate([n0n1 + _dot(v0, v1), jnp.cross(v0, v1)], axis=-1)
  n2 = _dot(q, q)
  good = n2 > (1e-7 * n0n1) ** 2 + 1e-30
  out = q * jax.lax.rsqrt(jnp.where(good, n2, 1.0))
  return jnp.where(good, out, jnp.where(n0n1 > 0, half_turn, identity))


def qfix(q, time_axis: int = -3) -> Array:
  """Sign-continuity across time: flips `q[t]` where needed so consecutive frames have `q[t]·q[t-1] ≥ 0`.

  Args:
    q: [..., T, J, 4] (time axis `time_axis`, default -3 as HumanML3D) or e.g. [T, 4] with
      `time_axis=-2`.
  """
  q = _as_float(q)
  _check_last(q, 4, "q", "qfix")
  axis = time_axis % q.ndim
  if axis == q.ndim - 1:
    raise InputError(f"qfix: time_axis {time_axis} is the quaternion axis of shape {tuple(q.shape)}")
  n = q.shape[axis]
  if n < 2:
    return q
  cur = jax.lax.slice_in_dim(q, 1, n, axis=axis)
  prev = jax.lax.slice_in_dim(q, 0, n - 1, axis=axis)
  flips = (jnp.sum(cur * prev, axis=-1, keepdims=True) < 0).astype(jnp.int32)
  parity = jnp.cumsum(flips, axis=axis) % 2
  sign = jnp.where(parity == 1, -1.0, 1.0).astype(q.dtype)
  first = jax.lax.slice_in_dim(q, 0, 1, axis=axis)
  return jnp.concatenate([first, cur * sign], axis=axis)


# ---------------------------------------------------------------------------------------------
# Matrices and 6D.


def quaternion_to_matrix(q) -> Array:
  """[..., 4] (w, x, y, z), not necessarily unit -> rotation matrices [..., 3, 3] (`v' = R v`)."""
  q = _as_float(q)
  _check_last(q, 4, "q", "quaternion_to_matrix")
  w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  s = 2.0 / (w * w + x * x + y * y + z * z)
  return jnp.stack([
      jnp.stack([1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)], -1),
      jnp.stack([s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)], -1),
      jnp.stack([s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)], -1),
  ], axis=-2)


def matrix_to_quaternion(m) -> Array:
  """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] with `w ≥ 0`.

  Branch-free Shepperd method: of the four candidate formulas the one with the largest squared
  component is used, so the result is accurate for every rotation.
  """
  m = _as_float(m)
  if m.ndim < 2 or m.shape[-2:] != (3, 3):
    raise InputError(f"matrix_to_quaternion: matrices must have shape [..., 3, 3], found {tuple(m.shape)}")
  m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
  m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
  m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
  # 4*w^2, 4*x^2, 4*y^2, 4*z^2.
  sq = jnp.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                  1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1)
  # Row c: 4*q_c*(w, x, y, z).
  cands = jnp.stack([
      jnp.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
      jnp.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], -1),
      jnp.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], -1),
      jnp.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], -1),
  ], axis=-2)
  best = jnp.argmax(sq, axis=-1)
  denom = 2.0 * jnp.sqrt(jnp.maximum(jnp.take_along_axis(sq, best[..., None], -1), 1e-12))
  quat = jnp.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :] / denom
  quat = jnp.where(quat[..., :1] < 0, -quat, quat)
  return qnormalize(quat)


def cont6d_to_matrix(d6) -> Array:
  """Continuous 6D [..., 6] -> rotation matrices [..., 3, 3] by Gram-Schmidt on the two columns."""
  d6 = _as_float(d6)
  _check_last(d6, 6, "cont6d", "cont6d_to_matrix")
  a1, a2 = d6[..., :3], d6[..., 3:]
  x = a1 / jnp.maximum(_safe_norm(a1), 1e-12)
  z = jnp.cross(x, a2)
  z = z / jnp.maximum(_safe_norm(z), 1e-12)
  y = jnp.cross(z, x)
  return jnp.stack([x, y, z], axis=-1)


def matrix_to_cont6d(m) -> Array:
  """Rotation matrices [..., 3, 3] -> 6D [..., 6]: first column then second column."""
  m = _as_float(m)
  if m.ndim < 2 or m.shape[-2:] != (3, 3):
    raise InputError(f"matrix_to_cont6d: matrices must have shape [..., 3, 3], found {tuple(m.shape)}")
  return jnp.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def quaternion_to_cont6d(q) -> Array:
  """[..., 4] -> [..., 6]: the first two columns of the rotation matrix (computed directly)."""
  q = _as_float(q)
  _check_last(q, 4, "q", "quaternion_to_cont6d")
  w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  s = 2.0 / (w * w + x * x + y * y + z * z)
  return jnp.stack([1 - s * (y * y + z * z), s * (x * y + z * w), s * (x * z - y * w),
                    s * (x * y - z * w), 1 - s * (x * x + z * z), s * (y * z + x * w)], axis=-1)


def cont6d_to_quaternion(d6) -> Array:
  """[..., 6] -> unit quaternions [..., 4] (`w ≥ 0`)."""
  return matrix_to_quaternion(cont6d_to_matrix(d6))


# ---------------------------------------------------------------------------------------------
# Euler angles, axis-angle, interpolation.


def _parse_order(order: str, fn: str) -> tuple[int, int, int]:
  if not isinstance(order, str) or len(order) != 3 or any(c not in _AXES for c in order.upper()):
    raise InputError(f"{fn}: order must be three of X/Y/Z such as 'ZXY', found {order!r}")
  axes = tuple(_AXES[c] for c in order.upper())
  if len(set(axes)) != 3:
    raise InputError(f"{fn}: only Tait-Bryan orders with three distinct axes are supported, found {order!r}")
  return axes


def _axis_quaternion(angle: Array, axis: int) -> Array:
  half = 0.5 * angle
  zeros = jnp.zeros_like(angle)
  parts = [zeros, zeros, zeros]
  parts[axis] = jnp.sin(half)
  return jnp.stack([jnp.cos(half)] + parts, axis=-1)


def euler_to_quaternion(angles, order: str, intrinsic: bool = True) -> Array:
  """Euler angles in radians [..., 3] -> unit quaternions [..., 4].

  `angles[..., i]` is the angle about axis `order[i]` (case ignored). Intrinsic (moving axes, the
  BVH convention for a channel list `Zrotation Xrotation Yrotation`): `R = R_{o0} R_{o1} R_{o2}`;
  extrinsic (fixed axes): `R = R_{o2} R_{o1} R_{o0}`. Same as scipy's `from_euler('ZXY'|'zxy')`.
  """
  angles = _as_float(angles)
  _check_last(angles, 3, "angles", "euler_to_quaternion")
  axes = _parse_order(order, "euler_to_quaternion")
  qs = [_axis_quaternion(angles[..., i], axes[i]) for i in range(3)]
  if not intrinsic:
    qs = qs[::-1]
  return qmul(qmul(qs[0], qs[1]), qs[2])


def quaternion_to_euler(q, order: str, intrinsic: bool = True) -> Array:
  """Unit quaternions [..., 4] -> Euler angles in radians [..., 3], the inverse of `euler_to_quaternion`.

  The middle angle is in [-pi/2, pi/2]; the others in (-pi, pi]. At gimbal lock (middle angle
  ±pi/2) the split between the first and last angle is arbitrary.
  """
  q = _as_float(q)
  _check_last(q, 4, "q", "quaternion_to_euler")
  axes = _parse_order(order, "quaternion_to_euler")
  if not intrinsic:
    axes = axes[::-1]  # extrinsic 'abc' == intrinsic 'cba' with the angles reversed
  i, j, k = axes
  sign = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 for cyclic orders XYZ, YZX, ZXY
  m = quaternion_to_matrix(q)
  a = jnp.arctan2(-sign * m[..., j, k], m[..., k, k])
  b = jnp.arcsin(jnp.clip(sign * m[..., i, k], -1.0, 1.0))
  c = jnp.arctan2(-sign * m[..., i, j], m[..., i, i])
  out = jnp.stack([a, b, c], axis=-1)
  return out[..., ::-1] if not intrinsic else out


def axis_angle_to_quaternion(axis_angle) -> Array:
  """Axis-angle (rotation vector, radians) [..., 3] -> unit quaternions [..., 4]."""
  aa = _as_float(axis_angle)
  _check_last(aa, 3, "axis_angle", "axis_angle_to_quaternion")
  theta = _safe_norm(aa)
  return jnp.concatenate([jnp.cos(0.5 * theta), 0.5 * jnp.sinc(theta / (2 * np.pi)) * aa], axis=-1)


def quaternion_to_axis_angle(q) -> Array:
  """Unit quaternions [..., 4] -> axis-angle [..., 3] with angle in [0, pi]."""
  q = _as_float(q)
  _check_last(q, 4, "q", "quaternion_to_axis_angle")
  q = jnp.where(q[..., :1] < 0, -q, q)
  sin_half = _safe_norm(q[..., 1:])
  angle = 2.0 * jnp.arctan2(sin_half, q[..., :1])
  # angle / sin(angle/2) -> 2 as angle -> 0.
  scale = jnp.where(sin_half > 1e-8, angle / jnp.where(sin_half > 1e-8, sin_half, 1.0), 2.0)
  return q[..., 1:] * scale


def quaternion_slerp(q0, q1, t) -> Array:
  """Spherical linear interpolation along the shortest arc.

  Args:
    q0, q1: unit quaternions [..., 4] (broadcasting).
    t: interpolation weights [...] (0 -> q0, 1 -> q1), broadcast against the quaternions' batch.
  Returns:
    unit quaternions [..., 4].
  """
  q0, q1, t = _as_float(q0), _as_float(q1), _as_float(t)
  _check_last(q0, 4, "q0", "quaternion_slerp")
  _check_last(q1, 4, "q1", "quaternion_slerp")
  t = t[..., None]
  dot = jnp.sum(q0 * q1, axis=-1, keepdims=True)
  q1 = jnp.where(dot < 0, -q1, q1)
  dot = jnp.abs(dot)
  close = dot > 0.9995
  omega = jnp.arccos(jnp.clip(dot, -1.0, 1.0))
  sin_omega = jnp.where(close, 1.0, jnp.sin(omega))
  w0 = jnp.where(close, 1.0 - t, jnp.sin((1.0 - t) * omega) / sin_omega)
  w1 = jnp.where(close, t, jnp.sin(t * omega) / sin_omega)
  return qnormalize(w0 * q0 + w1 * q1)
