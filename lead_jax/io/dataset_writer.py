"""Writes joint clips as a dataset in the HumanML3D folder layout.

  out_dir/
    new_joint_vecs/<id>.npy   features [T-1, 263] float32 (`extract_features`: uniform skeleton,
                              floor, origin, facing +Z, IK, the 7 blocks)
    new_joints/<id>.npy       joints [T-1, 22, 3] float32 = recover_from_ric(features), i.e. the
                              canonicalised joints as HumanML3D ships them (same length as the
                              features; frame t equals the processed input joints' frame t)
    texts/<id>.txt            `caption#word/POS ...#0.0#0.0` lines (tags: `lead_jax.io.pos_tags`)
    train.txt val.txt test.txt train_val.txt all.txt   id lists
    Mean.npy Std.npy          (263,) float32 statistics of the train split (`compute_mean_std`)
    import_report.json        kept ids and lengths, skipped clips and failures with reasons

Splits are deterministic per id: `u = sha1(f"{seed}:{base id}")` mapped to [0, 1) picks train /
val / test by the cumulative `split` fractions, so adding clips never moves existing ones. A
mirrored copy (`M<id>`) follows its original. When hashing leaves a split empty and there are at
least 3 base clips, the base clips whose `u` lies closest to the empty split's interval are moved
into it (taken from splits with more than one clip), so every split is non-empty.

`min_len` counts stored frames (T-1), as HumanML3D's loader does (it keeps 40 <= len < 200);
shorter clips are skipped and reported, longer ones are kept whole.

Example:
  report = write_dataset({"walk": joints}, {"walk": ["a person walks forward."]}, "data/mine")
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from lead_jax.errors import ConfigError, InputError
from lead_jax.io.captions import swap_left_right
from lead_jax.io.pos_tags import text_line
from lead_jax.motion.features import extract_features_np, recover_from_ric_np
from lead_jax.motion.mirror import mirror_joints
from lead_jax.motion.normalize import compute_mean_std

SPLITS = ("train", "val", "test")
JOINTS_NUM = 22


def split_unit(clip_id: str, seed: int = 0) -> float:
  """Deterministic position of an id in [0, 1) (sha1 of `seed:id`)."""
  digest = hashlib.sha1(f"{seed}:{clip_id}".encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(ids: Sequence[str], split: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> dict[str, str]:
  """{base id: "train" | "val" | "test"}, stable under adding ids (see the module docstring)."""
  fractions = np.asarray(split, np.float64)
  if fractions.shape != (3,) or np.any(fractions < 0) or fractions.sum() <= 0:
    raise ConfigError(f"split must be 3 non-negative fractions (train, val, test), found {split}")
  bounds = np.concatenate([[0.0], np.cumsum(fractions / fractions.sum())])
  units = {i: split_unit(i, seed) for i in ids}
  assignment = {i: SPLITS[min(int(np.searchsorted(bounds, u, side="right")) - 1, 2)]
                for i, u in units.items()}
  if len(ids) >= 3:
    for s, name in enumerate(SPLITS):
      if fractions[s] == 0 or any(v == name for v in assignment.values()):
        continue
      center = 0.5 * (bounds[s] + bounds[s + 1])
      counts = {n: sum(v == n for v in assignment.values()) for n in SPLITS}
      donors = [i for i in ids if counts[assignment[i]] > 1]
      if donors:
        chosen = min(donors, key=lambda i: (abs(units[i] - center), i))
        assignment[chosen] = name
  return assignment


def _check_clip(clip_id: str, joints) -> np.ndarray:
  joints = np.asarray(joints, np.float32)
  if joints.ndim != 3 or joints.shape[1:] != (JOINTS_NUM, 3):
    raise InputError(f"clip {clip_id}: joints must have shape [T, {JOINTS_NUM}, 3], "
                     f"found {joints.shape}")
  if not np.isfinite(joints).all():
    raise InputError(f"clip {clip_id}: joints contain NaN or infinite values")
  return joints


def process_clip(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """joints [T, 22, 3] -> (features [T-1, 263], recover_from_ric(features) [T-1, 22, 3]), float32.

  Computed in NumPy float64 (`extract_features_np`, `recover_from_ric_np`): no compilation, so
  clips of any length cost the same few milliseconds (the jitted functions compiled one program
  per length bucket, seconds each). Agrees with `extract_features` to float32 rounding.
  """
  features = extract_features_np(joints, "t2m")
  return features, recover_from_ric_np(features, JOINTS_NUM)


def write_dataset(clips: Mapping[str, np.ndarray], captions: Mapping[str, Sequence[str]],
                  out_dir: str | pathlib.Path, split: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0, min_len: int = 40, mirror: bool = False,
                  failures: Mapping[str, str] | None = None,
                  progress: bool = False) -> dict:
  """Writes `clips` ({id: joints [T, 22, 3], metres, Y up}) in the HumanML3D layout.

  Args:
    clips: joint clips by id (ids become file names; `M` + id is reserved for mirrors).
    captions: {id: [caption, ...]}; a clip without captions is skipped and reported.
    out_dir: output folder (created; existing files of the same ids are overwritten).
    split: (train, val, test) fractions.
    seed: salt of the id hash that assigns splits.
    min_len: minimum stored length (T-1 frames); shorter clips are skipped.
    mirror: also write `M<id>` mirrored copies (x -> -x, left/right joints and words swapped).
    failures: {source name: message} from the import stage, copied into the report.
    progress: show a tqdm bar over clips.
  Returns:
    The report written to `import_report.json`: {"kept": {id: frames}, "skipped": {id: reason},
    "failures": {...}, "splits": {split: [ids]}}.
  """

  out = pathlib.Path(out_dir)
  for sub in ("new_joints", "new_joint_vecs", "texts"):
    (out / sub).mkdir(parents=True, exist_ok=True)
  kept: dict[str, int] = {}
  skipped: dict[str, str] = {}
  features_by_id: dict[str, np.ndarray] = {}
  base_of: dict[str, str] = {}

  items = sorted(clips.items())
  if progress:
    items = tqdm(items, desc="features", unit="clip")
  for clip_id, joints in items:
    try:
      if not clip_id or "/" in clip_id or clip_id.startswith("."):
        raise InputError(f"clip id {clip_id!r} is not a valid file name")
      joints = _check_clip(clip_id, joints)
      texts = [c for c in captions.get(clip_id, ()) if c.strip()]
      if not texts:
        raise InputError(f"clip {clip_id}: no caption")
      if joints.shape[0] - 1 < min_len:
        raise InputError(f"clip {clip_id}: {joints.shape[0] - 1} frames after feature extraction "
                         f"(T-1), fewer than --min-len {min_len}")
      versions = [(clip_id, joints, texts)]
      if mirror:
        versions.append((f"M{clip_id}", mirror_joints(joints),
                         [swap_left_right(c) for c in texts]))
      for out_id, clip_joints, clip_texts in versions:
        features, recovered = process_clip(clip_joints)
        if not (np.isfinite(features).all() and np.isfinite(recovered).all()):
          raise InputError(f"clip {out_id}: feature extraction produced NaN (degenerate pose?)")
        np.save(out / "new_joint_vecs" / f"{out_id}.npy", features)
        np.save(out / "new_joints" / f"{out_id}.npy", recovered)
        (out / "texts" / f"{out_id}.txt").write_text(
            "".join(text_line(c) + "\n" for c in clip_texts), encoding="utf-8")
        kept[out_id] = int(features.shape[0])
        features_by_id[out_id] = features
        base_of[out_id] = clip_id
    except InputError as e:
      skipped[clip_id] = str(e)

  bases = sorted(set(base_of.values()))
  assignment = assign_splits(bases, split, seed)
  splits = {name: sorted(i for i in kept if assignment[base_of[i]] == name) for name in SPLITS}
  for name, ids in splits.items():
    (out / f"{name}.txt").write_text("".join(i + "\n" for i in ids))
  (out / "train_val.txt").write_text("".join(i + "\n" for i in splits["train"] + splits["val"]))
  (out / "all.txt").write_text("".join(i + "\n" for i in sorted(kept)))

  stats_ids = splits["train"] or sorted(kept)
  if stats_ids:
    mean, std = compute_mean_std([features_by_id[i] for i in stats_ids], JOINTS_NUM)
    std = np.where(std > 1e-8, std, 1.0).astype(np.float32)  # constant blocks (e.g. 1 clip)
    np.save(out / "Mean.npy", mean)
    np.save(out / "Std.npy", std)

  report = {
      "kept": kept,
      "skipped": skipped,
      "failures": dict(failures or {}),
      "splits": splits,
      "mean_std_from": "train" if splits["train"] else ("all" if kept else None),
      "min_len": min_len,
      "mirror": mirror,
      "seed": seed,
      "split_fractions": list(split),
  }
  (out / "import_report.json").write_text(json.dumps(report, indent=2) + "\n")
  return report
