"""Reading user-given NumPy `.npy` files (motions, statistics) with errors that name the file.

  joints = load_npy("walk.npy")                       # e.g. joints [T, 22, 3] or features [T, 263]
  mean = load_npy("Mean.npy", what="statistics file")
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from lead_jax.errors import InputError, MissingFileError


def load_npy(path: str | os.PathLike, what: str = "motion file") -> np.ndarray:
  """The array stored in the `.npy` file `path` (dtype as stored; pickled objects refused).

  Raises:
    MissingFileError: "{what} not found: {path}".
    InputError: the file is not a readable `.npy` array (an `.npz` archive included).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"{what} not found: {path}")
  try:
    data = np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise InputError(f"{path}: not a readable NumPy .npy array ({e})") from None
  if not isinstance(data, np.ndarray):
    data.close()
    raise InputError(f"{path}: expected one .npy array, found an .npz archive")
  return data
