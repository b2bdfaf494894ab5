"""Mirroring joints and features."""

import numpy as np
import pytest

from lead_jax.errors import InputError
from lead_jax.motion import features as F
from lead_jax.motion import mirror as M
from lead_jax.motion import rotations as rot
from lead_jax.motion import skeleton as sk


@pytest.fixture(scope="module")
def clip(humanml3d_dir):
  return (np.load(humanml3d_dir / "new_joint_vecs" / "012314.npy"),
          np.load(humanml3d_dir / "new_joints" / "012314.npy"))


def test_mirror_twice_is_identity(clip):
  feats, joints = clip
  np.testing.assert_array_equal(M.mirror_joints(M.mirror_joints(joints)), joints)
  np.testing.assert_array_equal(M.mirror_features(M.mirror_features(feats)), feats)
  kit = np.random.default_rng(0).normal(size=(3, 251)).astype(np.float32)
  np.testing.assert_array_equal(M.mirror_features(M.mirror_features(kit, "kit"), "kit"), kit)


def test_mirror_joints_swaps_sides(clip):
  joints = clip[1]
  out = np.asarray(M.mirror_joints(joints))
  np.testing.assert_array_equal(out[:, 1], joints[:, 2] * [-1, 1, 1])  # left hip <- right hip
  np.testing.assert_array_equal(out[:, 21], joints[:, 20] * [-1, 1, 1])
  np.testing.assert_array_equal(out[:, 0], joints[:, 0] * [-1, 1, 1])


def test_mirrored_features_recover_mirrored_joints(clip):
  feats = clip[0]
  np.testing.assert_allclose(F.recover_from_ric(M.mirror_features(feats)),
                             M.mirror_joints(F.recover_from_ric(feats)), atol=1e-5)
  np.testing.assert_allclose(F.recover_from_rot(M.mirror_features(feats), 22, offsets=_mirrored_offsets()),
                             M.mirror_joints(F.recover_from_rot(feats, 22)), atol=1e-5)


def test_rot6d_block_is_reflection_conjugate(clip):
  feats = clip[0][:5]
  s = sk.get_skeleton("t2m")
  mats = np.asarray(rot.cont6d_to_matrix(feats[:, 67:193].reshape(5, 21, 6)))
  reflect = np.diag([-1.0, 1.0, 1.0])
  expect = (reflect @ mats @ reflect)[:, s.mirror_permutation[1:] - 1]
  got = np.asarray(rot.cont6d_to_matrix(np.asarray(M.mirror_features(feats))[:, 67:193].reshape(5, 21, 6)))
  np.testing.assert_allclose(got, expect, atol=1e-5)


def _mirrored_offsets():
  s = sk.get_skeleton("t2m")
  return s.target_offsets[s.mirror_permutation] * np.array([-1, 1, 1], np.float32)


def test_mirror_commutes_with_extraction(clip):
  joints = clip[1][:60]
  feats = F.extract_features(joints)
  # With the mirrored target skeleton the whole pipeline is mirror-equivariant.
  mirrored = F.extract_features(M.mirror_joints(joints), target_offsets=_mirrored_offsets())
  np.testing.assert_allclose(M.mirror_features(feats), mirrored, atol=1e-5)
  # With the default target (asymmetric hip/shoulder widths) the facing direction, whose across
  # vector is a small difference of hip and shoulder widths in HumanML3D's IK, is not symmetric:
  # only the foot contacts and heights stay close.
  default = np.asarray(F.extract_features(M.mirror_joints(joints)))
  np.testing.assert_allclose(np.asarray(M.mirror_features(feats))[:, 5:67:3], default[:, 5:67:3], atol=2e-2)


def test_errors():
  with pytest.raises(InputError, match=r"\[\.\.\., 263\]"):
    M.mirror_features(np.zeros((4, 251)))
  with pytest.raises(InputError, match=r"\[\.\.\., 21, 3\]"):
    M.mirror_joints(np.zeros((4, 22, 3)), "kit")
