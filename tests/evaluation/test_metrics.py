"""Metrics against direct NumPy/SciPy statements of the protocol and hand-computed cases."""

import jax
import numpy as np
import pytest
import scipy.linalg

from lead_jax.errors import InputError
from lead_jax.metrics import scores as metrics


def _sym_sqrt(a):
  w, v = np.linalg.eigh(a)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _fid_symmetric(x, y):
  """FID via Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2) (a PSD matrix: eigh only)."""
  m1, m2 = x.mean(0), y.mean(0)
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  r = _sym_sqrt(s1)
  tr = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
  return np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr


def test_fid_matches_symmetric_formula():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(400, 16))
  gen = rng.normal(size=(300, 16)) * 1.3 + 0.5
  assert metrics.fid(real, gen) == pytest.approx(_fid_symmetric(real, gen), rel=1e-8)
  assert isinstance(metrics.fid(real, gen), float)


def test_fid_of_set_with_itself_is_zero():
  x = np.random.default_rng(1).normal(size=(600, 32)).astype(np.float32)
  # sqrtm of S.S round-trips to S only to ~1e-6 relative; the FID of trace ~32 is ~0 to that.
  assert abs(metrics.fid(x, x)) < 1e-5


def test_fid_one_dimensional_by_hand():
  # N(0, var a) vs N(d, var b): FID = d^2 + a + b - 2 sqrt(ab).
  real = np.array([[-1.0], [1.0]])            # mean 0, unbiased var 2
  gen = np.array([[1.0], [3.0], [5.0]])       # mean 3, unbiased var 4
  assert metrics.fid(real, gen) == pytest.approx(9 + 2 + 4 - 2 * np.sqrt(8), rel=1e-12)


def _r_precision_reference(text, motion, top_k, size):
  """The reference loop: argsort rows, cumulative OR over the first k columns."""
  groups = len(text) // size
  counts = np.zeros(top_k)
  for g in range(groups):
    t, m = text[g * size:(g + 1) * size], motion[g * size:(g + 1) * size]
    dist = scipy.spatial.distance.cdist(t, m)
    order = np.argsort(dist, axis=1)
    correct = np.zeros(size, bool)
    for k in range(top_k):
      correct |= order[:, k] == np.arange(size)
      counts[k] += correct.sum()
  return counts / (groups * size)


def test_r_precision_and_mm_dist_match_reference():
  import scipy.spatial  # noqa: F401
  rng = np.random.default_rng(2)
  motion = rng.normal(size=(100, 8))
  text = motion + rng.normal(size=(100, 8)) * 1.5
  got = metrics.r_precision(text, motion, top_k=3, group_size=32)
  np.testing.assert_allclose(got, _r_precision_reference(text, motion, 3, 32), atol=1e-12)
  assert got[0] <= got[1] <= got[2] and 0.1 < got[0] < 0.99
  direct = np.linalg.norm(text[:96] - motion[:96], axis=1).mean()
  assert metrics.mm_dist(text, motion) == pytest.approx(direct, rel=1e-9)


def test_r_precision_of_matched_embeddings_is_one():
  x = np.random.default_rng(3).normal(size=(64, 512)).astype(np.float32) * 3
  assert metrics.r_precision(x, x) == [1.0, 1.0, 1.0]
  assert metrics.mm_dist(x, x) < 1e-3


def test_r_precision_small_case_by_hand():
  # Group of 4 on a line: texts at 0,1,2,3; motions of text i placed so ranks are known.
  text = np.array([[0.0], [1.0], [2.0], [3.0]])
  motion = np.array([[0.1], [2.1], [1.0], [10.0]])
  # text0: nearest m0 -> hit@1. text1: m2 (0), m0 (.9), m1 (1.1) -> own at rank 3.
  # text2: m1 (.1) ... own m2 at |2-1|=1 second -> rank 2. text3: m1 .9, m2 2, m0 2.9, m3 -> rank 4.
  np.testing.assert_allclose(metrics.r_precision(text, motion, top_k=3, group_size=4),
                             [1 / 4, 2 / 4, 3 / 4])
  assert metrics.mm_dist(text, motion, group_size=4) == pytest.approx((0.1 + 1.1 + 1 + 7) / 4)


def test_diversity_and_multimodality_by_direct_statement():
  rng = np.random.default_rng(4)
  emb = rng.normal(size=(500, 6))
  g = np.random.default_rng(7)
  a, b = g.choice(500, 300, replace=False), g.choice(500, 300, replace=False)
  expect = np.mean(np.sqrt(((emb[a] - emb[b]) ** 2).sum(1)))
  assert metrics.diversity(emb, 300, 7) == pytest.approx(expect, rel=1e-12)
  mm = rng.normal(size=(20, 30, 6))
  g = np.random.default_rng(8)
  a, b = g.choice(30, 10, replace=False), g.choice(30, 10, replace=False)
  expect = np.mean(np.sqrt(((mm[:, a] - mm[:, b]) ** 2).sum(-1)))
  assert metrics.multimodality(mm, 10, np.random.default_rng(8)) == pytest.approx(expect)
  # Two points at distance 5: every pair is either 0 or 5 apart.
  assert metrics.diversity(np.array([[0.0, 0], [3, 4], [0, 0]]), 2, 0) in (0.0, 2.5, 5.0)


def test_jax_key_is_deterministic():
  emb = np.random.default_rng(5).normal(size=(50, 4))
  k = jax.random.key(3)
  assert metrics.diversity(emb, 20, k) == metrics.diversity(emb, 20, k)
  assert metrics.diversity(emb, 20, k) != metrics.diversity(emb, 20, jax.random.key(4))
  assert metrics.diversity(emb, 20, jax.random.PRNGKey(3)) == metrics.diversity(emb, 20, k)


def test_mean_and_ci():
  v = [1.0, 2.0, 3.0, 4.0]
  mean, ci = metrics.mean_and_ci(v)
  assert mean == 2.5 and ci == pytest.approx(1.96 * np.sqrt(1.25) / 2)


def test_bad_inputs_raise_input_error():
  x = np.zeros((40, 4))
  with pytest.raises(InputError, match="equal shapes"):
    metrics.r_precision(x, np.zeros((40, 5)))
  with pytest.raises(InputError, match="group_size=32"):
    metrics.mm_dist(np.zeros((10, 4)), np.zeros((10, 4)))
  with pytest.raises(InputError, match="times=300"):
    metrics.diversity(x, 300)
  with pytest.raises(InputError, match="rank 3"):
    metrics.multimodality(x, 10)
  with pytest.raises(InputError, match="NaN"):
    metrics.fid(np.full((5, 2), np.nan), np.zeros((5, 2)))
