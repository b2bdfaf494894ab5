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
    import_report.json        the last import: kept ids and lengths, skipped clips and failures
                              with reasons, the dataset's splits after it

Splits are deterministic per id: `u = sha1(f"{seed}:{base id}")` mapped to [0, 1) picks train /
val / test by the cumulative `split` fractions, so adding clips never moves existing ones. A
mirrored copy (`M<id>`) follows its original. When hashing leaves a split empty and there are at
least 3 base clips, the base clips whose `u` lies closest to the empty split's interval are moved
into it (taken from splits with more than one clip), so every split is non-empty.

`min_len` counts stored frames (T-1), as HumanML3D's loader does (it keeps 40 <= len < 200);
shorter clips are skipped and reported, longer ones are kept whole.

Writing into an existing dataset adds to it: the clips already listed keep their split (a clip
imported again keeps its split and its files are replaced), the new ones are hashed as above, and
Mean/Std are recomputed over every train clip, old and new (`stats='keep'` keeps the existing
files instead; the report's `stats` says which, and what changed). Nothing is written until every
clip is processed: the clip files go to a staging folder beside `out_dir`, and only then are they
moved in and the split lists, Mean/Std and report replaced (each file atomically). An import that
keeps no clip, or fails (an error, a full disk), leaves the folder as it was.

Example:
  report = write_dataset({"walk": joints}, {"walk": ["a person walks forward."]}, "data/mine")
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
from typing import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from lead_jax.errors import ConfigError, InputError, OutputError, output_error
from lead_jax.io.captions import swap_left_right
from lead_jax.io.pos_tags import text_line
from lead_jax.motion.features import extract_features_np, recover_from_ric_np
from lead_jax.motion.mirror import mirror_joints
from lead_jax.motion.normalize import compute_mean_std

SPLITS = ("train", "val", "test")
JOINTS_NUM = 22
STATS_MODES = ("recompute", "keep")
CLIP_FOLDERS = (("new_joint_vecs", ".npy"), ("new_joints", ".npy"), ("texts", ".txt"))


def split_unit(clip_id: str, seed: int = 0) -> float:
  """Deterministic position of an id in [0, 1) (sha1 of `seed:id`)."""
  digest = hashlib.sha1(f"{seed}:{clip_id}".encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(ids: Sequence[str], split: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0, fixed: Mapping[str, str] | None = None) -> dict[str, str]:
  """{base id: "train" | "val" | "test"} of `ids`, stable under adding ids (module docstring).

  `fixed` ({id: split}, e.g. the clips already in a dataset) keeps those ids where they are and
  counts them when filling an empty split; only the other ids may be moved to fill one.
  """
  fractions = np.asarray(split, np.float64)
  if fractions.shape != (3,) or np.any(fractions < 0) or fractions.sum() <= 0:
    raise ConfigError(f"split must be 3 non-negative fractions (train, val, test), found {split}")
  fixed = dict(fixed or {})
  bounds = np.concatenate([[0.0], np.cumsum(fractions / fractions.sum())])
  units = {i: split_unit(i, seed) for i in ids}
  assignment = {i: fixed[i] if i in fixed else
                SPLITS[min(int(np.searchsorted(bounds, u, side="right")) - 1, 2)]
                for i, u in units.items()}
  everything = {**fixed, **assignment}
  if len(everything) >= 3:
    for s, name in enumerate(SPLITS):
      if fractions[s] == 0 or any(v == name for v in everything.values()):
        continue
      center = 0.5 * (bounds[s] + bounds[s + 1])
      counts = {n: sum(v == n for v in everything.values()) for n in SPLITS}
      donors = [i for i in ids if i not in fixed and counts[assignment[i]] > 1]
      if donors:
        chosen = min(donors, key=lambda i: (abs(units[i] - center), i))
        assignment[chosen] = everything[chosen] = name
  return assignment


def existing_splits(out_dir: str | pathlib.Path) -> dict[str, str]:
  """{id: split} of the clips a dataset folder lists in train/val/test.txt (empty when none)."""
  out = pathlib.Path(out_dir)
  found: dict[str, str] = {}
  for name in SPLITS:
    path = out / f"{name}.txt"
    if path.is_file():
      for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
          found.setdefault(line.strip(), name)
  return found


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
                  progress: bool = False, stats: str = "recompute") -> dict:
  """Writes `clips` ({id: joints [T, 22, 3], metres, Y up}) in the HumanML3D layout, adding them
  to the dataset already in `out_dir` if there is one (see the module docstring).

  Args:
    clips: joint clips by id (ids become file names; `M` + id is reserved for mirrors).
    captions: {id: [caption, ...]}; a clip without captions is skipped and reported.
    out_dir: dataset folder (created; an existing dataset is added to).
    split: (train, val, test) fractions.
    seed: salt of the id hash that assigns splits.
    min_len: minimum stored length (T-1 frames); shorter clips are skipped.
    mirror: also write `M<id>` mirrored copies (x -> -x, left/right joints and words swapped).
    failures: {source name: message} from the import stage, copied into the report.
    progress: show a tqdm bar over clips.
    stats: 'recompute' (Mean/Std over every train clip of the dataset after the import) or 'keep'
      (an existing dataset's Mean/Std stay; computed when there are none).
  Returns:
    The report (also `import_report.json` when a clip was written): {"kept": {id: frames} of this
    import, "replaced": [ids already there], "skipped": {id: reason}, "failures": {...},
    "splits": {split: [ids]} of the whole dataset, "previous_clips", "stats" ('recomputed' |
    'kept' | None), "stats_changed", "mean_std_from", "mean_std_clips", "written", ...}.
  """
  if stats not in STATS_MODES:
    raise ConfigError(f"stats must be one of {STATS_MODES}, found {stats!r}")
  out = pathlib.Path(out_dir)
  if out.exists() and not out.is_dir():
    raise InputError(f"dataset folder {out} is a file")
  existing = existing_splits(out) if out.is_dir() else {}
  stage = out.parent / f".{out.name}.import-{os.getpid()}"
  try:
    try:
      shutil.rmtree(stage, ignore_errors=True)
      for sub, _ in CLIP_FOLDERS:
        (stage / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise output_error(e, f"the staging folder {stage} of dataset {out}") from None
    kept, skipped, features_by_id, base_of = _process_clips(clips, captions, stage, min_len,
                                                            mirror, progress)
    report = {"kept": kept, "replaced": sorted(i for i in kept if i in existing),
              "skipped": skipped, "failures": dict(failures or {}),
              "previous_clips": len(existing), "written": bool(kept)}
    bases = sorted(set(base_of.values()))
    fixed = {b: existing[b] for b in bases if b in existing}
    assignment = assign_splits(bases, split, seed, fixed=fixed)
    membership = dict(existing)
    for i in kept:
      membership[i] = existing.get(i, assignment[base_of[i]])
    splits = {name: sorted(i for i, s in membership.items() if s == name) for name in SPLITS}
    report.update(splits=splits, min_len=min_len, mirror=mirror, seed=seed,
                  split_fractions=list(split))
    if not kept:
      report.update(stats=None, stats_changed=False, mean_std_from=None, mean_std_clips=0)
      return report  # nothing to add: the folder is left as it was
    mean_std = _statistics(out, splits, features_by_id, stats, existing, report)
    _commit(stage, out, kept, splits, mean_std, report)
    return report
  except OutputError:
    raise
  except OSError as e:
    raise output_error(e, f"dataset {out}") from None
  finally:
    shutil.rmtree(stage, ignore_errors=True)


def _process_clips(clips, captions, stage: pathlib.Path, min_len: int, mirror: bool,
                   progress: bool):
  """Features of every clip (and mirror) written under `stage`; (kept, skipped, features, base)."""
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
      outputs = []
      for out_id, clip_joints, clip_texts in versions:
        features, recovered = process_clip(clip_joints)
        if not (np.isfinite(features).all() and np.isfinite(recovered).all()):
          raise InputError(f"clip {out_id}: feature extraction produced NaN (degenerate pose?)")
        outputs.append((out_id, features, recovered, clip_texts))
      for out_id, features, recovered, clip_texts in outputs:
        np.save(stage / "new_joint_vecs" / f"{out_id}.npy", features)
        np.save(stage / "new_joints" / f"{out_id}.npy", recovered)
        (stage / "texts" / f"{out_id}.txt").write_text(
            "".join(text_line(c) + "\n" for c in clip_texts), encoding="utf-8")
        kept[out_id] = int(features.shape[0])
        features_by_id[out_id] = features
        base_of[out_id] = clip_id
    except InputError as e:
      skipped[clip_id] = str(e)
  return kept, skipped, features_by_id, base_of


def _statistics(out: pathlib.Path, splits: Mapping[str, list[str]],
                features_by_id: Mapping[str, np.ndarray], mode: str,
                existing: Mapping[str, str], report: dict) -> tuple[np.ndarray, np.ndarray] | None:
  """Mean/Std to write (None: keep the existing files); fills the report's stats fields."""
  have_stats = all((out / name).is_file() for name in ("Mean.npy", "Std.npy"))
  if mode == "keep" and have_stats:
    report.update(stats="kept", stats_changed=False, mean_std_from="existing", mean_std_clips=None)
    return None
  stats_ids = splits["train"] or sorted(i for ids in splits.values() for i in ids)
  clips = []
  for i in stats_ids:
    if i in features_by_id:
      clips.append(features_by_id[i])
    else:
      path = out / "new_joint_vecs" / f"{i}.npy"
      if not path.is_file():
        raise InputError(f"{out / (existing[i] + '.txt')} lists {i}, but {path} is missing: fix "
                         "the dataset before adding to it")
      clips.append(np.load(path))
  mean, std = compute_mean_std(clips, JOINTS_NUM)
  std = np.where(std > 1e-8, std, 1.0).astype(np.float32)  # constant blocks (e.g. 1 clip)
  changed = None
  if have_stats:
    old_mean, old_std = np.load(out / "Mean.npy"), np.load(out / "Std.npy")
    changed = not (np.array_equal(old_mean, mean) and np.array_equal(old_std, std))
  report.update(stats="recomputed", stats_changed=changed,
                mean_std_from="train" if splits["train"] else "all", mean_std_clips=len(clips))
  return mean.astype(np.float32), std


def _replace_text(path: pathlib.Path, text: str) -> None:
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text, encoding="utf-8")
  os.replace(tmp, path)


def _replace_npy(path: pathlib.Path, array: np.ndarray) -> None:
  tmp = path.with_name(f".{path.name}.tmp.npy")
  np.save(tmp, array)
  os.replace(tmp, path)


def _commit(stage: pathlib.Path, out: pathlib.Path, kept: Mapping[str, int],
            splits: Mapping[str, list[str]], mean_std, report: dict) -> None:
  """Moves the staged clip files into `out`, then replaces Mean/Std, the split lists and the
  report (lists last: until they change, the dataset reads as before)."""
  for sub, _ in CLIP_FOLDERS:
    (out / sub).mkdir(parents=True, exist_ok=True)
  for i in kept:
    for sub, suffix in CLIP_FOLDERS:
      os.replace(stage / sub / f"{i}{suffix}", out / sub / f"{i}{suffix}")
  if mean_std is not None:
    _replace_npy(out / "Mean.npy", mean_std[0])
    _replace_npy(out / "Std.npy", mean_std[1])
  for name, ids in splits.items():
    _replace_text(out / f"{name}.txt", "".join(i + "\n" for i in ids))
  _replace_text(out / "train_val.txt", "".join(i + "\n" for i in splits["train"] + splits["val"]))
  _replace_text(out / "all.txt", "".join(i + "\n" for i in sorted(i for ids in splits.values()
                                                                   for i in ids)))
  _replace_text(out / "import_report.json", json.dumps(report, indent=2) + "\n")
