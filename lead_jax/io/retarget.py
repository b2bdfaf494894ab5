"""Retargeting mocap joint positions onto the 22-joint HumanML3D (SMPL body) skeleton.

A *joint map* (JSON) names, for each of the 22 target joints (`get_skeleton("t2m").joint_names`),
where it sits on the source skeleton:
  "left_knee": "LowerLeg_L"                       a source joint
  "spine2": {"lerp": ["Spine", "Chest", 0.5]}     a point on the segment between two source joints
Optional top-level fields: "up_axis" ("y" or "z", default "y"), "unit" (the default length unit
of files using this map, a name from `UNITS` or metres per unit; default: detected from the
skeleton's size) and "description". Built-in maps live
in `lead_jax/io/maps/` (`bandai`, `cmu`); any other value is read as a path to a JSON file.

`retarget_to_t2m` picks/interpolates the joints, turns Z-up sources to Y-up, converts to metres
(units detected from the skeleton's size unless given) and puts the lowest joint of the clip on the
floor (y = 0). Facing and origin are left as captured: `extract_features` canonicalises those.

Example:
  joints = import_bvh_clip("dataset-2_walk_normal_007.bvh", joint_map="bandai")   # [T, 22, 3]
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib

import numpy as np

from lead_jax.errors import InputError, MissingFileError
from lead_jax.io import bvh
from lead_jax.motion.skeleton import get_skeleton

MAPS_DIR = pathlib.Path(__file__).resolve().parent / "maps"

# Length units by name, in metres. "cmu" is the unit of the CMU mocap BVH conversions
# (cgspeed / Daz-friendly releases): 1 unit = 0.056444 m (inches scaled by 1 / 0.45).
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.056444}

# The ankle -> head-joint chain is about 0.90 of stature (HumanML3D target skeleton: chain
# 1.58 m; the head joint sits ~10 cm below the vertex and the ankle joint ~8 cm above the sole).
CHAIN_TO_STATURE = 1.0 / 0.90
# Plausible ankle -> head chain lengths in metres, for unit detection.
_CHAIN_RANGE_M = (0.7, 2.6)


@dataclasses.dataclass(frozen=True)
class JointMap:
  """Target joint -> (source a, source b, weight): the target is `(1 - w) * a + w * b`."""
  name: str
  entries: dict[str, tuple[str, str, float]]
  up_axis: str = "y"
  unit: str | float | None = None  # default length unit of sources using this map; None: detect

  @property
  def source_joints(self) -> list[str]:
    """Source joint names the map reads, in first-use order."""
    names: list[str] = []
    for a, b, _ in self.entries.values():
      for n in (a, b):
        if n not in names:
          names.append(n)
    return names


def builtin_maps() -> list[str]:
  """Names of the maps shipped in `lead_jax/io/maps/`."""
  return sorted(p.stem for p in MAPS_DIR.glob("*.json"))


def parse_joint_map(spec: dict, source: str = "<dict>") -> JointMap:
  """Validates a joint-map dict (see the module docstring); `source` names it in errors."""
  target_names = get_skeleton("t2m").joint_names
  if not isinstance(spec, dict) or not isinstance(spec.get("joints"), dict):
    raise InputError(f"joint map {source}: expected a JSON object with a \"joints\" object mapping "
                     f"the 22 HumanML3D joints ({', '.join(target_names)}) to source joints")
  joints = spec["joints"]
  unknown = [k for k in joints if k not in target_names]
  missing = [k for k in target_names if k not in joints]
  if unknown or missing:
    parts = []
    if unknown:
      parts.append(f"unknown target joint(s) {', '.join(map(repr, unknown))}")
    if missing:
      parts.append(f"missing target joint(s) {', '.join(map(repr, missing))}")
    raise InputError(f"joint map {source}: {'; '.join(parts)}; the targets are the HumanML3D joints "
                     f"{', '.join(target_names)}")
  entries: dict[str, tuple[str, str, float]] = {}
  for target in target_names:
    value = joints[target]
    if isinstance(value, str):
      entries[target] = (value, value, 0.0)
      continue
    lerp = value.get("lerp") if isinstance(value, dict) and len(value) == 1 else None
    if (not isinstance(lerp, list) or len(lerp) != 3 or not all(isinstance(n, str) for n in lerp[:2])
        or not isinstance(lerp[2], (int, float)) or not 0.0 <= float(lerp[2]) <= 1.0):
      raise InputError(f"joint map {source}: entry {target!r} must be a source joint name or "
                       f"{{\"lerp\": [\"A\", \"B\", w]}} with 0 <= w <= 1, found {value!r}")
    entries[target] = (lerp[0], lerp[1], float(lerp[2]))
  up_axis = str(spec.get("up_axis", "y")).lower()
  if up_axis not in ("y", "z"):
    raise InputError(f"joint map {source}: up_axis must be \"y\" or \"z\", found {up_axis!r}")
  unit = spec.get("unit")
  if unit is not None and not (unit in UNITS or unit == "auto" or (
      isinstance(unit, (int, float)) and not isinstance(unit, bool) and unit > 0)):
    raise InputError(f"joint map {source}: unit must be one of {', '.join(UNITS)}, \"auto\" or "
                     f"a positive number of metres per unit, found {unit!r}")
  return JointMap(name=str(spec.get("name", source)), entries=entries, up_axis=up_axis, unit=unit)


def load_joint_map(joint_map: str | os.PathLike | dict | JointMap) -> JointMap:
  """A `JointMap` from a built-in name ("bandai", "cmu"), a JSON file path, a dict or a JointMap."""
  if isinstance(joint_map, JointMap):
    return joint_map
  if isinstance(joint_map, dict):
    return parse_joint_map(joint_map)
  name = os.fspath(joint_map)
  path = MAPS_DIR / f"{name}.json" if name in builtin_maps() else pathlib.Path(name)
  if not path.is_file():
    raise MissingFileError(f"joint map {name!r} is neither a built-in map ({', '.join(builtin_maps())}) "
                           f"nor an existing JSON file")
  try:
    spec = json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise InputError(f"joint map {path}: invalid JSON: {e}") from None
  return parse_joint_map(spec, source=str(path))


def _chain_length(joints: np.ndarray) -> float:
  """Median over frames of the ankle -> knee -> hip -> pelvis -> spine -> neck -> head length."""
  names = get_skeleton("t2m").joint_names
  idx = {n: i for i, n in enumerate(names)}
  legs = []
  for side in ("left", "right"):
    chain = [idx[f"{side}_ankle"], idx[f"{side}_knee"], idx[f"{side}_hip"], idx["pelvis"]]
    legs.append(np.linalg.norm(np.diff(joints[:, chain], axis=1), axis=-1).sum(-1))
  trunk = [idx[n] for n in ("pelvis", "spine1", "spine2", "spine3", "neck", "head")]
  trunk_length = np.linalg.norm(np.diff(joints[:, trunk], axis=1), axis=-1).sum(-1)
  return float(np.median(0.5 * (legs[0] + legs[1]) + trunk_length))


def estimate_stature(joints: np.ndarray) -> float:
  """Approximate standing height of a 22-joint clip [T, 22, 3] (its units), from bone lengths."""
  return _chain_length(np.asarray(joints, np.float64)) * CHAIN_TO_STATURE


def detect_unit_scale(joints: np.ndarray, source: str = "clip") -> float:
  """Metres per source unit (1, 0.01 or 0.001) from the size of a 22-joint clip [T, 22, 3]."""
  chain = _chain_length(np.asarray(joints, np.float64))
  lo, hi = _CHAIN_RANGE_M
  for scale in (1.0, 0.01, 0.001):
    if lo <= chain * scale <= hi:
      return scale
  raise InputError(
      f"{source}: cannot infer the length unit: the ankle-to-head chain is {chain:.4g} source units, "
      f"which is a plausible human size ({lo}-{hi} m) in none of m, cm, mm; pass the unit explicitly "
      f"(one of {', '.join(UNITS)} or metres per unit as a number)")


def _unit_scale(unit: str | float | None, joints: np.ndarray, source: str) -> float:
  if unit is None or unit == "auto":
    return detect_unit_scale(joints, source)
  if isinstance(unit, str):
    if unit in UNITS:
      return UNITS[unit]
    try:
      unit = float(unit)
    except ValueError:
      raise InputError(f"unknown unit {unit!r}: expected one of {', '.join(UNITS)}, 'auto' "
                       "or metres per unit as a number") from None
  if not (math.isfinite(unit) and unit > 0):
    raise InputError(f"unit scale must be a positive number of metres per unit, found {unit}")
  return float(unit)


def z_up_to_y_up(positions: np.ndarray) -> np.ndarray:
  """Rotates Z-up coordinates to Y-up (-90 degrees about X): (x, y, z) -> (x, z, -y)."""
  return np.stack([positions[..., 0], positions[..., 2], -positions[..., 1]], axis=-1)


def retarget_to_t2m(positions: np.ndarray, source_joint_names, joint_map="bandai",
                    unit_scale: str | float | None = None, up_axis: str | None = None,
                    source: str = "clip") -> np.ndarray:
  """Source joint positions -> the 22 HumanML3D joints, in metres, Y up, lowest joint at y = 0.

  Args:
    positions: [T, Js, 3] source joint positions (e.g. `bvh.forward_kinematics`).
    source_joint_names: Js names, in the order of `positions`.
    joint_map: built-in map name, JSON path, dict or `JointMap`.
    unit_scale: metres per source unit, a unit name ("cm", ...), "auto" to detect it from the
      skeleton's size (m, cm or mm), or None for the map's "unit" (detection if it has none).
    up_axis: "y" or "z"; default the map's.
    source: names the clip in error messages.
  Returns:
    joints [T, 22, 3] float32.
  """
  positions = np.asarray(positions, np.float64)
  names = list(source_joint_names)
  if positions.ndim != 3 or positions.shape[1:] != (len(names), 3) or positions.shape[0] == 0:
    raise InputError(f"{source}: positions must be [T>0, {len(names)}, 3] for {len(names)} source "
                     f"joint names, found shape {positions.shape}")
  if not np.isfinite(positions).all():
    raise InputError(f"{source}: positions contain NaN or infinite values")
  jmap = load_joint_map(joint_map)
  absent = [n for n in jmap.source_joints if n not in names]
  if absent:
    raise InputError(f"{source}: joint map {jmap.name!r} uses source joint(s) "
                     f"{', '.join(map(repr, absent))} that the skeleton lacks; its joints are "
                     f"{', '.join(names)}")
  index = {n: i for i, n in enumerate(names)}
  targets = get_skeleton("t2m").joint_names
  a = np.array([index[jmap.entries[t][0]] for t in targets])
  b = np.array([index[jmap.entries[t][1]] for t in targets])
  w = np.array([jmap.entries[t][2] for t in targets])[:, None]
  joints = positions[:, a] * (1.0 - w) + positions[:, b] * w
  up = (up_axis or jmap.up_axis).lower()
  if up not in ("y", "z"):
    raise InputError(f"up_axis must be 'y' or 'z', found {up_axis!r}")
  if up == "z":
    joints = z_up_to_y_up(joints)
  joints = joints * _unit_scale(jmap.unit if unit_scale is None else unit_scale, joints, source)
  joints[..., 1] -= joints[..., 1].min()
  return joints.astype(np.float32)


def import_bvh_clip(path: str | os.PathLike, joint_map="bandai", target_fps: float | None = 20.0,
                    unit: str | float | None = None, up_axis: str | None = None) -> np.ndarray:
  """Reads a BVH clip and retargets it: joints [T, 22, 3] float32, metres, Y up, at `target_fps`.

  Resampling (when `target_fps` is set and differs from the file's rate, snapped to an integer
  when within 0.01%: 0.0333333 s is 30 fps) slerps each joint's
  rotation and interpolates position channels before forward kinematics, so bone lengths stay exact.
  """
  motion = bvh.read_bvh(path)
  if target_fps is not None and abs(motion.nominal_fps - target_fps) > 1e-4 * target_fps:
    motion = bvh.resample(motion, motion.nominal_fps, target_fps)
  positions = bvh.forward_kinematics(motion)
  return retarget_to_t2m(positions, motion.skeleton.joint_names, joint_map, unit, up_axis,
                         source=os.fspath(path))
