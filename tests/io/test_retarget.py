"""Joint maps and retargeting onto the 22 HumanML3D joints (lead_jax/io/retarget.py)."""

import json
import pathlib

import numpy as np
import pytest

from lead_jax.errors import InputError, MissingFileError
from lead_jax.io import bvh, retarget
from lead_jax.motion import features as motion_features
from lead_jax.motion.skeleton import get_offsets, get_skeleton

T2M = get_skeleton("t2m").joint_names
IDX = {n: i for i, n in enumerate(T2M)}


def test_builtin_maps_cover_the_22_joints():
  assert {"bandai", "cmu"} <= set(retarget.builtin_maps())
  for name in ("bandai", "cmu"):
    jmap = retarget.load_joint_map(name)
    assert list(jmap.entries) == list(T2M)
  assert retarget.load_joint_map("bandai").entries["spine2"] == ("Spine", "Chest", 0.5)
  assert retarget.load_joint_map("cmu").unit == "cmu"


def _identity_spec():
  return {"joints": {n: f"S_{n}" for n in T2M}}


def test_map_validation_lists_names(tmp_path):
  spec = _identity_spec()
  del spec["joints"]["spine2"], spec["joints"]["head"]
  spec["joints"]["spine4"] = "X"
  with pytest.raises(InputError, match=r"unknown target joint\(s\) 'spine4'; missing target joint\(s\) 'spine2', 'head'"):
    retarget.parse_joint_map(spec)
  bad = _identity_spec()
  bad["joints"]["spine2"] = {"lerp": ["A", "B", 1.5]}
  with pytest.raises(InputError, match="entry 'spine2' must be"):
    retarget.parse_joint_map(bad)
  path = tmp_path / "broken.json"
  path.write_text("{not json")
  with pytest.raises(InputError, match="broken.json: invalid JSON"):
    retarget.load_joint_map(path)
  with pytest.raises(MissingFileError, match="neither a built-in map"):
    retarget.load_joint_map(tmp_path / "absent.json")
  positions = np.zeros((2, 3, 3))
  with pytest.raises(InputError, match=r"uses source joint\(s\) 'S_pelvis', 'S_left_hip'"):
    retarget.retarget_to_t2m(positions, ["a", "b", "c"], _identity_spec(), unit_scale=1.0)


def _random_source(rng, num_frames=5, scale=1.0):
  """Source positions for the identity map: a plausible body (from the HumanML3D target skeleton)."""
  base = np.zeros((22, 3))
  skel = get_skeleton("t2m")
  offsets = skel.target_offsets.astype(np.float64)
  for j, p in enumerate(skel.parents):
    if p >= 0:
      base[j] = base[p] + offsets[j]
  frames = base[None] + rng.normal(scale=0.01, size=(num_frames, 22, 3))
  return frames * scale


def test_user_map_file_lerp_and_floor(tmp_path):
  rng = np.random.default_rng(0)
  spec = _identity_spec()
  spec["joints"]["spine2"] = {"lerp": ["S_spine1", "S_spine3", 0.25]}
  path = tmp_path / "mine.json"
  path.write_text(json.dumps(spec))
  source = _random_source(rng)
  out = retarget.retarget_to_t2m(source, [f"S_{n}" for n in T2M], str(path), unit_scale="m")
  expected = source.copy()
  expected[:, IDX["spine2"]] = 0.75 * source[:, IDX["spine1"]] + 0.25 * source[:, IDX["spine3"]]
  expected[..., 1] -= expected[..., 1].min()
  assert out.dtype == np.float32 and out.shape == (5, 22, 3)
  np.testing.assert_allclose(out, expected, atol=1e-6)
  assert out[..., 1].min() == 0.0


def test_units_and_up_axis():
  rng = np.random.default_rng(1)
  names = [f"S_{n}" for n in T2M]
  source = _random_source(rng)
  in_m = retarget.retarget_to_t2m(source, names, _identity_spec())
  in_cm = retarget.retarget_to_t2m(source * 100, names, _identity_spec())
  in_mm = retarget.retarget_to_t2m(source * 1000, names, _identity_spec(), unit_scale="auto")
  np.testing.assert_allclose(in_cm, in_m, atol=1e-6)
  np.testing.assert_allclose(in_mm, in_m, atol=1e-6)
  forced = retarget.retarget_to_t2m(source * 100, names, _identity_spec(), unit_scale=0.005)
  np.testing.assert_allclose(forced, in_m * 0.5, atol=1e-6)
  assert retarget.detect_unit_scale(source * 100) == 0.01
  with pytest.raises(InputError, match="cannot infer the length unit"):
    retarget.retarget_to_t2m(source * 10, names, _identity_spec())
  # Z up: (x, y, z) -> (x, -z, y) turns the clip Z-up; up_axis="z" undoes it.
  z_up = np.stack([source[..., 0], -source[..., 2], source[..., 1]], -1)
  np.testing.assert_allclose(retarget.retarget_to_t2m(z_up, names, _identity_spec(), up_axis="z"),
                             in_m, atol=1e-6)


def test_stature_of_target_skeleton():
  source = _random_source(np.random.default_rng(2), num_frames=1)
  assert 1.65 < retarget.estimate_stature(source) < 1.85


# ----------------------------------------------------------------------------------------------
# A synthetic CMU-hierarchy BVH (names and offsets of the CMU mocap BVH conversions, in their unit).

CMU_JOINTS = [  # name, parent, offset
    ("Hips", None, (0, 0, 0)),
    ("LHipJoint", "Hips", (0, 0, 0)), ("LeftUpLeg", "LHipJoint", (1.65674, -1.80282, 0.62477)),
    ("LeftLeg", "LeftUpLeg", (2.59720, -7.13576, 0)), ("LeftFoot", "LeftLeg", (2.49236, -6.84770, 0)),
    ("LeftToeBase", "LeftFoot", (0.19704, -0.54136, 2.14581)),
    ("RHipJoint", "Hips", (0, 0, 0)), ("RightUpLeg", "RHipJoint", (-1.61070, -2.17305, 0.83205)),
    ("RightLeg", "RightUpLeg", (-2.59608, -7.13267, 0)), ("RightFoot", "RightLeg", (-2.46160, -6.76317, 0)),
    ("RightToeBase", "RightFoot", (-0.18867, -0.51836, 2.14581)),
    ("LowerBack", "Hips", (0, 0, 0)), ("Spine", "LowerBack", (0.01961, 2.05450, -0.14112)),
    ("Spine1", "Spine", (0.01021, 2.06436, -0.05921)),
    ("Neck", "Spine1", (0, 0, 0)), ("Neck1", "Neck", (0.00713, 1.56711, 0.14968)),
    ("Head", "Neck1", (0.03429, 1.56041, -0.10006)),
    ("LeftShoulder", "Spine1", (0, 0, 0)), ("LeftArm", "LeftShoulder", (3.54205, 0.90436, -0.17364)),
    ("LeftForeArm", "LeftArm", (4.86513, 0, 0)), ("LeftHand", "LeftForeArm", (3.35554, 0, 0)),
    ("LeftFingerBase", "LeftHand", (0.66117, 0, 0)), ("LThumb", "LeftHand", (0.53, 0, 0.53)),
    ("RightShoulder", "Spine1", (0, 0, 0)), ("RightArm", "RightShoulder", (-3.49802, 0.75994, -0.32616)),
    ("RightForeArm", "RightArm", (-5.02649, 0, 0)), ("RightHand", "RightForeArm", (-3.36431, 0, 0)),
    ("RightFingerBase", "RightHand", (-0.73041, 0, 0)), ("RThumb", "RightHand", (-0.53, 0, 0.53)),
]
CMU_UNIT = 0.056444
WALK_SPEED = 1.2  # m/s


def _write_cmu_walk(path, num_frames=61, fps=30.0):
  names = [n for n, _, _ in CMU_JOINTS]
  parents = [-1 if p is None else names.index(p) for _, p, _ in CMU_JOINTS]
  offsets = np.array([o for _, _, o in CMU_JOINTS], np.float64)
  offsets[0] = (0, 17.0, 0)
  skeleton = bvh.make_skeleton(names, parents, offsets, "ZYX")
  t = np.arange(num_frames) / fps
  euler = np.zeros((num_frames, len(names), 3))  # degrees, in Z Y X order
  swing = 25 * np.sin(2 * np.pi * t)
  euler[:, names.index("LeftUpLeg"), 2] = swing
  euler[:, names.index("RightUpLeg"), 2] = -swing
  euler[:, names.index("LeftLeg"), 2] = 20 * (1 + np.sin(2 * np.pi * t))
  euler[:, names.index("LeftArm"), 0] = -60.0
  euler[0] = 0.0  # Frame 0: the rest pose.
  root = np.stack([np.zeros_like(t), np.full_like(t, 17.0), WALK_SPEED * t / CMU_UNIT], -1)
  bvh.write_bvh(path, skeleton, root, euler, 1.0 / fps)
  return names, offsets


def test_cmu_hierarchy_clip(tmp_path):
  path = tmp_path / "cmu_walk.bvh"
  names, offsets = _write_cmu_walk(path)
  joints = retarget.import_bvh_clip(path, joint_map="cmu", target_fps=20)
  assert joints.shape == (41, 22, 3) and joints.dtype == np.float32
  # Rest pose (frame 0): each target joint is the summed CMU offsets, in metres.
  rest = {}
  for name, parent, _ in CMU_JOINTS:
    rest[name] = offsets[names.index(name)] + (rest[parent] if parent else 0.0)
  rel = joints[0] - joints[0, IDX["pelvis"]]
  for target, source in [("left_knee", "LeftLeg"), ("right_foot", "RightToeBase"), ("head", "Head"),
                         ("spine3", "Spine1"), ("left_wrist", "LeftHand"), ("neck", "Neck1")]:
    np.testing.assert_allclose(rel[IDX[target]], (rest[source] - rest["Hips"]) * CMU_UNIT, atol=1e-5)
  collar = 0.55 * rest["LeftShoulder"] + 0.45 * rest["LeftArm"]
  np.testing.assert_allclose(rel[IDX["left_collar"]], (collar - rest["Hips"]) * CMU_UNIT, atol=1e-5)
  assert 1.4 < retarget.estimate_stature(joints) < 2.0
  assert joints[..., 1].min() == 0.0
  speed = np.linalg.norm(joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]) / 2.0
  np.testing.assert_allclose(speed, WALK_SPEED, rtol=1e-4)
  assert (joints[:, IDX["left_hip"], 0] > joints[:, IDX["right_hip"], 0]).all()  # left = +X facing +Z
  # The left arm is lowered 60 degrees about Z: the wrist drops below the shoulder.
  assert (joints[1:, IDX["left_wrist"], 1] < joints[1:, IDX["left_shoulder"], 1] - 0.3).all()
  # An explicit unit overrides the map's default ("cmu").
  cm = retarget.import_bvh_clip(path, joint_map="cmu", unit=CMU_UNIT)
  np.testing.assert_allclose(cm, joints, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Real Bandai-Namco clips.


def _sample(bandai_dir: pathlib.Path) -> list[pathlib.Path]:
  d1 = sorted((bandai_dir / "dataset-1" / "data").glob("*.bvh"))
  d2 = sorted((bandai_dir / "dataset-2" / "data").glob("*.bvh"))
  return d1[::60][:3] + d2[::70][:3]


def test_bandai_clips_retarget(bandai_dir):
  for path in _sample(bandai_dir):
    joints = retarget.import_bvh_clip(path, joint_map="bandai")
    frames30 = bvh.read_bvh(path).num_frames
    assert joints.shape == (int((frames30 - 1) * 20 / 30.0 + 1e-6) + 1, 22, 3)
    assert np.isfinite(joints).all()
    assert 1.4 < retarget.estimate_stature(joints) < 2.0, path.name
    # Feet on the floor: the lowest point of the clip is y = 0 and belongs to a foot joint.
    assert joints[..., 1].min() == 0.0
    lowest = np.unravel_index(np.argmin(joints[..., 1]), joints.shape[:2])[1]
    assert T2M[lowest] in ("left_ankle", "right_ankle", "left_foot", "right_foot"), path.name
    # Each frame has a foot within 15 cm of the floor (no clip jumps throughout).
    feet = joints[:, [IDX["left_foot"], IDX["right_foot"], IDX["left_ankle"], IDX["right_ankle"]], 1]
    assert np.median(feet.min(axis=1)) < 0.15


def test_bandai_walk_speed_and_handedness(bandai_dir):
  walks = sorted((bandai_dir / "dataset-2" / "data").glob("dataset-2_walk_normal_*.bvh"))
  assert walks
  for path in walks:
    joints = retarget.import_bvh_clip(path, joint_map="bandai").astype(np.float64)
    duration = (joints.shape[0] - 1) / 20.0
    path_xz = np.linalg.norm(np.diff(joints[:, 0, [0, 2]], axis=0), axis=-1).sum()
    assert 0.5 < path_xz / duration < 2.5, (path.name, path_xz / duration)
    # Left is up x forward: (left_hip - right_hip) points along Y x velocity.
    velocity = np.gradient(joints[:, 0], axis=0)
    left_dir = np.cross(np.array([0.0, 1.0, 0.0]), velocity)
    across = joints[:, IDX["left_hip"]] - joints[:, IDX["right_hip"]]
    assert np.mean(np.sum(across * left_dir, -1) > 0) > 0.9


def _yaw_align_residual(a: np.ndarray, b: np.ndarray) -> float:
  """Max distance between clips a, b [T, J, 3] after the best rotation about Y and translation."""
  ca, cb = a.reshape(-1, 3).mean(0), b.reshape(-1, 3).mean(0)
  pa, pb = (a - ca).reshape(-1, 3), (b - cb).reshape(-1, 3)
  # Rotation about Y maps (x, z) -> (x cos + z sin, -x sin + z cos).
  num = np.sum(pa[:, 2] * pb[:, 0] - pa[:, 0] * pb[:, 2])
  den = np.sum(pa[:, 0] * pb[:, 0] + pa[:, 2] * pb[:, 2])
  th = np.arctan2(num, den)
  rot = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]])
  return float(np.abs(pa @ rot.T - pb).max())


def test_bandai_features_round_trip(bandai_dir):
  """extract_features -> recover_from_ric gives back the retargeted joints up to floor/origin/facing."""
  path = sorted((bandai_dir / "dataset-2" / "data").glob("dataset-2_walk_normal_*.bvh"))[0]
  joints = retarget.import_bvh_clip(path, joint_map="bandai")[:60]
  # On the clip's own bone lengths, HumanML3D's uniform-skeleton step is the identity.
  feats = motion_features.extract_features(joints, target_offsets=get_offsets(joints[0]))
  recovered = np.asarray(motion_features.recover_from_ric(feats), np.float64)
  assert feats.shape == (59, 263)
  assert _yaw_align_residual(recovered, joints[:-1].astype(np.float64)) < 1e-3
  np.testing.assert_allclose(recovered[..., 1], joints[:-1, :, 1], atol=1e-3)  # same floor
  # Sanity of the check: a clip that moves differently does not align.
  assert _yaw_align_residual(recovered, joints[1:].astype(np.float64)) > 5e-3
  # On the default HumanML3D target skeleton the recovered bones have the target lengths.
  feats = motion_features.extract_features(joints)
  recovered = np.asarray(motion_features.recover_from_ric(feats), np.float64)
  parents = np.array(get_skeleton("t2m").parents)
  lengths = np.linalg.norm(recovered[:, 1:] - recovered[:, parents[1:]], axis=-1)
  target = np.linalg.norm(get_skeleton("t2m").target_offsets[1:], axis=-1)
  np.testing.assert_allclose(lengths, np.broadcast_to(target, lengths.shape), atol=1e-3)
