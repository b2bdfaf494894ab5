"""Writing generated motions: features and joints `.npy`, BVH, animation, and index entries.

The layout shared by `lead-jax sample` and `lead-jax demo`: under OUT, `features/NAME.npy`
(`[T, D]` de-normalised), `joints/NAME.npy` (`[T, J, 3]`), `bvh/NAME.bvh`, `animations/NAME.gif`
(MP4 needs ffmpeg), and one index entry per motion with those paths relative to OUT.

Nothing non-finite is written: a motion whose features or joints hold NaN/inf (`generate`'s
`finite` mask) gets an entry with its `error` and no files, and a BVH export or animation that
fails for one motion is recorded in that motion's `error` while its `.npy` files and every other
motion are kept. Callers report the entries whose `error` is set (`failed_entries`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lead_jax.errors import LeadJaxError, output_error
from lead_jax.io.export import features_to_bvh
from lead_jax.io.render import render_animation

FOLDERS = ("features", "joints", "bvh", "animations")
# What a failed export of one motion may raise (bad numbers, degenerate poses): recorded, not fatal.
EXPORT_ERRORS = (LeadJaxError, ArithmeticError, ValueError, np.linalg.LinAlgError)


def save_generation(result: Mapping[str, Any], out: str | pathlib.Path, *, prompt_offset: int = 0,
                    name_prefix: str = "", fps: float = 20.0, bvh: bool = True,
                    animation: bool = True) -> list[dict]:
  """Writes every finite motion of a `Pipeline.generate` result; returns one entry per motion.

  Args:
    result: `generate`'s dict (`features [N,T,D]`, `joints [N,T,J,3]`, `lengths`, `texts`,
      `prompt_index`, `sample_index`, `projector`; `finite [N]` and `truncated [P]` when present).
    out: output folder (sub-folders are created).
    prompt_offset: added to `prompt_index` in file names (for batched prompt lists).
    name_prefix: prepended to each name, e.g. "lead_" / "mld_".
  Returns:
    [{prompt, sample, length, projector, truncated, features, joints, bvh, animation, error}]
    (paths relative to `out`, None when not written; `bvh` is None for non-HumanML3D widths or
    when disabled, `animation` likewise; `error` None, or why the motion or one of its files is
    missing). Raises `OutputError` when `out` cannot be written (read-only, disk full).
  """
  out = pathlib.Path(out)
  try:
    for folder in FOLDERS:
      (out / folder).mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise output_error(e, f"the output folder {out}") from None
  features_all = np.asarray(result["features"])
  joints_all = np.asarray(result["joints"])
  finite = result.get("finite")
  if finite is None:
    finite = (np.isfinite(features_all).all(axis=(1, 2))
              & np.isfinite(joints_all).all(axis=tuple(range(1, joints_all.ndim))))
  truncated = result.get("truncated")
  entries = []
  for row in range(len(result["texts"])):
    local_prompt = int(result["prompt_index"][row])
    prompt_no = prompt_offset + local_prompt
    sample = int(result["sample_index"][row])
    length = int(result["lengths"][row])
    name = f"{name_prefix}P{prompt_no:04d}_S{sample:02d}"
    entry = {"prompt": result["texts"][row], "sample": sample, "length": length,
             "projector": bool(result["projector"]),
             "truncated": bool(truncated[local_prompt]) if truncated is not None else False,
             "features": None, "joints": None, "bvh": None, "animation": None, "error": None}
    entries.append(entry)
    if not bool(finite[row]):
      entry["error"] = ("the generated motion is not finite (NaN/inf; an extreme guidance scale "
                        "or a diverged model?): nothing written")
      continue
    features = features_all[row, :length]
    joints = joints_all[row, :length]
    try:
      np.save(out / "features" / f"{name}.npy", features)
      entry["features"] = f"features/{name}.npy"
      np.save(out / "joints" / f"{name}.npy", joints)
      entry["joints"] = f"joints/{name}.npy"
    except OSError as e:
      raise output_error(e, f"motion {name} in {out}") from None
    problems = []
    if bvh and features.shape[-1] == 263:
      try:
        features_to_bvh(features, out / "bvh" / f"{name}.bvh", fps=fps)
        entry["bvh"] = f"bvh/{name}.bvh"
      except OSError as e:
        raise output_error(e, f"bvh/{name}.bvh in {out}") from None
      except EXPORT_ERRORS as e:
        problems.append(f"BVH export failed ({e})")
    if animation:
      try:
        path = render_animation([joints], out / "animations" / f"{name}.gif",
                                [result["texts"][row]], fps=fps)
        entry["animation"] = str(path.relative_to(out))
      except OSError as e:
        raise output_error(e, f"animations/{name}.gif in {out}") from None
      except EXPORT_ERRORS as e:
        problems.append(f"animation failed ({e})")
    if problems:
      entry["error"] = "; ".join(problems) + " (the .npy files are written)"
  return entries


def failed_entries(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
  """The entries of `save_generation` whose motion (or one of its files) was not written."""
  return [e for e in entries if e.get("error")]
