"""Writing generated motions: features and joints `.npy`, BVH, animation, and index entries.

The layout shared by `lead-jax sample` and `lead-jax demo`: under OUT, `features/NAME.npy`
(`[T, D]` de-normalised), `joints/NAME.npy` (`[T, J, 3]`), `bvh/NAME.bvh`, `animations/NAME.gif`
(MP4 needs ffmpeg), and one index entry per motion with those paths relative to OUT.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from lead_jax.io.export import features_to_bvh
from lead_jax.io.render import render_animation

FOLDERS = ("features", "joints", "bvh", "animations")


def save_generation(result: Mapping[str, Any], out: str | pathlib.Path, *, prompt_offset: int = 0,
                    name_prefix: str = "", fps: float = 20.0, bvh: bool = True,
                    animation: bool = True) -> list[dict]:
  """Writes every motion of a `Pipeline.generate` result; returns their index entries.

  Args:
    result: `generate`'s dict (`features [N,T,D]`, `joints [N,T,J,3]`, `lengths`, `texts`,
      `prompt_index`, `sample_index`, `projector`).
    out: output folder (sub-folders are created).
    prompt_offset: added to `prompt_index` in file names (for batched prompt lists).
    name_prefix: prepended to each name, e.g. "lead_" / "mld_".
  Returns:
    [{prompt, sample, length, projector, features, joints, bvh, animation}] (paths relative to
    `out`; `bvh` is None for non-HumanML3D widths or when disabled, `animation` likewise).
  """

  out = pathlib.Path(out)
  for folder in FOLDERS:
    (out / folder).mkdir(parents=True, exist_ok=True)
  entries = []
  for row in range(len(result["texts"])):
    prompt_no = prompt_offset + int(result["prompt_index"][row])
    sample = int(result["sample_index"][row])
    length = int(result["lengths"][row])
    name = f"{name_prefix}P{prompt_no:04d}_S{sample:02d}"
    features = np.asarray(result["features"][row, :length])
    joints = np.asarray(result["joints"][row, :length])
    np.save(out / "features" / f"{name}.npy", features)
    np.save(out / "joints" / f"{name}.npy", joints)
    entry = {"prompt": result["texts"][row], "sample": sample, "length": length,
             "projector": bool(result["projector"]), "features": f"features/{name}.npy",
             "joints": f"joints/{name}.npy", "bvh": None, "animation": None}
    if bvh and features.shape[-1] == 263:
      features_to_bvh(features, out / "bvh" / f"{name}.bvh", fps=fps)
      entry["bvh"] = f"bvh/{name}.bvh"
    if animation:
      path = render_animation([joints], out / "animations" / f"{name}.gif", [result["texts"][row]],
                              fps=fps)
      entry["animation"] = str(path.relative_to(out))
    entries.append(entry)
  return entries
