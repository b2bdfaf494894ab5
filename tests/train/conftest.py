"""Fixtures of the training tests: a tiny HumanML3D-layout dataset in tmp and a caption encoder."""

import pathlib
import shutil

import numpy as np
import pytest
from fakes import HashTextEncoder

CLIP_IDS = ("000000", "012314", "007005", "M010968")
CAPTIONS = {
    "000000": None,  # the real captions file is copied
    "012314": "a person walks forward slowly.",
    "007005": "someone jumps up and lands.",
    "M010968": "a man waves his right hand.",
}


@pytest.fixture(scope="session")
def tiny_dataset(humanml3d_dir, tmp_path_factory) -> pathlib.Path:
  """4 real clips in the HumanML3D layout (train = val = test), captions written here."""
  root = tmp_path_factory.mktemp("tiny_h3d")
  (root / "new_joint_vecs").mkdir()
  (root / "texts").mkdir()
  for cid in CLIP_IDS:
    feats = np.load(humanml3d_dir / "new_joint_vecs" / f"{cid}.npy").astype(np.float32)
    np.save(root / "new_joint_vecs" / f"{cid}.npy", feats)
    if CAPTIONS[cid] is None:
      shutil.copy(humanml3d_dir / "texts" / f"{cid}.txt", root / "texts" / f"{cid}.txt")
    else:
      (root / "texts" / f"{cid}.txt").write_text(f"{CAPTIONS[cid]}#a/DET#0.0#0.0\n")
  for name in ("Mean.npy", "Std.npy"):
    shutil.copy(humanml3d_dir / name, root / name)
  for split in ("train", "val", "test"):
    (root / f"{split}.txt").write_text("\n".join(CLIP_IDS) + "\n")
  return root


@pytest.fixture(scope="session")
def text_encoder():
  return HashTextEncoder(384)
