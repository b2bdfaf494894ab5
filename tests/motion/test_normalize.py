"""Mean/Std statistics (HumanML3D cal_mean_variance) and z-normalisation."""

import numpy as np
import pytest

from lead_jax.errors import InputError
from lead_jax.motion import features as F
# `lead_jax.motion.normalize` is shadowed by the re-exported function: import from the module.
from lead_jax.motion.normalize import compute_mean_std, denormalize, normalize

CLIPS = ("012314", "000000", "007005", "M010968")
GROUPS = [(0, 1), (1, 3), (3, 4), (4, 67), (67, 193), (193, 259), (259, 263)]


@pytest.fixture(scope="module")
def clips(humanml3d_dir):
  return [np.load(humanml3d_dir / "new_joint_vecs" / f"{c}.npy") for c in CLIPS]


@pytest.mark.parametrize("feat_bias", [1.0, 5.0])
def test_compute_mean_std_matches_direct_numpy(clips, feat_bias):
  mean, std = compute_mean_std(clips, 22, feat_bias=feat_bias)
  data = np.concatenate([c.astype(np.float64) for c in clips])
  raw_std = data.std(axis=0)
  np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-6, atol=1e-7)
  for k, (a, b) in enumerate(GROUPS):
    bias = feat_bias if k in (0, 1, 2, 6) else 1.0
    np.testing.assert_allclose(std[a:b], raw_std[a:b].mean() / bias, rtol=1e-6)
  assert mean.dtype == np.float32 and std.shape == (263,)


def test_official_std_has_the_same_group_structure(humanml3d_dir):
  std = np.load(humanml3d_dir / "Std.npy")
  for a, b in GROUPS:
    np.testing.assert_array_equal(std[a:b], std[a])
  np.testing.assert_allclose(std[[0, 1, 3, 4, 67, 193, 259]],
                             [0.0128256, 0.0169271, 0.1537659, 0.1222436, 0.2996918, 0.0194703, 0.3559327],
                             rtol=1e-5)
  # The evaluator statistics divide the root and contact blocks by feat_bias = 5 (their raw stds
  # come from another data version, so only the within-block structure is compared).
  eval_std = np.load(humanml3d_dir / "evaluator_norm" / "t2m_std.npy")
  for a, b in GROUPS:
    np.testing.assert_allclose(eval_std[a:b], eval_std[a], rtol=1e-6)


def test_nan_clips_are_skipped(clips):
  bad = clips[0].copy()
  bad[3, 10] = np.nan
  mean, std = compute_mean_std(clips[1:] + [bad], 22)
  ref_mean, ref_std = compute_mean_std(clips[1:], 22)
  np.testing.assert_array_equal(mean, ref_mean)
  np.testing.assert_array_equal(std, ref_std)
  with pytest.raises(InputError, match="no clip"):
    compute_mean_std([bad], 22)
  with pytest.raises(InputError, match=r"clip 0 .*\[T, 251\]"):
    compute_mean_std(clips, 21)


def test_normalize_round_trip(clips, humanml3d_dir):
  mean, std = np.load(humanml3d_dir / "Mean.npy"), np.load(humanml3d_dir / "Std.npy")
  x = clips[0][None]  # [1, T, 263]
  z = np.asarray(normalize(x, mean, std))
  np.testing.assert_allclose(z, (x - mean) / std, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(denormalize(z, mean, std), x, atol=1e-5)
  with pytest.raises(InputError, match="mean and std"):
    normalize(x, mean[:251], std)
  assert F.features_dim(22) == mean.shape[0]
