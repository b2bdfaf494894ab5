"""Mocap files -> a dataset folder in the HumanML3D layout (what `lead-jax import` runs).

  report = import_clips("bvh", files, "data/bandai", get_captioner("bandai"),
                        options={"map": "bandai", "unit": None})
  report = import_deepmimic_dataset("data/deepmimic")  # the 15 clips of the pybullet wheel

Every failing clip (unreadable file, no caption, ...) is recorded with its reason in the report's
`failures` (and `import_report.json`); the good clips are written (`dataset_writer.write_dataset`:
added to the dataset already in the folder, which a failed import leaves as it was).

Clip ids are file stems. Files sharing a stem: the first readable one (in path order) is the clip
and every other one is a failure keyed by its path, so one id is never both kept and failed and
a bad file never hides a good one of the same name.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from lead_jax.errors import ConfigError, InputError, LeadJaxError
from lead_jax.io.captions import get_captioner
from lead_jax.io.dataset_writer import write_dataset
from lead_jax.io.deepmimic import DEFAULT_MIN_SECONDS, import_deepmimic_clip, list_deepmimic_clips
from lead_jax.io.retarget import import_bvh_clip

KINDS = ("bvh", "deepmimic")
Captioner = Callable[[str], list[str]]


def import_clip(kind: str, path: str, options: Mapping) -> tuple[str, np.ndarray | None,
                                                                  str | None]:
  """One file -> (stem, joints [T, 22, 3] or None, error message or None); never raises.

  `options`: `import_bvh_clip`'s `joint_map`, `unit` for 'bvh'; `import_deepmimic_clip`'s keywords
  for 'deepmimic'. A top-level function, so a process pool can run it.
  """
  stem = pathlib.Path(path).stem
  try:
    if kind == "bvh":
      joints = import_bvh_clip(path, target_fps=20.0, **options)
    else:
      joints = import_deepmimic_clip(path, **options)
    return stem, joints, None
  except LeadJaxError as e:
    return stem, None, str(e)
  except Exception as e:  # pylint: disable=broad-except
    # A batch keeps going: an unexpected error in one file is reported with its type.
    return stem, None, f"{type(e).__name__}: {e}"


def import_clips(kind: str, files: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 captioner: Captioner, *, options: Mapping, min_len: int = 40,
                 mirror: bool = False, seed: int = 0, failures: Mapping[str, str] | None = None,
                 workers: int = 1, progress: bool = False, stats: str = "recompute") -> dict:
  """Imports `files` of `kind` ('bvh' | 'deepmimic') into `out_dir`; returns the report.

  `captioner(stem) -> [caption, ...]` names each clip's captions; `failures` ({source: reason},
  e.g. unmatched sources) are carried into the report. `min_len`, `mirror`, `seed`, `stats`: see
  `write_dataset`. `workers > 1` reads the files in a process pool.
  """
  if kind not in KINDS:
    raise ConfigError(f"import kind must be one of {KINDS}, found {kind!r}")
  failures = dict(failures or {})
  jobs = [(kind, str(f), dict(options)) for f in files]
  pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
  results = pool.map(import_clip, *zip(*jobs)) if pool and jobs else \
      (import_clip(*job) for job in jobs)
  by_stem: dict[str, list[tuple[str, Any, str | None]]] = {}  # stem -> [(path, clip, error)]
  try:
    for (_, path, _), (stem, joints, error) in tqdm(zip(jobs, results), total=len(jobs),
                                                    desc=f"import {kind}", unit="clip",
                                                    disable=not progress):
      texts = None
      if error is None:
        try:
          texts = captioner(stem)
        except (InputError, ConfigError) as e:
          error = f"caption: {e}"
        else:
          if not texts:
            error = "no caption for this clip (not in the captions file?)"
      clip = (joints, texts) if error is None else None
      by_stem.setdefault(stem, []).append((path, clip, error))
  finally:
    if pool is not None:
      pool.shutdown()
  clips, captions = {}, {}
  for stem, entries in by_stem.items():
    entries.sort(key=lambda e: e[0])
    good = [e for e in entries if e[2] is None]
    chosen = good[0][0] if good else None
    if chosen is not None:
      clips[stem], captions[stem] = good[0][1]
    for path, _, error in entries:
      if path == chosen:
        continue
      if error is None:
        error = (f"duplicate clip id {stem!r}: {chosen} is imported under that id (file stems "
                 "must be unique; rename one)")
      # A stem names a failure only when no other file shares it.
      failures[stem if len(entries) == 1 and stem not in failures else path] = error
  return write_dataset(clips, captions, out_dir, min_len=min_len, mirror=mirror, seed=seed,
                       failures=failures, progress=progress, stats=stats)


def import_deepmimic_dataset(out_dir: str | os.PathLike,
                             files: Sequence[str | os.PathLike] | None = None, *,
                             captioner: Captioner | None = None,
                             min_seconds: float = DEFAULT_MIN_SECONDS, repeat_loops: bool = True,
                             hold_short: bool = True, ground: str = "feet", min_len: int = 40,
                             mirror: bool = False, seed: int = 0,
                             failures: Mapping[str, str] | None = None, workers: int = 1,
                             progress: bool = False, stats: str = "recompute") -> dict:
  """DeepMimic `humanoid3d_*.txt` clips (default: the pybullet wheel's 15) -> dataset; the report.

  Captions default to the built-in `deepmimic` template; the clip options are
  `import_deepmimic_clip`'s (looping clips repeated, short ones held, to `min_seconds`).
  """
  files = list_deepmimic_clips() if files is None else files
  options = {"min_seconds": min_seconds, "repeat_loops": repeat_loops, "hold_short": hold_short,
             "ground": ground}
  return import_clips("deepmimic", files, out_dir, captioner or get_captioner("deepmimic"),
                      options=options, min_len=min_len, mirror=mirror, seed=seed,
                      failures=failures, workers=workers, progress=progress, stats=stats)
