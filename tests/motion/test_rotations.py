"""Quaternion / matrix / 6D / Euler conventions against scipy.spatial.transform.Rotation, on both
backends of lead_jax.motion.rotations (JAX arrays in: jax.numpy; NumPy in: NumPy / scipy)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from lead_jax.errors import InputError
from lead_jax.motion import rotations as rot

RNG = np.random.default_rng(0)


def to_scipy(q):  # (w, x, y, z) -> scipy (x, y, z, w)
  return Rotation.from_quat(np.asarray(q)[..., [1, 2, 3, 0]])


def from_scipy(r):
  return r.as_quat()[..., [3, 0, 1, 2]]


def same_rotation(q1, q2, atol=1e-5):
  q1, q2 = np.asarray(q1), np.asarray(q2)
  dot = np.abs(np.sum(q1 * q2, -1))
  np.testing.assert_allclose(dot, 1.0, atol=atol)


@pytest.fixture(scope="module")
def quats():
  return from_scipy(Rotation.random(64, random_state=1)).astype(np.float32)


@pytest.fixture(params=["jax", "numpy"])
def to(request):
  """Puts test inputs on one backend; the result must come back on the same one."""
  if request.param == "jax":
    return jnp.asarray
  return np.asarray


def on_backend(to, x):
  """`x` is an array of the backend `to` puts inputs on."""
  return isinstance(x, jax.Array) if to is jnp.asarray else isinstance(x, np.ndarray)


def test_quaternion_to_matrix_matches_scipy(quats, to):
  out = rot.quaternion_to_matrix(to(quats))
  assert on_backend(to, out)
  np.testing.assert_allclose(out, to_scipy(quats).as_matrix(), atol=1e-6)


def test_matrix_to_quaternion_round_trip(quats, to):
  mats = to_scipy(quats).as_matrix().astype(np.float32)
  back = rot.matrix_to_quaternion(to(mats))
  assert on_backend(to, back)
  back = np.asarray(back)
  assert (back[:, 0] >= 0).all()
  same_rotation(back, quats)
  # Half turns (w = 0) take the x/y/z branches.
  half = from_scipy(Rotation.from_rotvec(np.pi * np.eye(3))).astype(np.float32)
  same_rotation(rot.matrix_to_quaternion(to(to_scipy(half).as_matrix())), half)


def test_qmul_qrot_qinv_match_scipy(quats, to):
  q1, q2 = quats[:32], quats[32:]
  same_rotation(rot.qmul(to(q1), to(q2)), from_scipy(to_scipy(q1) * to_scipy(q2)))
  v = RNG.normal(size=(32, 3)).astype(np.float32)
  rotated = rot.qrot(to(q1), to(v))
  assert on_backend(to, rotated)
  np.testing.assert_allclose(rotated, to_scipy(q1).apply(v), atol=1e-5)
  np.testing.assert_allclose(rot.qrot(rot.qinv(to(q1)), rotated), v, atol=1e-5)
  # Broadcasting: one quaternion for many vectors.
  np.testing.assert_allclose(rot.qrot(to(q1[0]), to(v)), to_scipy(q1[0]).apply(v), atol=1e-5)


def test_cont6d_round_trip(quats, to):
  d6 = np.asarray(rot.quaternion_to_cont6d(to(quats)))
  mats = to_scipy(quats).as_matrix()
  np.testing.assert_allclose(d6, np.concatenate([mats[..., :, 0], mats[..., :, 1]], -1), atol=1e-6)
  np.testing.assert_allclose(rot.cont6d_to_matrix(to(d6)), mats, atol=1e-5)
  np.testing.assert_allclose(rot.matrix_to_cont6d(to(mats)), d6, atol=1e-6)
  same_rotation(rot.cont6d_to_quaternion(to(d6)), quats)
  # Gram-Schmidt: a scaled, skewed 6D gives the same rotation.
  skewed = np.concatenate([2.5 * d6[:, :3], 0.7 * d6[:, 3:] + 0.3 * d6[:, :3]], -1)
  np.testing.assert_allclose(rot.cont6d_to_matrix(to(skewed)), mats, atol=1e-5)


@pytest.mark.parametrize("order", ["".join(p) for p in itertools.permutations("XYZ")])
@pytest.mark.parametrize("intrinsic", [True, False])
def test_euler_matches_scipy(order, intrinsic, to):
  angles = RNG.uniform(-1.4, 1.4, size=(16, 3)).astype(np.float32)
  scipy_order = order if intrinsic else order.lower()
  q = rot.euler_to_quaternion(to(angles), order, intrinsic=intrinsic)
  assert on_backend(to, q)
  same_rotation(q, from_scipy(Rotation.from_euler(scipy_order, angles)))
  back = np.asarray(rot.quaternion_to_euler(q, order, intrinsic=intrinsic))
  np.testing.assert_allclose(back, angles, atol=2e-5)
  np.testing.assert_allclose(back, Rotation.from_euler(scipy_order, angles).as_euler(scipy_order), atol=2e-5)
  mats = rot.euler_to_matrix(to(angles), order, intrinsic=intrinsic)
  np.testing.assert_allclose(mats, Rotation.from_euler(scipy_order, angles).as_matrix(), atol=1e-6)
  np.testing.assert_allclose(rot.matrix_to_euler(mats, order, intrinsic=intrinsic), angles, atol=2e-5)


def test_numpy_float64_stays_float64():
  """The importers' path: float64 NumPy in, float64 NumPy out, at float64 accuracy."""
  angles = RNG.uniform(-np.pi, np.pi, size=(32, 3))
  mats = rot.euler_to_matrix(angles, "ZXY")
  assert isinstance(mats, np.ndarray) and mats.dtype == np.float64
  np.testing.assert_allclose(mats, Rotation.from_euler("ZXY", angles).as_matrix(), atol=1e-14)
  np.testing.assert_allclose(rot.euler_to_matrix(rot.matrix_to_euler(mats, "ZXY"), "ZXY"), mats,
                             atol=1e-13)
  q = rot.matrix_to_quaternion(mats)
  assert q.dtype == np.float64
  np.testing.assert_allclose(rot.quaternion_to_matrix(q), mats, atol=1e-14)
  v = RNG.normal(size=(32, 3))
  np.testing.assert_allclose(rot.qrot(q, v), np.einsum("tij,tj->ti", mats, v), atol=1e-13)
  # Gimbal lock (middle angle 90 degrees): scipy's split of the outer angles keeps the rotation.
  locked = rot.euler_to_matrix(np.array([[0.3, np.pi / 2, -1.1]]), "ZXY")
  np.testing.assert_allclose(rot.euler_to_matrix(rot.matrix_to_euler(locked, "ZXY"), "ZXY"), locked,
                             atol=1e-12)
  # Ints are promoted to float64, lists stay on NumPy.
  assert rot.qrot([1, 0, 0, 0], [0, 0, 1]).dtype == np.float64


def test_euler_rejects_bad_order():
  with pytest.raises(InputError, match="order"):
    rot.euler_to_quaternion(np.zeros(3), "XXY")
  with pytest.raises(InputError, match=r"\[\.\.\., 3\]"):
    rot.euler_to_quaternion(np.zeros(4), "XYZ")


def test_axis_angle_matches_scipy(to):
  aa = RNG.normal(size=(32, 3)).astype(np.float32)
  aa[0] = 0.0
  aa[1] = [1e-6, 0.0, 0.0]
  q = rot.axis_angle_to_quaternion(to(aa))
  assert on_backend(to, q)
  same_rotation(q, from_scipy(Rotation.from_rotvec(aa)))
  # Round trip for angles below pi.
  small = aa * (2.5 / np.maximum(np.linalg.norm(aa, axis=-1, keepdims=True), 2.5))
  np.testing.assert_allclose(rot.quaternion_to_axis_angle(rot.axis_angle_to_quaternion(to(small))),
                             small, atol=1e-5)


def test_qbetween_rotates_direction(to):
  v0 = RNG.normal(size=(32, 3)).astype(np.float32)
  v1 = RNG.normal(size=(32, 3)).astype(np.float32)
  q = rot.qbetween(to(v0), to(v1))
  assert on_backend(to, q)
  np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-6)
  unit1 = v1 / np.linalg.norm(v1, axis=-1, keepdims=True)
  np.testing.assert_allclose(rot.qrot(q, to(v0)) / np.linalg.norm(v0, axis=-1, keepdims=True), unit1,
                             atol=1e-5)
  # The shortest arc: the rotation axis is perpendicular to both vectors.
  np.testing.assert_allclose(np.sum(np.asarray(q)[:, 1:] * v0, -1), 0.0, atol=1e-5)
  # Opposite and zero vectors stay finite.
  axes = np.array([[0.0, 0, 1], [1.0, 0, 0]])
  opp = np.asarray(rot.qbetween(to(axes), to(np.array([[0.0, 0, -2], [-1.0, 0, 0]]))))
  np.testing.assert_allclose(rot.qrot(to(opp), to(axes)), [[0, 0, -1], [-1, 0, 0]], atol=1e-6)
  np.testing.assert_array_equal(rot.qbetween(to(np.zeros(3)), to(np.ones(3))), [1, 0, 0, 0])


def test_qfix_makes_sign_continuous(quats, to):
  seq = np.stack([quats[:8]] * 5)  # [T=5, J=8, 4]
  signs = np.array([1, -1, -1, 1, -1], np.float32)[:, None, None]
  fixed = rot.qfix(to(seq * signs))
  assert on_backend(to, fixed)
  np.testing.assert_allclose(fixed, np.broadcast_to(seq[:1], seq.shape), atol=0)
  np.testing.assert_allclose(rot.qfix(to((seq * signs)[:, 0]), time_axis=-2), seq[:, 0], atol=0)


def test_slerp_matches_scipy(quats, to):
  q0, q1 = quats[0], quats[1]
  t = np.linspace(0, 1, 7, dtype=np.float32)
  ours = rot.quaternion_slerp(to(np.broadcast_to(q0, (7, 4))), to(np.broadcast_to(q1, (7, 4))),
                              to(t))
  assert on_backend(to, ours)
  ref = from_scipy(Slerp([0, 1], to_scipy(np.stack([q0, q1])))(t))
  same_rotation(ours, ref, atol=1e-5)
  np.testing.assert_allclose(rot.quaternion_slerp(to(q0), to(-q1), 0.0), q0, atol=1e-6)  # shortest arc
  same_rotation(rot.quaternion_slerp(to(q0), to(q0 * 1.0), 0.3), q0)  # nearly equal: lerp branch


def test_jit_equals_eager(quats):
  """Jitted JAX equals eager JAX and the NumPy path."""
  f = lambda q: rot.quaternion_to_euler(rot.qmul(q, rot.qinv(q[::-1])), "ZXY")
  np.testing.assert_allclose(jax.jit(f)(quats), f(jnp.asarray(quats)), atol=1e-6)
  np.testing.assert_allclose(jax.jit(f)(quats), f(quats), atol=1e-5)
  g = lambda m: rot.matrix_to_quaternion(m)
  mats = to_scipy(quats).as_matrix().astype(np.float32)
  np.testing.assert_allclose(jax.jit(g)(mats), g(jnp.asarray(mats)), atol=1e-6)
  np.testing.assert_allclose(jax.jit(g)(mats), g(mats), atol=1e-6)
