"""Forward kinematics of a joint tree and key-frame resampling (lead_jax/motion/kinematics.py)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lead_jax.errors import InputError
from lead_jax.motion import kinematics
from lead_jax.motion import rotations as rot


def test_forward_kinematics_hand_case():
  """Root turned 90 deg about Z at (1, 2, 3); a chain of two unit bones along X, the middle joint
  turned 90 deg about Z too; a second root untouched."""
  rz = Rotation.from_euler("Z", 90, degrees=True).as_matrix()
  local = np.stack([rz, rz, np.eye(3), np.eye(3)])[None]  # [T=1, J=4, 3, 3]
  translations = np.array([[[1.0, 2, 3], [1, 0, 0], [1, 0, 0], [5, 5, 5]]])
  positions, glob = kinematics.forward_kinematics(local, translations, [-1, 0, 1, -1])
  np.testing.assert_allclose(positions[0], [[1, 2, 3], [1, 3, 3], [0, 3, 3], [5, 5, 5]], atol=1e-15)
  np.testing.assert_allclose(glob[0, 2], rz @ rz, atol=1e-15)
  np.testing.assert_allclose(glob[0, 3], np.eye(3))
  assert positions.dtype == glob.dtype == np.float64


def test_forward_kinematics_matches_quaternion_chain():
  rng = np.random.default_rng(0)
  parents = [-1, 0, 1, 0, 3, 4]
  quats = rng.normal(size=(7, 6, 4))
  translations = rng.normal(size=(7, 6, 3))
  positions, glob = kinematics.forward_kinematics(rot.quaternion_to_matrix(quats), translations,
                                                  parents)
  glob_q, pos = {}, {}  # the same tree walked with quaternions
  for j, p in enumerate(parents):
    q = rot.qnormalize(quats[:, j])
    if p < 0:
      glob_q[j], pos[j] = q, translations[:, j]
    else:
      glob_q[j] = rot.qmul(glob_q[p], q)
      pos[j] = pos[p] + rot.qrot(glob_q[p], translations[:, j])
    np.testing.assert_allclose(positions[:, j], pos[j], atol=1e-12)
    np.testing.assert_allclose(glob[:, j], rot.quaternion_to_matrix(glob_q[j]), atol=1e-12)


def test_forward_kinematics_errors():
  eye = np.broadcast_to(np.eye(3), (2, 3, 3, 3))
  with pytest.raises(InputError, match="joint 1 has parent 2"):
    kinematics.forward_kinematics(eye, np.zeros((2, 3, 3)), [-1, 2, 0])
  with pytest.raises(InputError, match=r"translations must be \[T=2, J=3, 3\]"):
    kinematics.forward_kinematics(eye, np.zeros((3, 3)), [-1, 0, 1])
  with pytest.raises(InputError, match=r"local rotations must be \[T, J=2, 3, 3\]"):
    kinematics.forward_kinematics(eye, np.zeros((2, 3, 3)), [-1, 0])


def test_lerp_keyframes():
  key_times = np.array([0.0, 1.0, 3.0])
  values = np.array([[0.0, 10.0], [2.0, 10.0], [6.0, 0.0]])
  out = kinematics.lerp_keyframes(key_times, values, [-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
  np.testing.assert_allclose(out, [[0, 10], [0, 10], [1, 10], [2, 10], [4, 5], [6, 0], [6, 0]])
  np.testing.assert_array_equal(kinematics.lerp_keyframes([0.0], values[:1], [0.0, 2.0]),
                                values[[0, 0]])
  with pytest.raises(InputError, match="strictly increasing"):
    kinematics.lerp_keyframes([0.0, 1.0, 1.0], values, [0.5])
  with pytest.raises(InputError, match=r"values \[N, \.\.\.\]"):
    kinematics.lerp_keyframes(key_times, values[:2], [0.5])


def test_slerp_keyframes_between_surrounding_keys():
  rng = np.random.default_rng(1)
  key_times = np.array([0.0, 0.4, 1.5, 2.0])
  quats = rot.qnormalize(rng.normal(size=(4, 3, 4)))
  quats[2, 1] *= -1.0  # the sign of a key frame does not change the path (shortest arc)
  times = np.array([-0.5, 0.0, 0.1, 0.4, 1.0, 1.9, 2.0, 2.5])
  out = kinematics.slerp_keyframes(key_times, 3.0 * quats, times)  # not unit: normalised
  assert out.shape == (8, 3, 4) and out.dtype == np.float64
  np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-12)
  clamped = np.clip(times, 0.0, 2.0)
  hi = np.clip(np.searchsorted(key_times, clamped, side="right"), 1, 3)
  alpha = (clamped - key_times[hi - 1]) / (key_times[hi] - key_times[hi - 1])
  expected = rot.quaternion_slerp(quats[hi - 1], quats[hi], np.broadcast_to(alpha[:, None], (8, 3)))
  np.testing.assert_allclose(np.abs(np.sum(out * expected, -1)), 1.0, atol=1e-9)
  single = kinematics.slerp_keyframes([0.0], 2.0 * quats[:1], [0.0, 1.0])
  np.testing.assert_allclose(single, np.broadcast_to(quats[:1], (2, 3, 4)), atol=1e-15)
  with pytest.raises(InputError, match="zero-length"):
    kinematics.slerp_keyframes(key_times, np.zeros((4, 4)), times)
  with pytest.raises(InputError, match=r"values \[N, \.\.\., 4\]"):
    kinematics.slerp_keyframes(key_times, quats[..., :3], times)
