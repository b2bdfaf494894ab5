"""Skeleton constants, Gaussian smoothing, FK and IK."""

import jax
import numpy as np
import pytest
import scipy.ndimage
from scipy.spatial.transform import Rotation

from lead_jax.errors import InputError
from lead_jax.motion import rotations as rot
from lead_jax.motion import skeleton as sk


def test_t2m_constants():
  s = sk.get_skeleton("t2m")
  assert s is sk.get_skeleton("t2m") and hash(s) == hash(sk.get_skeleton("t2m"))
  assert (s.joints_num, s.feature_dim, s.fps, s.foot_contact_threshold) == (22, 263, 20.0, 0.002)
  assert s.parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
  # The arm chains start from the root's rotation (HumanML3D chain FK).
  assert s.rotation_parents[13] == 0 and s.rotation_parents[14] == 0 and s.rotation_parents[16] == 13
  assert s.joint_names[s.fid_l[0]] == "left_ankle" and s.joint_names[s.fid_r[1]] == "right_foot"
  assert s.raw_offsets.shape == (22, 3) and s.target_offsets.shape == (22, 3)
  for left, right in s.left_right_pairs:
    assert s.joint_names[left].startswith("left_") and s.joint_names[right] == "right_" + s.joint_names[left][5:]
    np.testing.assert_array_equal(s.raw_offsets[left] * [-1, 1, 1], s.raw_offsets[right])
  assert sorted(s.mirror_permutation) == list(range(22))


def test_kit_constants():
  s = sk.get_skeleton("kit")
  assert (s.joints_num, s.feature_dim, s.fps, s.foot_contact_threshold) == (21, 251, 12.5, 0.05)
  assert s.face_joint_indx == (11, 16, 5, 8) and (s.l_idx1, s.l_idx2) == (17, 18)
  assert s.target_offsets is None
  for left, right in s.left_right_pairs:
    np.testing.assert_array_equal(s.raw_offsets[left] * [-1, 1, 1], s.raw_offsets[right])
  with pytest.raises(InputError, match="unknown skeleton"):
    sk.get_skeleton("smplx")


def test_target_offsets_derive_from_example_skeleton(humanml3d_dir):
  example = np.load(humanml3d_dir / "skeleton_example_h3d.npy")[:22]
  np.testing.assert_allclose(sk.get_offsets(example, "t2m"), sk.T2M_TARGET_OFFSETS, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("length", [5, 60, 200])
def test_gaussian_smoothing_matches_scipy(length):
  x = np.random.default_rng(length).normal(size=(2, length, 3)).astype(np.float32)
  ref = scipy.ndimage.gaussian_filter1d(x, 20, axis=1, mode="nearest")
  np.testing.assert_allclose(sk.gaussian_smooth_time(x), ref, atol=1e-5)


def test_forward_kinematics_tree_against_loop():
  s = sk.get_skeleton("t2m")
  rng = np.random.default_rng(0)
  quats = rot.axis_angle_to_quaternion(rng.normal(scale=0.5, size=(3, 4, 22, 3)).astype(np.float32))
  root = rng.normal(size=(3, 4, 3)).astype(np.float32)
  offsets = np.asarray(s.target_offsets)
  out = np.asarray(sk.forward_kinematics(quats, root, offsets, s.parents))
  # Plain recursive FK with scipy rotations.
  r = Rotation.from_quat(np.asarray(quats)[..., [1, 2, 3, 0]].reshape(-1, 4))
  expect = np.zeros((12, 22, 3))
  for b in range(12):
    glob = [None] * 22
    for j in range(22):
      p = s.parents[j]
      glob[j] = r[b * 22 + j] if p < 0 else glob[p] * r[b * 22 + j]
      expect[b, j] = root.reshape(-1, 3)[b] if p < 0 else expect[b, p] + glob[j].apply(offsets[j])
  np.testing.assert_allclose(out.reshape(12, 22, 3), expect, atol=1e-5)
  # Passing the skeleton switches to its chain semantics, which differ for the arms only.
  chain = np.asarray(sk.forward_kinematics(quats, root, offsets, s))
  np.testing.assert_allclose(chain[..., :13, :], out[..., :13, :], atol=1e-6)
  assert np.abs(chain[..., 13:, :] - out[..., 13:, :]).max() > 1e-2


def test_ik_then_fk_reproduces_joints(humanml3d_dir):
  s = sk.get_skeleton("t2m")
  joints = np.load(humanml3d_dir / "new_joints" / "012314.npy")[:40]
  offsets = sk.get_offsets(joints[0], s)
  for smooth in (False, True):
    quats = sk.inverse_kinematics(joints, s, smooth_forward=smooth)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(quats[0, 0], [1, 0, 0, 0])
    again = sk.forward_kinematics(quats, joints[:, 0], offsets, s)
    # Bone lengths of these clips are constant (they were made by FK), so FK is exact.
    np.testing.assert_allclose(again, joints, atol=1e-5)


def test_ik_root_faces_forward_with_reversed_hip_term():
  # A T-pose facing +X: the IK across-vector is (l_hip - r_hip) + (r_sdr - l_sdr).
  s = sk.get_skeleton("t2m")
  joints = np.asarray(sk.forward_kinematics(np.tile([1.0, 0, 0, 0], (1, 22, 1)), np.zeros((1, 3)),
                                            s.target_offsets, s))
  turn = rot.axis_angle_to_quaternion(np.array([0, np.pi / 2, 0], np.float32))
  turned = np.asarray(rot.qrot(turn, joints))
  j = turned[0]
  across = (j[1] - j[2]) + (j[17] - j[16])
  forward = np.cross([0, 1, 0], across)
  forward /= np.linalg.norm(forward)
  facing = sk.facing_rotation(turned, s)
  np.testing.assert_allclose(rot.qrot(facing[0], forward), [0, 0, 1], atol=1e-6)


def test_ik_jit_and_vmap_equal_eager(humanml3d_dir):
  joints = np.load(humanml3d_dir / "new_joints" / "000000.npy")[:30]
  batch = np.stack([joints, joints * 1.1])
  eager = np.asarray(sk.inverse_kinematics(batch, "t2m"))
  jitted = jax.jit(sk.inverse_kinematics, static_argnames=("skeleton", "smooth_forward"))(batch, "t2m")
  vmapped = jax.vmap(lambda j: sk.inverse_kinematics(j, "t2m"))(batch)
  np.testing.assert_allclose(jitted, eager, atol=1e-6)
  np.testing.assert_allclose(vmapped, eager, atol=1e-6)


def test_shape_errors_name_the_tensor():
  with pytest.raises(InputError, match=r"\[\.\.\., 22, 3\].*\(10, 21, 3\)"):
    sk.inverse_kinematics(np.zeros((10, 21, 3)), "t2m")
  with pytest.raises(InputError, match="root_pos"):
    sk.forward_kinematics(np.zeros((5, 22, 4)), np.zeros((4, 3)), np.zeros((22, 3)), sk.get_skeleton("t2m"))
