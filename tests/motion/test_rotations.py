"""Quaternion / matrix / 6D / Euler conventions against scipy.spatial.transform.Rotation."""

import itertools

import jax
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


def test_quaternion_to_matrix_matches_scipy(quats):
  np.testing.assert_allclose(rot.quaternion_to_matrix(quats), to_scipy(quats).as_matrix(), atol=1e-6)


def test_matrix_to_quaternion_round_trip(quats):
  mats = to_scipy(quats).as_matrix().astype(np.float32)
  back = np.asarray(rot.matrix_to_quaternion(mats))
  assert (back[:, 0] >= 0).all()
  same_rotation(back, quats)
  # Half turns (w = 0) take the x/y/z branches.
  half = from_scipy(Rotation.from_rotvec(np.pi * np.eye(3))).astype(np.float32)
  same_rotation(rot.matrix_to_quaternion(to_scipy(half).as_matrix()), half)


def test_qmul_qrot_qinv_match_scipy(quats):
  q1, q2 = quats[:32], quats[32:]
  same_rotation(rot.qmul(q1, q2), from_scipy(to_scipy(q1) * to_scipy(q2)))
  v = RNG.normal(size=(32, 3)).astype(np.float32)
  np.testing.assert_allclose(rot.qrot(q1, v), to_scipy(q1).apply(v), atol=1e-5)
  np.testing.assert_allclose(rot.qrot(rot.qinv(q1), rot.qrot(q1, v)), v, atol=1e-5)
  # Broadcasting: one quaternion for many vectors.
  np.testing.assert_allclose(rot.qrot(q1[0], v), to_scipy(q1[0]).apply(v), atol=1e-5)


def test_cont6d_round_trip(quats):
  d6 = np.asarray(rot.quaternion_to_cont6d(quats))
  mats = to_scipy(quats).as_matrix()
  np.testing.assert_allclose(d6, np.concatenate([mats[..., :, 0], mats[..., :, 1]], -1), atol=1e-6)
  np.testing.assert_allclose(rot.cont6d_to_matrix(d6), mats, atol=1e-5)
  np.testing.assert_allclose(rot.matrix_to_cont6d(mats), d6, atol=1e-6)
  same_rotation(rot.cont6d_to_quaternion(d6), quats)
  # Gram-Schmidt: a scaled, skewed 6D gives the same rotation.
  skewed = np.concatenate([2.5 * d6[:, :3], 0.7 * d6[:, 3:] + 0.3 * d6[:, :3]], -1)
  np.testing.assert_allclose(rot.cont6d_to_matrix(skewed), mats, atol=1e-5)


@pytest.mark.parametrize("order", ["".join(p) for p in itertools.permutations("XYZ")])
@pytest.mark.parametrize("intrinsic", [True, False])
def test_euler_matches_scipy(order, intrinsic):
  angles = RNG.uniform(-1.4, 1.4, size=(16, 3)).astype(np.float32)
  scipy_order = order if intrinsic else order.lower()
  q = rot.euler_to_quaternion(angles, order, intrinsic=intrinsic)
  same_rotation(q, from_scipy(Rotation.from_euler(scipy_order, angles)))
  back = np.asarray(rot.quaternion_to_euler(q, order, intrinsic=intrinsic))
  np.testing.assert_allclose(back, angles, atol=2e-5)
  np.testing.assert_allclose(back, Rotation.from_euler(scipy_order, angles).as_euler(scipy_order), atol=2e-5)


def test_euler_rejects_bad_order():
  with pytest.raises(InputError, match="order"):
    rot.euler_to_quaternion(np.zeros(3), "XXY")
  with pytest.raises(InputError, match=r"\[\.\.\., 3\]"):
    rot.euler_to_quaternion(np.zeros(4), "XYZ")


def test_axis_angle_matches_scipy():
  aa = RNG.normal(size=(32, 3)).astype(np.float32)
  aa[0] = 0.0
  aa[1] = [1e-6, 0.0, 0.0]
  q = rot.axis_angle_to_quaternion(aa)
  same_rotation(q, from_scipy(Rotation.from_rotvec(aa)))
  # Round trip for angles below pi.
  small = aa * (2.5 / np.maximum(np.linalg.norm(aa, axis=-1, keepdims=True), 2.5))
  np.testing.assert_allclose(rot.quaternion_to_axis_angle(rot.axis_angle_to_quaternion(small)), small, atol=1e-5)


def test_qbetween_rotates_direction():
  v0 = RNG.normal(size=(32, 3)).astype(np.float32)
  v1 = RNG.normal(size=(32, 3)).astype(np.float32)
  q = rot.qbetween(v0, v1)
  np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-6)
  unit1 = v1 / np.linalg.norm(v1, axis=-1, keepdims=True)
  np.testing.assert_allclose(rot.qrot(q, v0) / np.linalg.norm(v0, axis=-1, keepdims=True), unit1, atol=1e-5)
  # The shortest arc: the rotation axis is perpendicular to both vectors.
  np.testing.assert_allclose(np.sum(np.asarray(q)[:, 1:] * v0, -1), 0.0, atol=1e-5)
  # Opposite and zero vectors stay finite.
  opp = np.asarray(rot.qbetween(np.array([[0.0, 0, 1], [1.0, 0, 0]]), np.array([[0.0, 0, -2], [-1.0, 0, 0]])))
  np.testing.assert_allclose(rot.qrot(opp, np.array([[0.0, 0, 1], [1.0, 0, 0]])), [[0, 0, -1], [-1, 0, 0]], atol=1e-6)
  np.testing.assert_array_equal(rot.qbetween(np.zeros(3), np.ones(3)), [1, 0, 0, 0])


def test_qfix_makes_sign_continuous(quats):
  seq = np.stack([quats[:8]] * 5)  # [T=5, J=8, 4]
  signs = np.array([1, -1, -1, 1, -1], np.float32)[:, None, None]
  fixed = np.asarray(rot.qfix(seq * signs))
  np.testing.assert_allclose(fixed, np.broadcast_to(seq[:1], seq.shape), atol=0)
  np.testing.assert_allclose(rot.qfix((seq * signs)[:, 0], time_axis=-2), seq[:, 0], atol=0)


def test_slerp_matches_scipy(quats):
  q0, q1 = quats[0], quats[1]
  t = np.linspace(0, 1, 7, dtype=np.float32)
  ours = rot.quaternion_slerp(np.broadcast_to(q0, (7, 4)), np.broadcast_to(q1, (7, 4)), t)
  ref = from_scipy(Slerp([0, 1], to_scipy(np.stack([q0, q1])))(t))
  same_rotation(ours, ref, atol=1e-5)
  np.testing.assert_allclose(rot.quaternion_slerp(q0, -q1, 0.0), q0, atol=1e-6)  # shortest arc
  same_rotation(rot.quaternion_slerp(q0, q0 * 1.0, 0.3), q0)  # nearly equal: lerp branch


def test_jit_equals_eager(quats):
  f = lambda q: rot.quaternion_to_euler(rot.qmul(q, rot.qinv(q[::-1])), "ZXY")
  np.testing.assert_allclose(jax.jit(f)(quats), f(quats), atol=1e-6)
  g = lambda m: rot.matrix_to_quaternion(m)
  mats = to_scipy(quats).as_matrix().astype(np.float32)
  np.testing.assert_allclose(jax.jit(g)(mats), g(mats), atol=1e-6)
