"""Fixtures for the data-pipeline tests: a small HumanML3D-layout folder and a fake text encoder."""

import pathlib
import shutil

import numpy as np
import pytest
from fakes import HashTextEncoder

CLIPS = ("000000", "007005", "012314", "M010968")
SHIFTS = (0, 10, 20)  # each real clip also appears as sub-clips starting 10 and 20 frames later


def clip_id(real: str, shift: int) -> str:
  return real if shift == 0 else f"{real}_s{shift}"


def make_folder(humanml3d_dir: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  """4 real clips x 3 start shifts; real captions for 000000, written ones (with a segment) else."""
  (out / "new_joint_vecs").mkdir(parents=True)
  (out / "texts").mkdir()
  for name in ("Mean.npy", "Std.npy"):
    shutil.copy(humanml3d_dir / name, out / name)
  real_text = (humanml3d_dir / "texts" / "000000.txt").read_text()
  for real in CLIPS:
    motion = np.load(humanml3d_dir / "new_joint_vecs" / f"{real}.npy")
    for shift in SHIFTS:
      i = clip_id(real, shift)
      np.save(out / "new_joint_vecs" / f"{i}.npy", motion[shift:])
      if real == "000000":
        text = real_text
      else:
        text = (f"a person moves clip {i}.#a/DET person/NOUN move/VERB clip/NOUN#0.0#0.0\n"
                f"someone steps in part of {i}#someone/PRON step/VERB#0.5#3.0\n")
      (out / "texts" / f"{i}.txt").write_text(text)
  ids = lambda reals: "\n".join(clip_id(r, s) for r in reals for s in SHIFTS) + "\n"
  (out / "train.txt").write_text(ids(["007005", "012314", "M010968"]))
  (out / "val.txt").write_text(ids(["000000"]))
  (out / "test.txt").write_text(ids(["000000"]))
  return out


@pytest.fixture(scope="session")
def h3d_folder(humanml3d_dir, tmp_path_factory) -> pathlib.Path:
  return make_folder(humanml3d_dir, tmp_path_factory.mktemp("h3d") / "HumanML3D")


@pytest.fixture
def encoder() -> HashTextEncoder:
  return HashTextEncoder(8)
