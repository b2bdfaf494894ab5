"""Feature normalisation statistics (HumanML3D `cal_mean_variance`) and z-normalisation.

Example:
  mean, std = compute_mean_std([np.load(p) for p in paths], joints_num=22)          # model space
  mean_e, std_e = compute_mean_std(clips, joints_num=22, feat_bias=5.0)             # T2M evaluator
  x = normalize(features, mean, std); features = denormalize(x, mean, std)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError
from lead_jax.motion.features import feature_slices, features_dim

Array = jax.Array


def compute_mean_std(feature_list: Sequence[np.ndarray], joints_num: int = 22,
                     feat_bias: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """Per-dimension mean and group-averaged std over all frames of all clips.

  As HumanML3D `cal_mean_variance` (and T2M's dataset statistics): clips containing NaN are
  skipped; the std of each feature block (see `feature_slices`) is replaced by its mean over the
  block; the root blocks (`root_rot_vel`, `root_lin_vel`, `root_y`) and `foot_contact` are further
  divided by `feat_bias` (1 for the model's Mean/Std, 5 for the T2M evaluator's).

  Args:
    feature_list: clips [T_i, D].
  Returns:
    (mean [D], std [D]) float32 NumPy arrays.
  """
  dim = features_dim(joints_num)
  clips = []
  for i, clip in enumerate(feature_list):
    clip = np.asarray(clip)
    if clip.ndim != 2 or clip.shape[-1] != dim:
      raise InputError(f"compute_mean_std: clip {i} must have shape [T, {dim}] for {joints_num} joints, "
                       f"found {clip.shape}")
    if np.isnan(clip).any():
      continue
    clips.append(clip.astype(np.float64))
  if not clips:
    raise InputError("compute_mean_std: no clip without NaN to compute statistics from")
  data = np.concatenate(clips, axis=0)
  mean = data.mean(axis=0)
  std = data.std(axis=0)
  biased = ("root_rot_vel", "root_lin_vel", "root_y", "foot_contact")
  for name, sl in feature_slices(joints_num).items():
    std[sl] = std[sl].mean() / (feat_bias if name in biased else 1.0)
  return mean.astype(np.float32), std.astype(np.float32)


def _check(x, mean, std, fn: str):
  x = jnp.asarray(x)
  mean, std = jnp.asarray(mean), jnp.asarray(std)
  if mean.shape != x.shape[-1:] or std.shape != x.shape[-1:]:
    raise InputError(f"{fn}: mean and std must have shape ({x.shape[-1] if x.ndim else '?'},) to match "
                     f"features {tuple(x.shape)}, found {tuple(mean.shape)} and {tuple(std.shape)}")
  return x, mean, std


def normalize(x, mean, std) -> Array:
  """`(x - mean) / std` over the last axis: [..., D] -> [..., D]."""
  x, mean, std = _check(x, mean, std, "normalize")
  return (x - mean) / std


def denormalize(x, mean, std) -> Array:
  """`x * std + mean`, the inverse of `normalize`: [..., D] -> [..., D]."""
  x, mean, std = _check(x, mean, std, "denormalize")
  return x * std + mean
