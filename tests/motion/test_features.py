"""HumanML3D features: golden parity with the shipped clips, round trips, invariances, jit/vmap."""

import jax
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lead_jax.errors import ConfigError, InputError
from lead_jax.motion import features as F
from lead_jax.motion import rotations as rot
from lead_jax.motion import skeleton as sk

CLIPS = ("012314", "000000", "007005", "M010968")


@pytest.fixture(scope="module")
def clips(humanml3d_dir):
  return {c: (np.load(humanml3d_dir / "new_joint_vecs" / f"{c}.npy"),
              np.load(humanml3d_dir / "new_joints" / f"{c}.npy")) for c in CLIPS}


@pytest.fixture(scope="module")
def extracted(clips):
  return {c: np.asarray(F.extract_features(joints)) for c, (_, joints) in clips.items()}


def test_layout():
  assert F.features_dim(22) == 263 and F.features_dim(21) == 251
  sl = F.feature_slices(22)
  assert list(sl) == list(F.FEATURE_GROUPS)
  assert [(s.start, s.stop) for s in sl.values()] == [(0, 1), (1, 3), (3, 4), (4, 67), (67, 193),
                                                       (193, 259), (259, 263)]
  assert F.feature_slices(21)["foot_contact"] == slice(247, 251)


@pytest.mark.parametrize("clip", CLIPS)
def test_recover_from_ric_reproduces_shipped_joints(clips, clip):
  feats, joints = clips[clip]
  out = np.asarray(F.recover_from_ric(feats, 22))
  assert out.shape == joints.shape and out.dtype == np.float32
  np.testing.assert_allclose(out, joints, atol=1e-5, rtol=0)


@pytest.mark.parametrize("clip", CLIPS)
def test_recover_from_rot_reproduces_shipped_joints(clips, clip):
  feats, joints = clips[clip]
  np.testing.assert_allclose(F.recover_from_rot(feats, 22, "t2m"), joints, atol=1e-5, rtol=0)


def test_recover_root_rot_pos_formula(clips):
  feats = clips["012314"][0]
  quat, pos = (np.asarray(a) for a in F.recover_root_rot_pos(feats))
  theta = np.concatenate([[0.0], np.cumsum(feats[:-1, 0].astype(np.float64))])
  np.testing.assert_allclose(quat, np.stack([np.cos(theta), 0 * theta, np.sin(theta), 0 * theta], -1), atol=1e-5)
  np.testing.assert_allclose(pos[:, 1], feats[:, 3], atol=0)
  step = np.zeros((len(feats), 3))
  step[1:, [0, 2]] = feats[:-1, 1:3]
  world = Rotation.from_quat(np.stack([0 * theta, -np.sin(theta), 0 * theta, np.cos(theta)], -1)).apply(step)
  np.testing.assert_allclose(pos[:, [0, 2]], np.cumsum(world, 0)[:, [0, 2]], atol=1e-5)


@pytest.mark.parametrize("clip", CLIPS)
def test_extract_features_reproduces_shipped_features(clips, extracted, clip):
  feats, joints = clips[clip]
  out = extracted[clip]
  assert out.shape == (len(joints) - 1, 263) and out.dtype == np.float32
  # The shipped joints were recovered from the shipped features; re-extraction drops the last
  # frame, which moves the smoothed facing direction near the end: ~2e-2 at most (rot6d block).
  np.testing.assert_allclose(out, feats[:-1], atol=2e-2, rtol=0)
  np.testing.assert_array_equal(out[:, 259:], feats[:-1, 259:])
  # Root height and joint heights do not depend on the facing direction.
  np.testing.assert_allclose(out[:, 3], feats[:-1, 3], atol=1e-5)
  np.testing.assert_allclose(out[:, 5:67:3], feats[:-1, 5:67:3], atol=1e-5)


@pytest.mark.parametrize("clip", ["012314", "M010968"])
def test_extract_then_recover_round_trip(clips, extracted, clip):
  joints = clips[clip][1]
  feats = extracted[clip]
  np.testing.assert_allclose(F.recover_from_ric(feats), joints[:-1], atol=1e-5)
  np.testing.assert_allclose(F.recover_from_rot(feats, 22), joints[:-1], atol=1e-5)


def test_extract_features_invariant_to_scale_yaw_and_translation(clips, extracted):
  # Uniform skeleton, floor, origin and face +Z undo a similarity transform about Y.
  joints = clips["000000"][1]
  turn = Rotation.from_euler("y", 1.1).as_matrix()
  moved = (joints @ turn.T * 1.3 + np.array([0.5, 0.2, -2.0])).astype(np.float32)
  np.testing.assert_allclose(F.extract_features(moved), extracted["000000"], atol=1e-4)


def test_uniform_skeleton_sets_target_bone_lengths(clips):
  joints = clips["007005"][1][:20] * 0.8
  out = np.asarray(F.uniform_skeleton(joints, "t2m"))
  s = sk.get_skeleton("t2m")
  parents = np.maximum(np.array(s.parents), 0)
  lengths = np.linalg.norm(out - out[:, parents], axis=-1)
  np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(s.target_offsets, axis=-1), lengths.shape),
                             atol=1e-5)
  # Root trajectory scaled by the leg-length ratio (1/0.8 here, bones of shipped clips = target).
  np.testing.assert_allclose(out[:, 0], joints[:, 0] / 0.8, rtol=1e-4)


def test_foot_contacts_follow_threshold(clips):
  joints = clips["012314"][1][:30]
  tight = np.asarray(F.extract_features(joints, feet_threshold=0.0))
  loose = np.asarray(F.extract_features(joints, feet_threshold=10.0))
  np.testing.assert_array_equal(tight[:, 259:], 0.0)
  np.testing.assert_array_equal(loose[:, 259:], 1.0)
  np.testing.assert_array_equal(tight[:, :259], loose[:, :259])


def test_jit_and_vmap_equal_eager(clips):
  batch = np.stack([clips["000000"][1][:48], clips["007005"][1][:48]])
  # Op-by-op (eager) extraction is slow: row 0 eager, row 1 through a single-clip jit.
  single = np.stack([np.asarray(F.extract_features(batch[0])),
                     np.asarray(jax.jit(F.extract_features)(batch[1]))])
  np.testing.assert_allclose(F.extract_features_batch(batch), single, atol=1e-5)
  vmapped = jax.jit(jax.vmap(lambda j: F.extract_features(j, "t2m")))(batch)
  np.testing.assert_allclose(vmapped, single, atol=1e-5)
  feats = clips["000000"][0]
  fb = np.stack([feats[:48], feats[:48] * 0.5])
  np.testing.assert_allclose(jax.jit(F.recover_from_ric, static_argnums=1)(fb, 22), F.recover_from_ric(fb, 22), atol=1e-6)
  np.testing.assert_allclose(jax.vmap(lambda f: F.recover_from_rot(f, 22))(fb), F.recover_from_rot(fb, 22), atol=1e-5)


def test_kit_features_round_trip():
  """A synthetic KIT motion (FK of smooth rotations, millimetres) through extraction and recovery."""
  s = sk.get_skeleton("kit")
  rng = np.random.default_rng(0)
  steps = 40
  t = np.linspace(0, 1, steps)[:, None, None]
  aa = 0.3 * np.sin(2 * np.pi * t * rng.uniform(0.5, 2, (1, 21, 3)) + rng.uniform(0, 6, (1, 21, 3)))
  offsets = (s.raw_offsets * rng.uniform(100, 300, (21, 1))).astype(np.float32)
  root = np.concatenate([t[:, 0] * 300, np.full((steps, 1), 900.0), t[:, 0] * 500], -1)
  joints = sk.forward_kinematics(rot.axis_angle_to_quaternion(aa.astype(np.float32)), root, offsets, s)
  with pytest.raises(ConfigError, match="target_offsets"):
    F.extract_features(joints, "kit")
  feats = F.extract_features(joints, "kit", target_offsets=offsets)
  assert feats.shape == (steps - 1, 251)
  from_ric = np.asarray(F.recover_from_ric(feats, 21))
  from_rot = np.asarray(F.recover_from_rot(feats, 21, "kit", offsets=offsets))
  np.testing.assert_allclose(from_rot, from_ric, atol=1e-2)  # millimetres
  # Same pose as the input up to the rigid placement (floor, origin, facing): compare bone lengths.
  parents = np.maximum(np.array(s.parents), 0)
  np.testing.assert_allclose(np.linalg.norm(from_ric - from_ric[:, parents], axis=-1),
                             np.broadcast_to(np.linalg.norm(offsets, axis=-1), (steps - 1, 21)), rtol=1e-4)


def test_input_errors():
  with pytest.raises(InputError, match=r"\[\.\.\., T, 263\].*\(10, 250\)"):
    F.recover_from_ric(np.zeros((10, 250)), 22)
  with pytest.raises(InputError, match="SMPL-H"):
    F.extract_features(np.zeros((10, 52, 3)))
  with pytest.raises(InputError, match="2 frames"):
    F.extract_features(np.zeros((1, 22, 3)))
  bad = np.zeros((5, 22, 3), np.float32)
  bad[2, 3] = np.nan
  with pytest.raises(InputError, match="NaN"):
    F.extract_features(bad)
