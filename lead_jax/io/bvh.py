"""BVH motion files: read, write, forward kinematics and resampling (NumPy, vectorised over frames).

Conventions (those of the BVH format as Blender, MotionBuilder and the CMU conversions use it):
  * A joint's `CHANNELS` line lists position channels (`Xposition` ...) and rotation channels
    (`Zrotation` ...) in any order. Rotation channels compose intrinsically in the order listed:
    `Zrotation Xrotation Yrotation` means `R = Rz(z) @ Rx(x) @ Ry(y)` (angles in degrees), and a point
    in the joint's frame maps to its parent's frame as `p_parent = R @ p + t`.
  * `t` is the joint's `OFFSET`, with each axis that has a position channel replaced by that channel's
    value (the root's position channels are its absolute position; Bandai-Namco files carry position
    channels on every joint, equal to the offsets).
  * Quaternions are (w, x, y, z), like the rest of lead_jax.

Example:
  motion = read_bvh("walk.bvh")
  positions = forward_kinematics(motion)            # [T, J, 3] in the file's units
  motion20 = resample(motion, 1 / motion.frame_time, 20.0)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

import numpy as np

from lead_jax.errors import InputError, MissingFileError
from lead_jax.motion import kinematics, rotations

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_CHANNEL_AXIS = {"X": 0, "Y": 1, "Z": 2}


@dataclasses.dataclass(frozen=True)
class BvhSkeleton:
  """A BVH hierarchy.

  Attributes:
    joint_names: J names, in file (depth-first) order; parents precede children.
    parents: [J] parent index of each joint, -1 for the root.
    offsets: [J, 3] rest offset of each joint from its parent (root: from the origin).
    channels: per joint, its channel names in file order, e.g. ("Xposition", ..., "Yrotation").
    end_sites: [J, 3] `End Site` offset of each joint, NaN where the joint has none.
  """
  joint_names: tuple[str, ...]
  parents: np.ndarray
  offsets: np.ndarray
  channels: tuple[tuple[str, ...], ...]
  end_sites: np.ndarray

  @property
  def num_joints(self) -> int:
    return len(self.joint_names)

  @property
  def num_channels(self) -> int:
    return sum(len(c) for c in self.channels)

  @property
  def channel_starts(self) -> np.ndarray:
    """[J] column of each joint's first channel in the MOTION frame rows."""
    return np.cumsum([0] + [len(c) for c in self.channels[:-1]])

  def rotation_order(self, joint: int) -> str:
    """The joint's Euler order from its channel order, e.g. "ZXY" ("" when it has no rotation)."""
    return "".join(c[0] for c in self.channels[joint] if c in ROTATION_CHANNELS)

  def index(self, name: str) -> int:
    try:
      return self.joint_names.index(name)
    except ValueError:
      raise InputError(f"BVH skeleton has no joint {name!r}; joints: {', '.join(self.joint_names)}")


@dataclasses.dataclass(frozen=True)
class BvhMotion:
  """A BVH clip: `values` [T, C] are the MOTION rows, `frame_time` seconds per frame."""
  skeleton: BvhSkeleton
  values: np.ndarray
  frame_time: float
  source: str = "<memory>"

  @property
  def num_frames(self) -> int:
    return int(self.values.shape[0])

  @property
  def fps(self) -> float:
    return 1.0 / self.frame_time

  @property
  def nominal_fps(self) -> float:
    """`fps` snapped to the nearest integer when within 0.01% of it (0.0333333 s -> 30)."""
    rounded = round(self.fps)
    return float(rounded) if rounded > 0 and abs(self.fps - rounded) < 1e-4 * rounded else self.fps

  def joint_channels(self, joint: int) -> np.ndarray:
    """[T, C_j] the channel values of one joint."""
    start = int(self.skeleton.channel_starts[joint])
    return self.values[:, start:start + len(self.skeleton.channels[joint])]


# ----------------------------------------------------------------------------------------------
# Reading.


class _Tokens:
  """Whitespace tokens of the HIERARCHY section with their 1-based line numbers."""

  def __init__(self, lines: list[str], source: str):
    self.source = source
    self.items: list[tuple[str, int]] = []
    for number, line in enumerate(lines, start=1):
      # `{` and `}` may touch other tokens ("JOINT Hips{"); split them out.
      for token in re.findall(r"[{}]|[^\s{}]+", line):
        self.items.append((token, number))
    self.pos = 0

  def error(self, message: str, line: int | None = None) -> InputError:
    if line is None:
      line = self.items[min(self.pos, len(self.items) - 1)][1] if self.items else 1
    return InputError(f"{self.source}: line {line}: {message}")

  def next(self, what: str) -> tuple[str, int]:
    if self.pos >= len(self.items):
      last = self.items[-1][1] if self.items else 1
      raise self.error(f"unexpected end of HIERARCHY, expected {what}", last)
    item = self.items[self.pos]
    self.pos += 1
    return item

  def expect(self, token: str) -> int:
    found, line = self.next(repr(token))
    if found.upper() != token.upper():
      raise self.error(f"expected {token!r}, found {found!r}", line)
    return line

  def number(self, what: str) -> float:
    found, line = self.next(what)
    try:
      value = float(found)
    except ValueError:
      raise self.error(f"expected a number for {what}, found {found!r}", line) from None
    if not math.isfinite(value):
      raise self.error(f"{what} is {found}", line)
    return value


def _parse_hierarchy(tokens: _Tokens) -> BvhSkeleton:
  names: list[str] = []
  parents: list[int] = []
  offsets: list[tuple[float, float, float]] = []
  channels: list[tuple[str, ...]] = []
  end_sites: list[list[float]] = []

  def parse_joint(parent: int) -> None:
    name, line = tokens.next("a joint name")
    if name in ("{", "}"):
      raise tokens.error(f"expected a joint name, found {name!r}", line)
    if name in names:
      raise tokens.error(f"duplicate joint name {name!r}", line)
    index = len(names)
    names.append(name)
    parents.append(parent)
    offsets.append((0.0, 0.0, 0.0))
    channels.append(())
    end_sites.append([math.nan] * 3)
    tokens.expect("{")
    seen_offset = False
    while True:
      keyword, line = tokens.next(f"OFFSET, CHANNELS, JOINT, End Site or '}}' in joint {name!r}")
      upper = keyword.upper()
      if upper == "OFFSET":
        offsets[index] = tuple(tokens.number(f"OFFSET of {name!r}") for _ in range(3))
        seen_offset = True
      elif upper == "CHANNELS":
        count_token, count_line = tokens.next(f"channel count of {name!r}")
        if not count_token.isdigit():
          raise tokens.error(f"expected a channel count for {name!r}, found {count_token!r}",
                             count_line)
        joint_channels = []
        for _ in range(int(count_token)):
          channel, channel_line = tokens.next(f"a channel name of {name!r}")
          canonical = channel[:1].upper() + channel[1:].lower()
          if canonical not in POSITION_CHANNELS + ROTATION_CHANNELS:
            raise tokens.error(
                f"joint {name!r} declares {count_token} channels but {channel!r} is not a "
                f"channel name (expected one of {', '.join(POSITION_CHANNELS + ROTATION_CHANNELS)})",
                channel_line)
          if canonical in joint_channels:
            raise tokens.error(f"joint {name!r} lists channel {canonical} twice", channel_line)
          joint_channels.append(canonical)
        channels[index] = tuple(joint_channels)
      elif upper == "JOINT":
        parse_joint(index)
      elif upper == "END":
        tokens.expect("Site")
        tokens.expect("{")
        tokens.expect("OFFSET")
        end_sites[index] = [tokens.number(f"End Site OFFSET of {name!r}") for _ in range(3)]
        tokens.expect("}")
      elif keyword == "}":
        break
      else:
        raise tokens.error(f"unexpected {keyword!r} in joint {name!r}", line)
    if not seen_offset:
      raise tokens.error(f"joint {name!r} has no OFFSET", line)

  tokens.expect("HIERARCHY")
  tokens.expect("ROOT")
  parse_joint(-1)
  keyword, line = tokens.next("MOTION")
  if keyword.upper() == "ROOT":
    raise tokens.error("files with several ROOT hierarchies are not supported", line)
  if keyword.upper() != "MOTION":
    raise tokens.error(f"expected MOTION after the hierarchy, found {keyword!r}", line)
  return BvhSkeleton(
      joint_names=tuple(names), parents=np.asarray(parents, np.int32),
      offsets=np.asarray(offsets, np.float64), channels=tuple(channels),
      end_sites=np.asarray(end_sites, np.float64))


def _header_value(line: str, key: str, number: int, source: str) -> str:
  match = re.fullmatch(rf"\s*{key}\s*:?\s*(\S+)\s*", line, flags=re.IGNORECASE)
  if match is None:
    raise InputError(f"{source}: line {number}: expected '{key}: <value>', found {line.strip()!r}")
  return match.group(1)


def _printable(message: str, limit: int = 400) -> str:
  """`message` with unprintable characters (control bytes, undecodable ones) escaped and cut to
  `limit` characters, so a garbage file's bytes never reach the terminal raw."""
  out = "".join(c if c.isprintable() and c != "\ufffd" else ascii(c)[1:-1] for c in message)
  return out if len(out) <= limit else out[:limit] + " ..."


def parse_bvh(text: str, source: str = "<string>") -> BvhMotion:
  """Parses BVH text (see `read_bvh`); `source` names the file in error messages."""
  try:
    return _parse_bvh(text, source)
  except InputError as e:
    raise InputError(_printable(str(e))) from None


def _parse_bvh(text: str, source: str) -> BvhMotion:
  lines = text.splitlines()  # Handles \n, \r\n and \r.
  motion_line = next((i for i, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
  if not text.strip():
    raise InputError(f"{source}: the file is empty (expected a BVH file starting with HIERARCHY)")
  if motion_line is None:
    hierarchy = _Tokens(lines, source)
    _parse_hierarchy(hierarchy)  # Raises the precise error of a truncated hierarchy.
    raise InputError(f"{source}: no MOTION section")  # pragma: no cover (the parser raises first)
  tokens = _Tokens(lines[:motion_line + 1], source)
  skeleton = _parse_hierarchy(tokens)
  if tokens.pos != len(tokens.items):
    raise tokens.error("unexpected text after MOTION", tokens.items[tokens.pos][1])

  # Header: "Frames: N" and "Frame Time: dt" on the next non-blank lines.
  rest = [(i + 1, line) for i, line in enumerate(lines[motion_line + 1:], start=motion_line + 1)
          if line.strip()]
  if len(rest) < 2:
    raise InputError(f"{source}: line {motion_line + 1}: MOTION section is empty "
                     "(expected 'Frames:' and 'Frame Time:' lines followed by frame rows)")
  (frames_number, frames_line), (time_number, time_line) = rest[0], rest[1]
  frames_text = _header_value(frames_line, "Frames", frames_number, source)
  if not frames_text.isdigit():
    raise InputError(f"{source}: line {frames_number}: frame count {frames_text!r} is not an integer")
  num_frames = int(frames_text)
  time_text = _header_value(time_line, "Frame Time", time_number, source)
  try:
    frame_time = float(time_text)
  except ValueError:
    raise InputError(f"{source}: line {time_number}: frame time {time_text!r} is not a number") from None
  if not (math.isfinite(frame_time) and frame_time > 0):
    raise InputError(f"{source}: line {time_number}: frame time must be positive, found {time_text}")
  rows = rest[2:]
  if num_frames == 0 or not rows:
    raise InputError(f"{source}: line {time_number}: MOTION section has no frames "
                     f"(header says Frames: {num_frames}, found {len(rows)} frame rows)")
  if len(rows) != num_frames:
    raise InputError(f"{source}: line {frames_number}: header says Frames: {num_frames} but the "
                     f"file has {len(rows)} frame rows (truncated or corrupt file?)")

  num_channels = skeleton.num_channels
  split_rows = [line.split() for _, line in rows]
  counts = np.fromiter((len(r) for r in split_rows), np.int64, len(split_rows))
  bad = np.flatnonzero(counts != num_channels)
  if bad.size:
    number = rows[bad[0]][0]
    raise InputError(
        f"{source}: line {number}: frame {bad[0]} has {counts[bad[0]]} values, expected "
        f"{num_channels} (the hierarchy's channel count); {bad.size} bad frame row(s) in all")
  try:
    values = np.array(split_rows, dtype=np.float64).reshape(num_frames, num_channels)
  except ValueError:
    for (number, _), row in zip(rows, split_rows):
      for token in row:
        try:
          float(token)
        except ValueError:
          raise InputError(f"{source}: line {number}: {token!r} is not a number") from None
    raise
  finite = np.isfinite(values)
  if not finite.all():
    frame, column = np.argwhere(~finite)[0]
    raise InputError(f"{source}: line {rows[frame][0]}: frame {frame} channel {column} is "
                     f"{values[frame, column]} ({(~finite.all(axis=1)).sum()} non-finite frame(s))")
  return BvhMotion(skeleton=skeleton, values=values, frame_time=frame_time, source=source)


def read_bvh(path: str | os.PathLike) -> BvhMotion:
  """Reads a BVH file (any channel order, End Sites, CRLF); raises `InputError` naming file and line."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise MissingFileError(f"BVH file not found: {path}")
  with open(path, "rb") as f:
    data = f.read()
  head = data[:4096]
  control = sum(b < 9 or 13 < b < 32 for b in head)
  if b"\0" in head or control > max(8, 0.01 * len(head)):
    raise InputError(f"{path}: not a BVH text file (binary data; a BVH file is text starting "
                     "with HIERARCHY)")
  return parse_bvh(data.decode("utf-8", errors="replace"), source=path)


# ----------------------------------------------------------------------------------------------
# Forward kinematics (rotations: lead_jax.motion.rotations on NumPy float64; the tree: kinematics).


def local_transforms(motion: BvhMotion) -> tuple[np.ndarray, np.ndarray]:
  """Per-frame local transforms of every joint.

  Returns:
    rotations: [T, J, 3, 3] joint-to-parent rotations.
    translations: [T, J, 3] joint origin in the parent's frame.
  """
  skeleton, values = motion.skeleton, motion.values
  num_frames, num_joints = values.shape[0], skeleton.num_joints
  local_rotations = np.broadcast_to(np.eye(3), (num_frames, num_joints, 3, 3)).copy()
  translations = np.broadcast_to(skeleton.offsets, (num_frames, num_joints, 3)).copy()
  starts = skeleton.channel_starts
  # Joints whose rotations share an Euler order are converted together (one call per order).
  by_order: dict[str, tuple[list[int], list[np.ndarray]]] = {}
  for joint, joint_channels in enumerate(skeleton.channels):
    rotation_columns = []
    for k, channel in enumerate(joint_channels):
      column = starts[joint] + k
      if channel in POSITION_CHANNELS:
        translations[:, joint, _CHANNEL_AXIS[channel[0]]] = values[:, column]
      else:
        rotation_columns.append(column)
    if rotation_columns:
      order = skeleton.rotation_order(joint)
      angles = values[:, rotation_columns]
      if len(order) < 3:  # Fewer than 3 rotation channels: pad with zero angles on unused axes.
        missing = "".join(a for a in "XYZ" if a not in order)
        order = order + missing
        angles = np.concatenate([angles, np.zeros((num_frames, len(missing)))], axis=1)
      joints, angle_blocks = by_order.setdefault(order, ([], []))
      joints.append(joint)
      angle_blocks.append(angles)
  for order, (joints, angle_blocks) in by_order.items():
    local_rotations[:, joints] = rotations.euler_to_matrix(
        np.deg2rad(np.stack(angle_blocks, axis=1)), order)
  return local_rotations, translations


def forward_kinematics(motion: BvhMotion, return_rotations: bool = False):
  """Global joint positions [T, J, 3] (file units); with `return_rotations`, also [T, J, 3, 3]."""
  local_rotations, translations = local_transforms(motion)
  positions, global_rotations = kinematics.forward_kinematics(
      local_rotations, translations, motion.skeleton.parents)
  return (positions, global_rotations) if return_rotations else positions


# ----------------------------------------------------------------------------------------------
# Writing.


def _format_rows(values: np.ndarray, precision: int) -> str:
  """[T, C] -> text rows, formatted in one vectorised pass."""
  text = np.char.mod(f"%.{precision}f", values)
  return "\n".join(" ".join(row) for row in text.tolist())


def make_skeleton(joint_names, parents, offsets, rotation_order: str = "ZYX",
                  end_sites: np.ndarray | None = None) -> BvhSkeleton:
  """A skeleton with 6 channels on the root (position then rotation) and 3 rotations elsewhere."""
  order = rotation_order.upper()
  if sorted(order) != ["X", "Y", "Z"]:
    raise InputError(f"rotation_order must be a permutation of XYZ, found {rotation_order!r}")
  rotation = tuple(f"{a}rotation" for a in order)
  parents = np.asarray(parents, np.int32)
  channels = tuple((POSITION_CHANNELS + rotation) if p < 0 else rotation for p in parents)
  num_joints = len(joint_names)
  if end_sites is None:
    end_sites = np.full((num_joints, 3), np.nan)
  return BvhSkeleton(tuple(joint_names), parents, np.asarray(offsets, np.float64).reshape(-1, 3),
                     channels, np.asarray(end_sites, np.float64))


def pose_to_values(skeleton: BvhSkeleton, root_positions: np.ndarray,
                   local_rotations: np.ndarray,
                   local_translations: np.ndarray | None = None) -> np.ndarray:
  """Channel rows [T, C] from root positions [T, 3] and local rotations.

  `local_rotations` is [T, J, 4] quaternions (w, x, y, z), [T, J, 3, 3] matrices, or [T, J, 3] Euler
  degrees already in each joint's channel order. Position channels of non-root joints take
  `local_translations` [T, J, 3] when given, else their offsets; Euler angles are unwrapped over
  time so curves stay continuous.
  """
  root_positions = np.asarray(root_positions, np.float64)
  local_rotations = np.asarray(local_rotations, np.float64)
  num_joints = skeleton.num_joints
  if root_positions.ndim != 2 or root_positions.shape[1] != 3:
    raise InputError(f"root_positions must be [T, 3], found shape {root_positions.shape}")
  num_frames = root_positions.shape[0]
  shape = local_rotations.shape
  if shape[:2] != (num_frames, num_joints) or shape[2:] not in ((4,), (3, 3), (3,)):
    raise InputError(f"local_rotations must be [T={num_frames}, J={num_joints}, 4] quaternions, "
                     f"[T, J, 3, 3] matrices or [T, J, 3] Euler degrees, found shape {shape}")
  if local_translations is not None:
    local_translations = np.asarray(local_translations, np.float64)
    if local_translations.shape != (num_frames, num_joints, 3):
      raise InputError(f"local_translations must be [T={num_frames}, J={num_joints}, 3], "
                       f"found shape {local_translations.shape}")
    if not np.isfinite(local_translations).all():
      raise InputError("local_translations contain NaN or infinite values")
  if not (np.isfinite(root_positions).all() and np.isfinite(local_rotations).all()):
    raise InputError("root_positions / local_rotations contain NaN or infinite values")
  if shape[2:] == (4,):
    norms = np.linalg.norm(local_rotations, axis=-1)
    if (norms < 1e-8).any():
      raise InputError("local_rotations contains zero-length quaternions")
    matrices = rotations.quaternion_to_matrix(local_rotations)
  elif shape[2:] == (3, 3):
    matrices = local_rotations
  else:
    matrices = None

  values = np.zeros((num_frames, skeleton.num_channels), np.float64)
  starts = skeleton.channel_starts
  for joint, joint_channels in enumerate(skeleton.channels):
    order = skeleton.rotation_order(joint)
    if joint_channels and len(order) not in (0, 3):
      raise InputError(f"joint {skeleton.joint_names[joint]!r} has {len(order)} rotation channels; "
                       "writing needs 0 or 3")
    if order:
      angles = (local_rotations[:, joint] if matrices is None
                else np.rad2deg(rotations.matrix_to_euler(matrices[:, joint], order)))
      angles = np.unwrap(angles, period=360.0, axis=0)
    rotation_k = 0
    for k, channel in enumerate(joint_channels):
      column = starts[joint] + k
      if channel in POSITION_CHANNELS:
        axis = _CHANNEL_AXIS[channel[0]]
        if skeleton.parents[joint] < 0:
          values[:, column] = root_positions[:, axis]
        elif local_translations is not None:
          values[:, column] = local_translations[:, joint, axis]
        else:
          values[:, column] = skeleton.offsets[joint, axis]
      else:
        values[:, column] = angles[:, rotation_k]
        rotation_k += 1
  return values


def depth_first_order(parents: np.ndarray) -> list[int]:
  """Joint indices in the order a BVH file lists them (depth first, children by index)."""
  children: dict[int, list[int]] = {j: [] for j in range(len(parents))}
  for joint, parent in enumerate(parents):
    if parent >= 0:
      children[int(parent)].append(joint)
  order: list[int] = []
  stack = [int(r) for r in np.flatnonzero(np.asarray(parents) < 0)][::-1]
  while stack:
    joint = stack.pop()
    order.append(joint)
    stack.extend(children[joint][::-1])
  return order


def format_bvh(motion: BvhMotion, precision: int = 6) -> str:
  """BVH text of a motion (tabs for indentation, LF line ends).

  Joints are written depth first; when the skeleton's joint order differs, the channel columns are
  permuted to match, so `read_bvh` returns the joints in depth-first order.
  """
  skeleton = motion.skeleton
  if len(skeleton.parents) == 0 or (skeleton.parents < 0).sum() != 1:
    raise InputError(f"a BVH skeleton needs exactly one root, found {(skeleton.parents < 0).sum()}")
  children: dict[int, list[int]] = {j: [] for j in range(skeleton.num_joints)}
  for joint, parent in enumerate(skeleton.parents):
    if parent >= 0:
      children[int(parent)].append(joint)
  order = depth_first_order(skeleton.parents)
  if len(order) != skeleton.num_joints:
    raise InputError("the skeleton's parents do not form a tree")
  starts = skeleton.channel_starts
  columns = np.concatenate([np.arange(starts[j], starts[j] + len(skeleton.channels[j]))
                            for j in order]).astype(np.int64)
  number = f"%.{precision}f"
  out = ["HIERARCHY"]

  def emit(joint: int, depth: int) -> None:
    pad = "\t" * depth
    keyword = "ROOT" if skeleton.parents[joint] < 0 else "JOINT"
    out.append(f"{pad}{keyword} {skeleton.joint_names[joint]}")
    out.append(f"{pad}{{")
    out.append(f"{pad}\tOFFSET " + " ".join(number % v for v in skeleton.offsets[joint]))
    channels = skeleton.channels[joint]
    out.append(f"{pad}\tCHANNELS {len(channels)}" + "".join(f" {c}" for c in channels))
    for child in children[joint]:
      emit(child, depth + 1)
    if not children[joint]:
      site = skeleton.end_sites[joint]
      site = np.zeros(3) if np.isnan(site).any() else site
      out.extend([f"{pad}\tEnd Site", f"{pad}\t{{",
                  f"{pad}\t\tOFFSET " + " ".join(number % v for v in site), f"{pad}\t}}"])
    out.append(f"{pad}}}")

  emit(order[0], 0)
  out += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {motion.frame_time:.8f}"]
  return "\n".join(out) + "\n" + _format_rows(motion.values[:, columns], precision) + "\n"


def write_bvh(path: str | os.PathLike, skeleton: BvhSkeleton, root_positions: np.ndarray,
              local_rotations: np.ndarray, frame_time: float, precision: int = 6,
              local_translations: np.ndarray | None = None) -> BvhMotion:
  """Writes a BVH file; see `pose_to_values` for the formats. Returns the written motion."""
  if not (math.isfinite(frame_time) and frame_time > 0):
    raise InputError(f"frame_time must be positive, found {frame_time}")
  values = pose_to_values(skeleton, root_positions, local_rotations, local_translations)
  motion = BvhMotion(skeleton, values, float(frame_time), source=os.fspath(path))
  directory = os.path.dirname(os.fspath(path))
  if directory:
    os.makedirs(directory, exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write(format_bvh(motion, precision))
  return motion


# ----------------------------------------------------------------------------------------------
# Resampling.


def _resample_times(num_frames: int, src_fps: float, dst_fps: float) -> np.ndarray:
  """Source-frame coordinates of the output frames: 0, src/dst, 2 src/dst, ... within the clip."""
  if not (src_fps > 0 and dst_fps > 0):
    raise InputError(f"frame rates must be positive, found src_fps={src_fps}, dst_fps={dst_fps}")
  step = src_fps / dst_fps
  # Frame times in BVH files are rounded (0.0333333): allow 1e-3 frames of slack at the end.
  count = int(math.floor((num_frames - 1) / step + 1e-3)) + 1
  return np.arange(count) * step


def resample(x: np.ndarray | BvhMotion, src_fps: float, dst_fps: float = 20.0):
  """Resamples a clip in time (output frame k is at source time k / dst_fps).

  Args:
    x: positions [T, ...] (linear interpolation) or a `BvhMotion` (position channels linearly,
      each joint's rotation by quaternion slerp, written back as Euler angles in its channel order).
    src_fps, dst_fps: frame rates.
  Returns:
    The same kind of object with N = floor((T - 1) dst / src) + 1 frames.
  """
  if isinstance(x, BvhMotion):
    frames = np.arange(x.num_frames)
    times = _resample_times(x.num_frames, src_fps, dst_fps)
    skeleton = x.skeleton
    # Position channels; rotation columns replaced below.
    values = kinematics.lerp_keyframes(frames, x.values, times)
    # With 1-2 rotation channels the rotation is about fixed axes; linear interpolation is exact.
    slerped = [j for j in range(skeleton.num_joints) if len(skeleton.rotation_order(j)) == 3]
    if slerped:
      local_rotations, _ = local_transforms(x)
      quats = kinematics.slerp_keyframes(
          frames, rotations.matrix_to_quaternion(local_rotations[:, slerped]), times)
      starts = skeleton.channel_starts
      by_order: dict[str, list[int]] = {}
      for k, joint in enumerate(slerped):
        by_order.setdefault(skeleton.rotation_order(joint), []).append(k)
      for order, ks in by_order.items():  # one Euler conversion per order
        angles = np.unwrap(np.rad2deg(rotations.quaternion_to_euler(quats[:, ks], order)),
                           period=360.0, axis=0)
        for angle_block, k in zip(np.moveaxis(angles, 1, 0), ks):
          joint = slerped[k]
          columns = [starts[joint] + c for c, name in enumerate(skeleton.channels[joint])
                     if name in ROTATION_CHANNELS]
          values[:, columns] = angle_block
    return BvhMotion(skeleton, values, 1.0 / dst_fps, source=x.source)
  x = np.asarray(x)
  if x.ndim < 1 or x.shape[0] == 0:
    raise InputError(f"resample needs at least one frame, found shape {x.shape}")
  times = _resample_times(x.shape[0], src_fps, dst_fps)
  return kinematics.lerp_keyframes(np.arange(x.shape[0]), x, times).astype(
      x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)
