"""BVH export of joints and features on the SMPL 22-joint skeleton (lead_jax/io/export.py, export-bvh)."""

import numpy as np
import pytest

from lead_jax import cli
from lead_jax.errors import InputError
from lead_jax.io import bvh, export, retarget
from lead_jax.motion import features as motion_features
from lead_jax.motion import rotations
from lead_jax.motion.skeleton import get_skeleton

SKEL = get_skeleton("t2m")


def _read_back(path) -> np.ndarray:
  """FK of a written BVH, joints reordered to the t2m order: [T, 22, 3]."""
  motion = bvh.read_bvh(path)
  positions = bvh.forward_kinematics(motion)
  return positions[:, [motion.skeleton.index(n) for n in SKEL.joint_names]]


def test_rotation_between_edge_cases():
  a = np.array([[1.0, 0, 0], [0, 2, 0], [0, 0, 1], [0, 0, 0], [1, 1, 0]])
  b = np.array([[0, 3.0, 0], [0, -1, 0], [0, 0, 5], [1, 0, 0], [-1, -1, 0]])
  r = export.rotation_between(a, b)
  np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
  unit = lambda v: v / np.linalg.norm(v)
  for k in (0, 1, 2, 4):  # incl. opposite vectors
    np.testing.assert_allclose(r[k] @ unit(a[k]), unit(b[k]), atol=1e-12)
  np.testing.assert_allclose(r[2], np.eye(3), atol=1e-12)
  np.testing.assert_allclose(r[3], np.eye(3))  # zero-length input


def test_kabsch_recovers_rotation():
  rng = np.random.default_rng(0)
  rest = rng.normal(size=(3, 3))
  true = rotations.quaternion_to_matrix(rng.normal(size=(5, 4)))
  fitted = export.kabsch(rest, np.einsum("tij,cj->tci", true, rest))
  np.testing.assert_allclose(fitted, true, atol=1e-10)


@pytest.mark.parametrize("clip", ["012314", "M010968"])
def test_joints_round_trip_real(humanml3d_dir, tmp_path, clip):
  joints = np.load(humanml3d_dir / "new_joints" / f"{clip}.npy")
  path = tmp_path / f"{clip}.bvh"
  written = export.joints_to_bvh(joints, path, fps=20)
  back = _read_back(path)
  assert back.shape == joints.shape
  np.testing.assert_allclose(back, joints, atol=1e-4)  # task bound 1e-3; measured ~2.5e-6
  motion = bvh.read_bvh(path)
  assert abs(motion.fps - 20.0) < 1e-6 and motion.num_frames == joints.shape[0]
  sk = motion.skeleton
  assert set(sk.joint_names) == set(SKEL.joint_names) and sk.joint_names[0] == "pelvis"
  assert sk.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
  assert all(c == ("Zrotation", "Yrotation", "Xrotation") for c in sk.channels[1:])
  # Single-child bones lie along HumanML3D's raw offset directions with the clip's bone lengths.
  for name in ("left_knee", "right_ankle", "head", "left_elbow", "right_wrist", "left_foot"):
    j = SKEL.joint_names.index(name)
    length = np.median(np.linalg.norm(joints[:, j] - joints[:, SKEL.parents[j]], axis=-1))
    np.testing.assert_allclose(sk.offsets[sk.index(name)], SKEL.raw_offsets[j] * length, atol=1e-6)
  assert written.skeleton.num_joints == 22


def test_joints_round_trip_bandai_units_and_order(bandai_dir, tmp_path):
  path = sorted((bandai_dir / "dataset-2" / "data").glob("dataset-2_walk_normal_*.bvh"))[0]
  joints = retarget.import_bvh_clip(path, joint_map="bandai")[:50]
  out = tmp_path / "bandai_cm.bvh"
  export.joints_to_bvh(joints, out, fps=20, rotation_order="ZXY", unit="cm")
  assert bvh.read_bvh(out).skeleton.rotation_order(5) == "ZXY"
  np.testing.assert_allclose(_read_back(out) / 100.0, joints, atol=1e-3)


def test_non_rigid_joints_stay_close(humanml3d_dir, tmp_path):
  """Generated motions need not keep the pelvis/spine3 triangles rigid: the error stays bounded."""
  joints = np.load(humanml3d_dir / "new_joints" / "000000.npy")[:40].astype(np.float64)
  noise = np.random.default_rng(1).normal(scale=0.005, size=joints.shape)
  noisy = joints + noise
  export.joints_to_bvh(noisy, tmp_path / "noisy.bvh")
  back = _read_back(tmp_path / "noisy.bvh")
  np.testing.assert_allclose(back[:, 0], noisy[:, 0], atol=1e-5)  # the root is exact
  assert np.abs(back - noisy).max() < 0.1
  assert np.abs(back - joints).max() < 0.1


@pytest.mark.parametrize("use_rotations", [True, False])
def test_features_round_trip(humanml3d_dir, tmp_path, use_rotations):
  feats = np.load(humanml3d_dir / "new_joint_vecs" / "012314.npy")
  path = tmp_path / "f.bvh"
  export.features_to_bvh(feats, path, use_rotations=use_rotations)
  ric = np.asarray(motion_features.recover_from_ric(feats), np.float64)
  np.testing.assert_allclose(_read_back(path), ric, atol=1e-3)
  shipped = np.load(humanml3d_dir / "new_joints" / "012314.npy")[:feats.shape[0]]
  np.testing.assert_allclose(_read_back(path), shipped, atol=1e-3)


def test_bad_inputs(tmp_path):
  with pytest.raises(InputError, match=r"joints must be \[T, 22, 3\].*\(5, 21, 3\)"):
    export.joints_to_bvh(np.zeros((5, 21, 3)), tmp_path / "x.bvh")
  bad = np.zeros((5, 22, 3))
  bad[2, 3, 1] = np.nan
  with pytest.raises(InputError, match="NaN or infinite values in 1 frame"):
    export.joints_to_bvh(bad, tmp_path / "x.bvh")
  with pytest.raises(InputError, match=r"features must be \[T, 263\]"):
    export.features_to_bvh(np.zeros((5, 251)), tmp_path / "x.bvh")


def test_cli_export_bvh(humanml3d_dir, tmp_path, capsys):
  joints_path = tmp_path / "j.npy"
  np.save(joints_path, np.load(humanml3d_dir / "new_joints" / "000000.npy")[:30])
  assert cli.main(["export-bvh", str(joints_path), "--out", str(tmp_path / "j.bvh")]) == 0
  np.testing.assert_allclose(_read_back(tmp_path / "j.bvh"), np.load(joints_path), atol=1e-4)
  # Normalised features with --mean/--std.
  feats = np.load(humanml3d_dir / "new_joint_vecs" / "000000.npy")[:30]
  mean, std = np.load(humanml3d_dir / "Mean.npy"), np.load(humanml3d_dir / "Std.npy")
  np.save(tmp_path / "n.npy", (feats - mean) / std)
  assert cli.main(["export-bvh", str(tmp_path / "n.npy"), "--out", str(tmp_path / "n.bvh"),
                   "--mean", str(humanml3d_dir / "Mean.npy"), "--std", str(humanml3d_dir / "Std.npy"),
                   "--ric", "--fps", "10"]) == 0
  assert abs(bvh.read_bvh(tmp_path / "n.bvh").frame_time - 0.1) < 1e-9
  np.testing.assert_allclose(_read_back(tmp_path / "n.bvh"),
                             np.asarray(motion_features.recover_from_ric(feats)), atol=1e-3)
  capsys.readouterr()
  np.save(tmp_path / "bad.npy", np.zeros((10, 22)))
  assert cli.main(["export-bvh", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "b.bvh")]) == 2
  err = capsys.readouterr().err
  assert "expected joints [T, 22, 3] or features [T, 263], found shape (10, 22)" in err
  assert not (tmp_path / "b.bvh").exists()
  assert cli.main(["export-bvh", str(joints_path), "--out", str(tmp_path / "c.bvh"),
                   "--mean", str(humanml3d_dir / "Mean.npy"), "--std", str(humanml3d_dir / "Std.npy")]) == 2
  assert "--mean/--std apply to features" in capsys.readouterr().err
