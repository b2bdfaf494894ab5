"""BVH parsing, forward kinematics, writing and resampling (lead_jax/io/bvh.py)."""

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import transform

from lead_jax.errors import InputError, MissingFileError
from lead_jax.io import bvh
from lead_jax.motion import rotations

# Two-joint-plus-site file with mixed whitespace, CRLF line ends, an unusual root channel order.
SMALL = (
    "HIERARCHY\r\n"
    "ROOT Hips\r\n{\r\n"
    "  OFFSET 1.0 2.0 3.0\r\n"
    "\tCHANNELS 6 Zposition Xposition Yposition Yrotation Xrotation Zrotation\r\n"
    "  JOINT Chest{\r\n"
    "    OFFSET 0 10 0\r\n"
    "    CHANNELS 3   Zrotation Xrotation Yrotation\r\n"
    "    End Site\r\n    {\r\n      OFFSET 0 5 0\r\n    }\r\n"
    "  }\r\n"
    "}\r\n"
    "MOTION\r\n"
    "Frames: 2\r\n"
    "Frame Time: 0.05\r\n"
    "3 1 2 0 0 0 0 0 0\r\n"
    "\t3  1 2  0 0 0   90 90 0  \r\n"
    "\r\n")


def test_parse_small_file_layout(tmp_path):
  path = tmp_path / "small.bvh"
  path.write_bytes(SMALL.encode())
  motion = bvh.read_bvh(path)
  sk = motion.skeleton
  assert sk.joint_names == ("Hips", "Chest")
  np.testing.assert_array_equal(sk.parents, [-1, 0])
  np.testing.assert_array_equal(sk.offsets, [[1, 2, 3], [0, 10, 0]])
  assert sk.channels[0] == ("Zposition", "Xposition", "Yposition", "Yrotation", "Xrotation", "Zrotation")
  assert sk.rotation_order(0) == "YXZ" and sk.rotation_order(1) == "ZXY"
  np.testing.assert_array_equal(sk.end_sites[1], [0, 5, 0])
  assert np.isnan(sk.end_sites[0]).all()
  assert motion.values.shape == (2, 9) and motion.frame_time == 0.05 and motion.fps == 20.0
  positions = bvh.forward_kinematics(motion)
  # Root position channels replace the offset: (X, Y, Z) = (1, 2, 3) from "Z X Y" = "3 1 2".
  np.testing.assert_allclose(positions[:, 0], [[1, 2, 3], [1, 2, 3]])
  np.testing.assert_allclose(positions[0, 1], [1, 12, 3])
  # Frame 1: Chest has Z=90, X=90 intrinsic; its offset is applied by the root's identity rotation.
  np.testing.assert_allclose(positions[1, 1], [1, 12, 3], atol=1e-12)


def test_intrinsic_euler_golden():
  """Zrotation 90 then Xrotation 90 (intrinsic): R = Rz Rx maps (0, 0, 1) to (1, 0, 0)."""
  text = ("HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\nCHANNELS 6 Xposition Yposition Zposition "
          "Zrotation Xrotation Yrotation\nJOINT B\n{\nOFFSET 0 0 1\nCHANNELS 3 Zrotation Xrotation "
          "Yrotation\nEnd Site\n{\nOFFSET 0 0 1\n}\n}\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n"
          "0 0 0 90 90 0 0 0 0\n")
  positions = bvh.forward_kinematics(bvh.parse_bvh(text))
  np.testing.assert_allclose(positions[0, 1], [1, 0, 0], atol=1e-12)  # extrinsic would give (0,-1,0)


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_euler_matches_motion_rotations(order):
  rng = np.random.default_rng(0)
  angles = rng.uniform(-180, 180, (16, 3))
  ours = rotations.euler_to_matrix(np.deg2rad(angles), order)
  theirs = np.asarray(rotations.quaternion_to_matrix(rotations.euler_to_quaternion(  # JAX path
      jnp.asarray(np.deg2rad(angles), jnp.float32), order, intrinsic=True)))
  np.testing.assert_allclose(ours, theirs, atol=2e-6)
  np.testing.assert_allclose(
      rotations.euler_to_matrix(rotations.matrix_to_euler(ours, order), order), ours, atol=1e-12)


def _random_tree_file(rng, num_frames=7):
  """A 6-joint tree with random per-joint rotation orders; returns (text, parents, offsets, orders)."""
  parents = [-1, 0, 1, 0, 3, 1]
  offsets = rng.normal(size=(6, 3))
  orders = ["".join(rng.permutation(list("XYZ"))) for _ in parents]
  children = {j: [k for k, p in enumerate(parents) if p == j] for j in range(6)}

  def emit(j, out):
    kw = "ROOT" if parents[j] < 0 else "JOINT"
    chans = (["Xposition", "Yposition", "Zposition"] if parents[j] < 0 else []) + [f"{a}rotation" for a in orders[j]]
    out += [f"{kw} J{j}", "{", "OFFSET " + " ".join(f"{v:.17g}" for v in offsets[j]),
            f"CHANNELS {len(chans)} " + " ".join(chans)]
    for c in children[j]:
      emit(c, out)
    if not children[j]:
      out += ["End Site", "{", "OFFSET 0 0 0", "}"]
    out.append("}")

  lines = ["HIERARCHY"]
  emit(0, lines)
  order_in_file = [0, 1, 2, 5, 3, 4]
  values = rng.uniform(-170, 170, (num_frames, 3 + 3 * 6))
  lines += ["MOTION", f"Frames: {num_frames}", "Frame Time: 0.0333333"]
  lines += [" ".join(f"{v:.17g}" for v in row) for row in values]
  return "\n".join(lines) + "\n", parents, offsets, orders, values, order_in_file


def test_forward_kinematics_matches_quaternion_restatement():
  """Parity with a quaternion restatement built on lead_jax.motion.rotations (JAX):
  `p_j = p_parent + qrot(G_parent, offset_j)`, `G_j = G_parent q_j`."""
  rng = np.random.default_rng(1)
  text, parents, offsets, orders, values, file_order = _random_tree_file(rng)
  motion = bvh.parse_bvh(text)
  assert [int(n[1:]) for n in motion.skeleton.joint_names] == file_order
  ours = bvh.forward_kinematics(motion)
  # Reference: quaternions from each joint's Euler angles (channel columns in file order).
  quats = np.zeros((values.shape[0], 6, 4), np.float32)
  for k, j in enumerate(file_order):
    angles = values[:, 3 + 3 * k: 6 + 3 * k]
    quats[:, j] = rotations.euler_to_quaternion(jnp.asarray(np.deg2rad(angles), jnp.float32),
                                                orders[j])
  glob, pos = [None] * 6, [None] * 6
  for j, p in enumerate(parents):  # Parents precede children in this tree.
    if p < 0:
      glob[j], pos[j] = jnp.asarray(quats[:, j]), jnp.asarray(values[:, :3], jnp.float32)
    else:
      pos[j] = pos[p] + rotations.qrot(glob[p], np.broadcast_to(offsets[j].astype(np.float32), pos[p].shape))
      glob[j] = rotations.qmul(glob[p], quats[:, j])
  reference = np.stack([np.asarray(x) for x in pos], axis=1)
  np.testing.assert_allclose(ours, reference[:, file_order], atol=5e-4)  # float32 reference, |p|~100


def _write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return path


@pytest.mark.parametrize("name,mutate,message", [
    ("truncated.bvh", lambda t: t[:t.index("CHANNELS 3")], r"line \d+: unexpected end of HIERARCHY"),
    ("channels.bvh", lambda t: t.replace("\t3  1 2  0 0 0   90 90 0  ", "3 1 2 0 0 0 90 90"),
     r"line 19: frame 1 has 8 values, expected 9"),
    ("nan.bvh", lambda t: t.replace("\t3  1 2  0 0 0   90 90 0  ", "3 1 2 0 nan 0 90 90 0"),
     r"line 19: frame 1 channel 4 is nan"),
    ("empty.bvh", lambda t: "", "the file is empty"),
    ("blank.bvh", lambda t: " \r\n\n", "the file is empty"),
    ("nomotion.bvh", lambda t: t[:t.index("MOTION")], "expected MOTION"),
    ("emptymotion.bvh", lambda t: t[:t.index("Frames")], "MOTION section is empty"),
    ("zero.bvh", lambda t: t[:t.index("Frames")] + "Frames: 0\nFrame Time: 0.05\n", "no frames"),
    ("count.bvh", lambda t: t.replace("Frames: 2", "Frames: 3"), "header says Frames: 3 but the file has 2"),
    ("word.bvh", lambda t: t.replace("3 1 2 0 0 0 0 0 0", "3 1 2 0 x 0 0 0 0"), r"line 18: 'x' is not a number"),
    ("badchan.bvh", lambda t: t.replace("Zrotation Xrotation Yrotation", "Zrotation Xrotation Wrotation"),
     "'Wrotation' is not a channel name"),
    ("badoffset.bvh", lambda t: t.replace("OFFSET 0 10 0", "OFFSET 0 ten 0"), "expected a number"),
    ("badtime.bvh", lambda t: t.replace("0.05", "-1"), "frame time must be positive"),
])
def test_malformed_files_raise_input_error_naming_file(tmp_path, name, mutate, message):
  path = _write(tmp_path, name, mutate(SMALL.replace("\r\n", "\n")))
  with pytest.raises(InputError, match=message) as info:
    bvh.read_bvh(path)
  assert str(path) in str(info.value)


def test_missing_file(tmp_path):
  with pytest.raises(MissingFileError, match="nope.bvh"):
    bvh.read_bvh(tmp_path / "nope.bvh")


def test_write_read_round_trip(tmp_path):
  rng = np.random.default_rng(2)
  parents = [-1, 0, 1, 1, 0]
  offsets = rng.normal(size=(5, 3))
  for order in ("ZYX", "ZXY"):
    sk = bvh.make_skeleton([f"j{i}" for i in range(5)], parents, offsets, order)
    quats = rng.normal(size=(9, 5, 4))
    root = rng.normal(size=(9, 3))
    written = bvh.write_bvh(tmp_path / f"rt_{order}.bvh", sk, root, quats, 1 / 30)
    back = bvh.read_bvh(tmp_path / f"rt_{order}.bvh")
    assert back.skeleton.joint_names == ("j0", "j1", "j2", "j3", "j4")
    assert back.skeleton.channels[0][:3] == bvh.POSITION_CHANNELS and len(back.skeleton.channels[1]) == 3
    assert back.skeleton.rotation_order(2) == order
    assert abs(back.frame_time - 1 / 30) < 1e-8
    np.testing.assert_allclose(back.skeleton.offsets, offsets, atol=1e-6)
    # The rotations read back equal the quaternions written (up to sign), and FK agrees.
    local, _ = bvh.local_transforms(back)
    np.testing.assert_allclose(local, rotations.quaternion_to_matrix(quats), atol=1e-5)
    np.testing.assert_allclose(bvh.forward_kinematics(back), bvh.forward_kinematics(written), atol=1e-5)
    np.testing.assert_allclose(bvh.forward_kinematics(back)[:, 0], root, atol=1e-6)


def test_write_reorders_columns_depth_first(tmp_path):
  """A skeleton listed breadth first is written depth first with its channel columns permuted."""
  parents = [-1, 0, 0, 1]  # Depth first: 0, 1, 3, 2.
  sk = bvh.make_skeleton(["a", "b", "c", "d"], parents, np.eye(4, 3), "ZYX")
  angles = np.arange(12, dtype=float).reshape(1, 4, 3)
  bvh.write_bvh(tmp_path / "o.bvh", sk, np.zeros((1, 3)), angles, 0.05)
  back = bvh.read_bvh(tmp_path / "o.bvh")
  assert back.skeleton.joint_names == ("a", "b", "d", "c")
  np.testing.assert_allclose(back.values[0, 3:], [0, 1, 2, 3, 4, 5, 9, 10, 11, 6, 7, 8])


def test_write_rejects_bad_shapes(tmp_path):
  sk = bvh.make_skeleton(["a", "b"], [-1, 0], np.ones((2, 3)))
  with pytest.raises(InputError, match=r"local_rotations must be \[T=3, J=2, 4\]"):
    bvh.write_bvh(tmp_path / "x.bvh", sk, np.zeros((3, 3)), np.zeros((3, 3, 4)), 0.05)
  with pytest.raises(InputError, match="root_positions must be"):
    bvh.write_bvh(tmp_path / "x.bvh", sk, np.zeros((3, 2)), np.ones((3, 2, 4)), 0.05)


def test_resample_positions_linear():
  t = np.arange(31, dtype=np.float64)
  x = np.stack([t, 2 * t + 1, -t], -1)[:, None, :]  # [31, 1, 3], linear in time
  y = bvh.resample(x, 30.0, 20.0)
  assert y.shape == (21, 1, 3)  # floor(30 * 20 / 30) + 1
  np.testing.assert_allclose(y[:, 0, 0], 1.5 * np.arange(21))
  np.testing.assert_allclose(y[:, 0, 1], 3.0 * np.arange(21) + 1)
  assert bvh.resample(np.zeros((10, 3), np.float32), 20, 20).dtype == np.float32
  with pytest.raises(InputError, match="frame rates must be positive"):
    bvh.resample(x, 0.0, 20.0)


def test_resample_motion_slerps_rotations():
  """30 -> 20 fps: rotations match scipy's Slerp at the output times; positions interpolate."""
  rng = np.random.default_rng(3)
  text, *_ = _random_tree_file(rng, num_frames=10)
  motion = bvh.parse_bvh(text)
  motion = bvh.BvhMotion(motion.skeleton, motion.values * 0.3, 1 / 30)  # keep steps under 180 deg
  out = bvh.resample(motion, 30.0, 20.0)
  assert out.num_frames == 7 and abs(out.frame_time - 0.05) < 1e-12
  times = np.arange(7) * 1.5
  local_in, _ = bvh.local_transforms(motion)
  local_out, _ = bvh.local_transforms(out)
  for j in range(motion.skeleton.num_joints):
    slerp = transform.Slerp(np.arange(10), transform.Rotation.from_matrix(local_in[:, j]))
    np.testing.assert_allclose(local_out[:, j], slerp(times).as_matrix(), atol=1e-6)
  expected_root = np.stack([np.interp(times, np.arange(10), motion.values[:, c]) for c in range(3)], -1)
  np.testing.assert_allclose(out.values[:, :3], expected_root, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Real files.


def _bandai_sample(bandai_dir: pathlib.Path) -> list[pathlib.Path]:
  files = []
  for sub in ("dataset-1", "dataset-2"):
    found = sorted((bandai_dir / sub / "data").glob("*.bvh"))
    files += found[:: max(1, len(found) // 3)][:3]
  return files


def test_bandai_files_read(bandai_dir):
  files = _bandai_sample(bandai_dir)
  assert len(files) == 6
  for path in files:
    motion = bvh.read_bvh(path)
    header = int(next(line for line in path.read_text().splitlines() if line.startswith("Frames")).split()[1])
    assert motion.num_frames == header
    assert motion.skeleton.num_joints == 22 and motion.skeleton.num_channels == 132
    assert motion.skeleton.joint_names[:3] == ("joint_Root", "Hips", "Spine")
    assert abs(motion.fps - 30.0) < 1e-3
    positions = bvh.forward_kinematics(motion)
    assert positions.shape == (motion.num_frames, 22, 3)
    # Rigid bones: below Hips (placed by its position channels), every joint's distance to its
    # parent is constant over the clip.
    parents = motion.skeleton.parents
    lengths = np.linalg.norm(positions[:, 2:] - positions[:, parents[2:]], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[:1], lengths.shape), atol=1e-3)
    # Y up, centimetres: the head is 1.1-1.8 m above the lowest toe in the first frame.
    head, toes = motion.skeleton.index("Head"), [motion.skeleton.index("Toes_L"), motion.skeleton.index("Toes_R")]
    assert 110 < positions[0, head, 1] - positions[0, toes, 1].min() < 180


def test_bandai_write_read_identity(bandai_dir, tmp_path):
  """Re-writing a real file from its FK rotations reproduces its FK positions."""
  motion = bvh.read_bvh(_bandai_sample(bandai_dir)[3])
  motion = bvh.BvhMotion(motion.skeleton, motion.values[:40], motion.frame_time)
  local, translations = bvh.local_transforms(motion)
  bvh.write_bvh(tmp_path / "b.bvh", motion.skeleton, translations[:, 0], local, motion.frame_time,
                local_translations=translations)
  back = bvh.read_bvh(tmp_path / "b.bvh")
  np.testing.assert_allclose(bvh.forward_kinematics(back), bvh.forward_kinematics(motion), atol=1e-3)
