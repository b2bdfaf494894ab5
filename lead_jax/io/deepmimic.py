"""DeepMimic humanoid clips -> 22-joint HumanML3D (SMPL body) joint positions.

The DeepMimic reference motions ship inside the pybullet wheel
(`pybullet_data/data/motions/humanoid3d_*.txt`, 15 clips). A clip is JSON:

  {"Loop": "wrap" | "none", "Frames": [[duration, root xyz, root quat wxyz,
    chest quat, neck quat, right hip quat, right knee angle, right ankle quat,
    right shoulder quat, right elbow angle, left hip quat, left knee angle,
    left ankle quat, left shoulder quat, left elbow angle], ...]}

`duration` is the time (s) from a frame to the next (the last one is unused). Quaternions are
(w, x, y, z) local rotations relative to the parent link; knees and elbows are revolute about
their local z axis. The layout is not hard-coded: it is derived from the humanoid model
(`pybullet_data/humanoid/humanoid.urdf`, joint order = frame order, spherical joints 4 values,
revolute 1, fixed 0), which is the DeepMimic `humanoid3d` character scaled by 4; pybullet's
DeepMimic environment loads it with `globalScaling=0.25`, which makes it metres. World frame:
Y up, the character faces +X with its right side at +Z; the ground is y = 0.

Mapping to the SMPL 22 joints (model-frame points, so every joint moves rigidly with a link):
  pelvis, hips, knees, ankles, shoulders, elbows, wrists: the humanoid's own joints;
  spine2 = chest joint; spine1 = halfway up the root link (root -> chest joint);
  spine3 = a quarter of the way from the chest joint to the neck joint;
  collars = in the chest frame at shoulder height, halfway between the spine axis and the
    shoulder (this coincides with the DeepMimic character's clavicle draw shapes within 5 mm);
  neck / head = 0.3 / 0.7 of the way from the neck joint to the head sphere's centre;
  feet (no toes in the model) = ball of the foot from the foot box: a quarter of its length back
    from the toe edge, a quarter of its height above the sole.
The result is rotated by -90 deg about Y so the character faces +Z with its left side at +X
(the HumanML3D convention); heights are unchanged (the ground stays at y = 0).

Resampling: pose at time t is interpolated between key frames (root position linearly, every
local rotation by slerp). Looping clips ("wrap") can be repeated: the cycle offset is the root's
XZ displacement from first to last frame (as DeepMimic does); non-looping clips shorter than the
requested length can be extended by holding their last pose.

Example:
  joints = import_deepmimic_clip(default_motion_dir() / "humanoid3d_walk.txt")  # [T, 22, 3]
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import xml.etree.ElementTree as ET

import numpy as np

from lead_jax.errors import InputError, MissingFileError
from lead_jax.motion import kinematics, rotations

MODEL_SCALE = 0.25  # pybullet DeepMimic env: loadURDF("humanoid/humanoid.urdf", globalScaling=0.25)
TARGET_FPS = 20.0
DEFAULT_MIN_SECONDS = 3.0

# SMPL / HumanML3D joint order (t2m): index -> name.
T2M_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist")

# HumanML3D joints taken directly from a humanoid joint.
_DIRECT = {
    "pelvis": "root", "left_hip": "left_hip", "right_hip": "right_hip",
    "left_knee": "left_knee", "right_knee": "right_knee", "spine2": "chest",
    "left_ankle": "left_ankle", "right_ankle": "right_ankle",
    "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow", "right_elbow": "right_elbow",
    "left_wrist": "left_wrist", "right_wrist": "right_wrist",
}


def default_motion_dir() -> pathlib.Path:
  """The folder of DeepMimic clips inside the installed pybullet wheel."""
  try:
    import pybullet_data  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise MissingFileError("pybullet_data is not installed (pip install pybullet); "
                           "pass the DeepMimic motion folder explicitly") from e
  return pathlib.Path(pybullet_data.getDataPath()) / "data" / "motions"


def default_model_path() -> pathlib.Path:
  """The humanoid URDF inside the installed pybullet wheel."""
  return default_motion_dir().parents[1] / "humanoid" / "humanoid.urdf"


def list_deepmimic_clips(src_dir: str | pathlib.Path | None = None) -> list[pathlib.Path]:
  """Sorted `humanoid3d_*.txt` files under `src_dir` (default: the pybullet data)."""
  folder = pathlib.Path(src_dir) if src_dir is not None else default_motion_dir()
  if not folder.is_dir():
    raise MissingFileError(f"DeepMimic motion folder not found: {folder}")
  return sorted(folder.glob("humanoid3d_*.txt"))


# ----------------------------------------------------------------------------- humanoid model


@dataclasses.dataclass(frozen=True)
class HumanoidModel:
  """Kinematic tree of the DeepMimic humanoid, in metres.

  joint_names: [J] link / joint names, parents first ("root" is index 0).
  parents: [J] parent index (-1 for the root).
  joint_types: [J] "root" | "spherical" | "revolute" | "fixed".
  offsets: [J, 3] joint origin in the parent link's frame.
  axes: [J, 3] rotation axis of revolute joints (zeros otherwise).
  foot_box_center, foot_box_size: [3] the foot collision box in the ankle frame.
  head_center: [3] the head sphere centre in the neck frame; head_radius: its radius.
  """
  joint_names: tuple[str, ...]
  parents: tuple[int, ...]
  joint_types: tuple[str, ...]
  offsets: np.ndarray
  axes: np.ndarray
  foot_box_center: np.ndarray
  foot_box_size: np.ndarray
  head_center: np.ndarray
  head_radius: float

  def index(self, name: str) -> int:
    return self.joint_names.index(name)

  @property
  def frame_size(self) -> int:
    """Values per motion frame: duration + root (3 + 4) + 4 per spherical + 1 per revolute."""
    sizes = {"root": 7, "spherical": 4, "revolute": 1, "fixed": 0}
    return 1 + sum(sizes[t] for t in self.joint_types)


def _floats(text: str | None, count: int, where: str) -> np.ndarray:
  try:
    values = np.array([float(v) for v in (text or "").split()], np.float64)
  except ValueError as e:
    raise InputError(f"{where}: cannot parse numbers from {text!r}") from e
  if values.shape != (count,):
    raise InputError(f"{where}: expected {count} numbers, found {values.size} in {text!r}")
  return values


def load_humanoid_model(path: str | pathlib.Path | None = None,
                        scale: float = MODEL_SCALE) -> HumanoidModel:
  """Reads the humanoid URDF (joint offsets, foot box, head sphere), scaled to metres."""
  path = pathlib.Path(path) if path is not None else default_model_path()
  if not path.is_file():
    raise MissingFileError(f"humanoid model not found: {path}")
  raw = path.read_bytes().rstrip(b"\x00\r\n\t ")  # the shipped file ends with a NUL byte
  try:
    robot = ET.fromstring(raw)
  except ET.ParseError as e:
    raise InputError(f"{path}: not a valid URDF ({e})") from e

  links = {link.get("name"): link for link in robot.iter("link")}
  joints = {}
  for joint in robot.iter("joint"):
    child = joint.find("child").get("link")
    parent = joint.find("parent").get("link")
    origin = joint.find("origin")
    rpy = _floats(origin.get("rpy"), 3, f"{path}: joint {joint.get('name')} rpy")
    if np.any(np.abs(rpy) > 1e-9):
      raise InputError(f"{path}: joint {joint.get('name')} has a rotated origin {rpy}; "
                       "only axis-aligned joint frames are supported")
    xyz = _floats(origin.get("xyz"), 3, f"{path}: joint {joint.get('name')} xyz")
    axis_el = joint.find("axis")
    axis = (_floats(axis_el.get("xyz"), 3, f"{path}: joint {joint.get('name')} axis")
            if axis_el is not None else np.zeros(3))
    joints[child] = (parent, joint.get("type"), xyz * scale, axis)

  # Breadth-first from "root" keeps file order among siblings (= DeepMimic frame order).
  if "root" not in joints:
    raise InputError(f"{path}: no link named 'root'")
  order = ["root"]
  for name in [j.find("child").get("link") for j in robot.iter("joint")]:
    if name != "root" and name not in order:
      order.append(name)
  names, parents, types, offsets, axes = [], [], [], [], []
  for name in order:
    parent, jtype, xyz, axis = joints[name]
    names.append(name)
    parents.append(-1 if name == "root" else order.index(parent))
    types.append("root" if name == "root" else jtype)
    offsets.append(np.zeros(3) if name == "root" else xyz)
    axes.append(axis)
  for i, p in enumerate(parents):
    if p >= i:
      raise InputError(f"{path}: joint {names[i]} listed before its parent")

  def geometry(link_name: str, shape: str) -> tuple[np.ndarray, np.ndarray]:
    link = links.get(link_name)
    node = None if link is None else link.find("collision")
    geom = None if node is None else node.find(f"geometry/{shape}")
    if geom is None:
      raise InputError(f"{path}: link {link_name} has no {shape} collision geometry")
    center = _floats(node.find("origin").get("xyz"), 3, f"{path}: {link_name} collision") * scale
    if shape == "box":
      size = _floats(geom.get("size"), 3, f"{path}: {link_name} box size") * scale
    else:
      size = np.array([float(geom.get("radius")) * scale])
    return center, size

  foot_center, foot_size = geometry("right_ankle", "box")
  head_center, head_radius = geometry("neck", "sphere")
  return HumanoidModel(
      joint_names=tuple(names), parents=tuple(parents), joint_types=tuple(types),
      offsets=np.stack(offsets), axes=np.stack(axes), foot_box_center=foot_center,
      foot_box_size=foot_size, head_center=head_center, head_radius=float(head_radius[0]))


# ----------------------------------------------------------------------------- clips


@dataclasses.dataclass(frozen=True)
class DeepMimicClip:
  """Key frames of one clip.

  name: file stem; loop: True for "wrap" clips.
  times: [N] key-frame times in seconds (times[0] = 0).
  root_pos: [N, 3] root position (m); rotations: [N, J, 4] local rotations (w,x,y,z) of every
  model joint (root = world orientation, fixed joints = identity).
  """
  name: str
  loop: bool
  times: np.ndarray
  root_pos: np.ndarray
  rotations: np.ndarray

  @property
  def duration(self) -> float:
    return float(self.times[-1])


def read_deepmimic_motion(path: str | pathlib.Path,
                          model: HumanoidModel | None = None) -> DeepMimicClip:
  """Parses a DeepMimic motion file into key frames on `model`'s joints."""
  path = pathlib.Path(path)
  model = model or load_humanoid_model()
  if not path.is_file():
    raise MissingFileError(f"DeepMimic motion file not found: {path}")
  try:
    data = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise InputError(f"{path}: not a DeepMimic motion file (invalid JSON: {e})") from e
  if not isinstance(data, dict) or "Frames" not in data:
    raise InputError(f"{path}: missing the 'Frames' field of a DeepMimic motion file")
  try:
    frames = np.asarray(data["Frames"], np.float64)
  except (TypeError, ValueError) as e:
    raise InputError(f"{path}: 'Frames' is not a rectangular list of numbers") from e
  if frames.ndim != 2 or frames.shape[1] != model.frame_size:
    raise InputError(f"{path}: frames must be [N, {model.frame_size}] for the humanoid model, "
                     f"found shape {frames.shape}")
  if frames.shape[0] < 2:
    raise InputError(f"{path}: need at least 2 frames, found {frames.shape[0]}")
  if not np.all(np.isfinite(frames)):
    raise InputError(f"{path}: frames contain NaN or infinite values")
  durations = frames[:-1, 0]
  if np.any(durations <= 0):
    bad = int(np.argmax(durations <= 0))
    raise InputError(f"{path}: frame {bad} has non-positive duration {durations[bad]}")
  loop = str(data.get("Loop", "none")).lower()
  if loop not in ("wrap", "none"):
    raise InputError(f"{path}: field 'Loop' must be 'wrap' or 'none', found {data['Loop']!r}")

  n, num_joints = frames.shape[0], len(model.joint_names)
  local_rotations = np.zeros((n, num_joints, 4))
  local_rotations[..., 0] = 1.0
  col = 1
  root_pos = frames[:, col:col + 3]
  col += 3
  for j, jtype in enumerate(model.joint_types):
    if jtype in ("root", "spherical"):
      q = frames[:, col:col + 4]
      norm = np.linalg.norm(q, axis=-1)
      if np.any(norm < 1e-6):
        raise InputError(f"{path}: zero quaternion for joint {model.joint_names[j]}")
      local_rotations[:, j] = q / norm[:, None]
      col += 4
    elif jtype == "revolute":
      angles = frames[:, col, None]
      local_rotations[:, j] = rotations.axis_angle_to_quaternion(model.axes[j] * angles)
      col += 1
  times = np.concatenate([[0.0], np.cumsum(durations)])
  return DeepMimicClip(name=path.stem, loop=loop == "wrap", times=times,
                       root_pos=root_pos.copy(), rotations=local_rotations)


def _repeat_cycles(clip: DeepMimicClip, cycles: int) -> DeepMimicClip:
  """Concatenates `cycles` copies; each copy is shifted by the root's XZ cycle offset."""
  if cycles <= 1:
    return clip
  offset = clip.root_pos[-1] - clip.root_pos[0]
  offset[1] = 0.0
  body = slice(0, -1)  # the last key frame coincides with the next cycle's first
  times, pos, rot = [], [], []
  for c in range(cycles):
    sel = slice(None) if c == cycles - 1 else body
    times.append(clip.times[sel] + c * clip.duration)
    pos.append(clip.root_pos[sel] + c * offset)
    rot.append(clip.rotations[sel])
  return dataclasses.replace(clip, times=np.concatenate(times), root_pos=np.concatenate(pos),
                             rotations=np.concatenate(rot))


def resample_clip(clip: DeepMimicClip, fps: float = TARGET_FPS,
                  min_seconds: float = DEFAULT_MIN_SECONDS, repeat_loops: bool = True,
                  hold_short: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Poses at `fps` over the clip.

  Looping clips shorter than `min_seconds` are repeated whole cycles (if `repeat_loops`);
  other clips shorter than `min_seconds` get their last pose held (if `hold_short`).
  Returns root_pos [T, 3] and local rotations [T, J, 4], T = floor(duration * fps) + 1.
  """
  if fps <= 0:
    raise InputError(f"fps must be positive, found {fps}")
  if clip.loop and repeat_loops and clip.duration < min_seconds:
    clip = _repeat_cycles(clip, int(math.ceil(min_seconds / clip.duration - 1e-9)))
  duration = clip.duration
  if not clip.loop and hold_short:
    duration = max(duration, min_seconds)
  num = int(math.floor(duration * fps + 1e-6)) + 1
  t = np.arange(num) / fps  # times past the last key frame hold its pose
  return (kinematics.lerp_keyframes(clip.times, clip.root_pos, t),
          kinematics.slerp_keyframes(clip.times, clip.rotations, t))


def forward_kinematics(model: HumanoidModel, root_pos: np.ndarray,
                       local_rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """World joint positions [T, J, 3] and orientations [T, J, 3, 3] from root_pos [T, 3] and
  local rotations [T, J, 4] (w, x, y, z)."""
  num_joints = len(model.joint_names)
  num_frames = local_rotations.shape[0]
  if local_rotations.shape[1:] != (num_joints, 4) or root_pos.shape != (num_frames, 3):
    raise InputError(f"forward_kinematics: expected root_pos [T, 3] and rotations "
                     f"[T, {num_joints}, 4], found {root_pos.shape} and {local_rotations.shape}")
  translations = np.repeat(model.offsets[None], num_frames, axis=0)
  translations[:, 0] = root_pos
  return kinematics.forward_kinematics(rotations.quaternion_to_matrix(local_rotations),
                                       translations, model.parents)


def t2m_marker_points(model: HumanoidModel) -> dict[str, tuple[str, np.ndarray]]:
  """HumanML3D joints that the humanoid lacks, as (link name, point in that link's frame)."""
  off = {name: model.offsets[model.index(name)] for name in model.joint_names}
  shoulder = off["right_shoulder"]
  foot_front = model.foot_box_center[0] + 0.5 * model.foot_box_size[0]
  sole = model.foot_box_center[1] - 0.5 * model.foot_box_size[1]
  ball_of_foot = np.array([foot_front - 0.25 * model.foot_box_size[0],
                           sole + 0.25 * model.foot_box_size[1], model.foot_box_center[2]])
  flip_z = np.array([1.0, 1.0, -1.0])
  return {
      "spine1": ("root", 0.5 * off["chest"]),
      "spine3": ("chest", 0.25 * off["neck"]),
      "right_collar": ("chest", np.array([0.5 * shoulder[0], shoulder[1], 0.5 * shoulder[2]])),
      "left_collar": ("chest", np.array([0.5 * shoulder[0], shoulder[1], -0.5 * shoulder[2]])),
      "neck": ("neck", 0.3 * model.head_center),
      "head": ("neck", 0.7 * model.head_center),
      "right_foot": ("right_ankle", ball_of_foot),
      "left_foot": ("left_ankle", ball_of_foot * flip_z),
  }


def to_t2m_joints(model: HumanoidModel, positions: np.ndarray,
                  orientations: np.ndarray) -> np.ndarray:
  """Humanoid world joints [T, J, 3] / [T, J, 3, 3] -> HumanML3D joints [T, 22, 3], facing +Z."""
  markers = t2m_marker_points(model)
  out = []
  for name in T2M_JOINT_NAMES:
    if name in _DIRECT:
      out.append(positions[:, model.index(_DIRECT[name])])
    else:
      link, point = markers[name]
      j = model.index(link)
      out.append(positions[:, j] + orientations[:, j] @ point)
  joints = np.stack(out, axis=1)
  # Face +Z: rotate -90 deg about Y, (x, y, z) -> (-z, y, x).
  return np.stack([-joints[..., 2], joints[..., 1], joints[..., 0]], axis=-1)


FOOT_JOINTS = (7, 8, 10, 11)  # HumanML3D left/right ankle, left/right foot


def ground_joints(joints: np.ndarray, ground: str = "feet") -> np.ndarray:
  """Shifts joints [T, 22, 3] vertically so the floor is y = 0.

  ground: "feet": the lowest ankle/foot joint over the clip touches y = 0 (HumanML3D's floor
  rule, min joint height, restricted to the feet: DeepMimic reference motions push knees and
  hands up to 5 cm under the simulator's ground in crawl/roll/get-up clips, and flooring on those
  would lift the feet); "all": the lowest joint of any kind (HumanML3D's rule as written);
  "model": keep the simulator's ground plane (y = 0 of the motion file).
  """
  if ground == "model":
    return joints
  if ground == "feet":
    floor = joints[:, FOOT_JOINTS, 1].min()
  elif ground == "all":
    floor = joints[..., 1].min()
  else:
    raise InputError(f"ground must be 'feet', 'all' or 'model', found {ground!r}")
  return joints - np.array([0.0, floor, 0.0], joints.dtype)


def import_deepmimic_clip(path: str | pathlib.Path, fps: float = TARGET_FPS,
                          min_seconds: float = DEFAULT_MIN_SECONDS, repeat_loops: bool = True,
                          hold_short: bool = True, ground: str = "feet",
                          model: HumanoidModel | None = None) -> np.ndarray:
  """One DeepMimic clip -> HumanML3D joints [T, 22, 3] (float32, metres, Y up, faces +Z).

  Looping clips are repeated to at least `min_seconds` (`repeat_loops`), shorter non-looping
  clips hold their last pose up to `min_seconds` (`hold_short`); set min_seconds=0 to keep the
  clips' own lengths. `ground` places the floor (see `ground_joints`).
  """
  model = model or load_humanoid_model()
  clip = read_deepmimic_motion(path, model)
  root_pos, local_rotations = resample_clip(clip, fps, min_seconds, repeat_loops, hold_short)
  positions, orientations = forward_kinematics(model, root_pos, local_rotations)
  joints = ground_joints(to_t2m_joints(model, positions, orientations), ground)
  return joints.astype(np.float32)


def import_deepmimic_dir(src_dir: str | pathlib.Path | None = None, **kwargs
                         ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """All `humanoid3d_*.txt` clips of a folder -> ({stem: joints [T, 22, 3]}, {stem: error})."""
  model = kwargs.pop("model", None) or load_humanoid_model()
  clips, failures = {}, {}
  for path in list_deepmimic_clips(src_dir):
    try:
      clips[path.stem] = import_deepmimic_clip(path, model=model, **kwargs)
    except (InputError, MissingFileError) as e:
      failures[path.stem] = str(e)
  return clips, failures
