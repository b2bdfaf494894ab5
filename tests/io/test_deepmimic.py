"""DeepMimic importer: parity with pybullet's kinematics and physical sanity of the 15 clips."""

import numpy as np
import pytest

pybullet = pytest.importorskip("pybullet")

from lead_jax.io import deepmimic as dm  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def model():
  return dm.load_humanoid_model()


@pytest.fixture(scope="module")
def clips(model):
  clips, failures = dm.import_deepmimic_dir(model=model)
  assert failures == {}
  return clips


def _path_length(joints, chain):
  return np.linalg.norm(np.diff(joints[:, chain], axis=1), axis=-1).sum(-1)


def test_model_matches_deepmimic_character(model):
  # humanoid3d.txt (DeepMimic) attach values = URDF / 4.
  off = {n: model.offsets[model.index(n)] for n in model.joint_names}
  np.testing.assert_allclose(off["chest"], [0, 0.236151, 0], atol=1e-6)
  np.testing.assert_allclose(off["right_knee"], [0, -0.421546, 0], atol=1e-6)
  np.testing.assert_allclose(off["left_shoulder"], [-0.02405, 0.2435, -0.18311], atol=1e-6)
  assert model.frame_size == 44
  np.testing.assert_allclose(model.foot_box_size, [0.177, 0.055, 0.09], atol=1e-6)


def test_forward_kinematics_matches_pybullet(model):
  clip = dm.read_deepmimic_motion(dm.default_motion_dir() / "humanoid3d_cartwheel.txt", model)
  pos, _ = dm.forward_kinematics(model, clip.root_pos, clip.rotations)
  client = pybullet.connect(pybullet.DIRECT)
  try:
    body = pybullet.loadURDF(str(dm.default_model_path()), globalScaling=dm.MODEL_SCALE,
                             useFixedBase=True, flags=pybullet.URDF_MAINTAIN_LINK_ORDER,
                             physicsClientId=client)
    names = [pybullet.getJointInfo(body, i, physicsClientId=client)[12].decode()
             for i in range(pybullet.getNumJoints(body, physicsClientId=client))]
    err = 0.0
    for f in (0, 40, 100):
      q = clip.rotations[f]
      xyzw = lambda w: list(np.r_[w[1:], w[0]])
      pybullet.resetBasePositionAndOrientation(body, clip.root_pos[f], xyzw(q[0]),
                                               physicsClientId=client)
      for i, name in enumerate(names):
        j = model.index(name)
        if model.joint_types[j] == "spherical":
          pybullet.resetJointStateMultiDof(body, i, xyzw(q[j]), physicsClientId=client)
        elif model.joint_types[j] == "revolute":
          angle = 2 * np.arctan2(q[j, 1:] @ model.axes[j], q[j, 0])
          pybullet.resetJointState(body, i, angle, physicsClientId=client)
      for i, name in enumerate(names):
        link = pybullet.getLinkState(body, i, computeForwardKinematics=True, physicsClientId=client)
        err = max(err, np.abs(np.array(link[4]) - pos[f, model.index(name)]).max())
  finally:
    pybullet.disconnect(client)
  assert err < 1e-5


def test_fifteen_clips_look_right(clips):
  assert len(clips) == 15
  for name, joints in clips.items():
    assert joints.dtype == np.float32 and joints.shape[1:] == (22, 3), name
    assert joints.shape[0] >= 61, name  # >= 3 s at 20 fps
    feet_min = joints[:, dm.FOOT_JOINTS, 1].min()
    assert abs(feet_min) <= 0.02, (name, feet_min)
    # Stature along the skeleton: foot -> ankle -> knee -> hip -> pelvis -> spine -> head.
    height = np.median(_path_length(joints, [11, 8, 5, 2, 0, 3, 6, 9, 12, 15]))
    assert 1.4 <= height <= 2.0, (name, height)


def test_walk_moves_forward_facing_z(clips):
  walk = clips["humanoid3d_walk"]
  # 3 cycles of 1.266616 s at 20 fps.
  assert walk.shape[0] == int(np.floor(3 * 1.266616 * 20)) + 1
  displacement = walk[60, 0] - walk[0, 0]  # 3 s
  assert displacement[2] > 1.0 and abs(displacement[0]) < 0.3
  assert np.all(walk[:, 1, 0] > walk[:, 2, 0])  # left hip at +x when facing +z
  standing_head = walk[:, 15, 1].max()
  assert 1.3 < standing_head < 1.8


def test_loop_repeat_and_hold(model):
  path = dm.default_motion_dir() / "humanoid3d_walk.txt"
  once = dm.import_deepmimic_clip(path, min_seconds=0.0, model=model, ground="model")
  thrice = dm.import_deepmimic_clip(path, model=model, ground="model")
  assert once.shape[0] == int(np.floor(1.266616 * 20)) + 1
  # Up to the last key-frame interval (t < 1.2333 s: frames 0..24) the repeat equals one cycle;
  # after it the repeat blends into the next cycle instead of the duplicate last key frame.
  np.testing.assert_allclose(thrice[:25], once[:25], atol=1e-5)
  # Cycle 2 at time t + period equals cycle 1 at t, shifted by the root displacement (+z).
  clip = dm.read_deepmimic_motion(path, model)
  shift = clip.root_pos[-1] - clip.root_pos[0]
  root2, _ = dm.resample_clip(clip, fps=1.0 / clip.duration, min_seconds=3.0)
  np.testing.assert_allclose(root2[1] - root2[0], [shift[0], 0.0, shift[2]], atol=1e-9)
  kick = dm.import_deepmimic_clip(dm.default_motion_dir() / "humanoid3d_kick.txt", model=model)
  assert kick.shape[0] == 61
  np.testing.assert_allclose(kick[-1], kick[-10], atol=1e-6)  # last pose held


def test_bad_motion_file(tmp_path, model):
  bad = tmp_path / "humanoid3d_bad.txt"
  bad.write_text('{"Loop": "wrap", "Frames": [[0.1, 0, 0, 0]]}')
  with pytest.raises(dm.InputError, match=r"\[N, 44\]"):
    dm.read_deepmimic_motion(bad, model)
