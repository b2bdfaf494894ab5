"""Text-to-motion metrics of the T2M / MLD evaluation protocol (reference.md section 8.2).

NumPy in, Python floats out. Every function validates its inputs and raises `InputError` naming
the argument, the expected and the found shape. Randomised metrics take `rng`: an int seed, a
`numpy.random.Generator` or a JAX PRNG key; the same `rng` gives the same number.

Protocol facts replicated here:
  * distances `D[a, b] = sqrt(-2 t_a . m_b + |t_a|^2 + |m_b|^2)` with NaN (tiny negative radicand)
    mapped to 0, R-precision over consecutive groups of 32 (the remainder is dropped), a text is a
    hit at k when its own motion is among the k nearest (ties broken by a stable sort);
  * FID with unbiased covariances, `scipy.linalg.sqrtm` (the reference's `disp=False` only asked
    for an error estimate and is deprecated in SciPy 1.16+), `1e-6 I` added to both
    covariances when the square root is not finite, the real part kept (imaginary diagonal > 1e-3
    is an error);
  * diversity: two independent index sets drawn without replacement, mean paired distance;
  * multimodality: two index sets over the repeats, shared by every prompt;
  * 95% confidence interval `1.96 * std / sqrt(n)` with the population std (`np.std`).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
import scipy.linalg

from lead_jax.errors import InputError

Rng = Any  # int | np.random.Generator | jax PRNG key


def as_generator(rng: Rng) -> np.random.Generator:
  """A NumPy generator from an int seed, a generator or a JAX PRNG key (typed or raw uint32)."""
  if isinstance(rng, np.random.Generator):
    return rng
  if isinstance(rng, (int, np.integer)):
    return np.random.default_rng(int(rng))
  if hasattr(rng, "dtype") and jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  data = np.asarray(rng)
  if data.dtype.kind not in "ui" or data.size == 0:
    raise InputError(f"rng: expected an int seed, a numpy Generator or a JAX PRNG key, found "
                     f"{type(rng).__name__} of dtype {data.dtype}")
  return np.random.default_rng(data.astype(np.uint64).ravel().tolist())


def _matrix(name: str, x: Any, ndim: int = 2) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != ndim or x.dtype.kind not in "fiu":
    raise InputError(f"{name}: expected a real array of rank {ndim}, found shape {x.shape} "
                     f"dtype {x.dtype}")
  if not np.all(np.isfinite(x)):
    raise InputError(f"{name}: contains NaN or infinite values")
  return x.astype(np.float64)


def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Pairwise distances `[N1, N2]` by the protocol's expansion, NaN -> 0 (float64)."""
  sq = -2.0 * a @ b.T + np.sum(a * a, axis=1, keepdims=True) + np.sum(b * b, axis=1)
  with np.errstate(invalid="ignore"):
    return np.nan_to_num(np.sqrt(sq))


def _paired(text: Any, motion: Any, group_size: int) -> tuple[np.ndarray, np.ndarray, int]:
  text = _matrix("text", text)
  motion = _matrix("motion", motion)
  if text.shape != motion.shape:
    raise InputError(f"text/motion: expected equal shapes [N, D], found {text.shape} and "
                     f"{motion.shape}")
  if group_size < 1 or text.shape[0] < group_size:
    raise InputError(f"text/motion: need at least group_size={group_size} pairs, found "
                     f"{text.shape[0]}")
  return text, motion, text.shape[0] // group_size


def r_precision(text: Any, motion: Any, top_k: int = 3, group_size: int = 32) -> list[float]:
  """Top-1..k retrieval accuracy of each text among its group of `group_size` motions.

  Args:
    text: `[N, D]` text embeddings; row i pairs with `motion[i]`.
    motion: `[N, D]` motion embeddings.
  Returns:
    `[R@1, ..., R@top_k]` over `floor(N / group_size) * group_size` texts.
  """
  text, motion, groups = _paired(text, motion, group_size)
  hits = np.zeros(top_k)
  for g in range(groups):
    s = slice(g * group_size, (g + 1) * group_size)
    order = np.argsort(euclidean_distance_matrix(text[s], motion[s]), axis=1, kind="stable")
    rank = np.argmax(order == np.arange(group_size)[:, None], axis=1)  # position of own motion
    hits += np.array([(rank < k + 1).sum() for k in range(top_k)])
  return [float(h) for h in hits / (groups * group_size)]


def mm_dist(text: Any, motion: Any, group_size: int = 32) -> float:
  """MM-Dist (matching score): mean distance of the paired rows within the complete groups."""
  text, motion, groups = _paired(text, motion, group_size)
  n = groups * group_size
  total = 0.0
  for g in range(groups):
    s = slice(g * group_size, (g + 1) * group_size)
    total += float(np.trace(euclidean_distance_matrix(text[s], motion[s])))
  return total / n


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
  """Frechet distance of two Gaussians `N(mu1, sigma1)`, `N(mu2, sigma2)`."""
  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
  if not np.all(np.isfinite(covmean)):
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise InputError(f"fid: the covariance product has a matrix square root with imaginary "
                       f"diagonal up to {np.max(np.abs(covmean.imag)):.3g} (> 1e-3); too few "
                       f"samples for the embedding width?")
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(real: Any, gen: Any) -> float:
  """Frechet inception distance between `real [N, D]` and `gen [M, D]` embeddings."""
  real = _matrix("real", real)
  gen = _matrix("gen", gen)
  if real.shape[1] != gen.shape[1] or min(real.shape[0], gen.shape[0]) < 2:
    raise InputError(f"fid: expected real [N, D] and gen [M, D] with equal D and N, M >= 2, "
                     f"found {real.shape} and {gen.shape}")
  return frechet_distance(real.mean(0), np.atleast_2d(np.cov(real, rowvar=False)),
                          gen.mean(0), np.atleast_2d(np.cov(gen, rowvar=False)))


def diversity(emb: Any, times: int = 300, rng: Rng = 0) -> float:
  """Mean distance between `times` random pairs of rows of `emb [N, D]` (N > times)."""
  emb = _matrix("emb", emb)
  n = emb.shape[0]
  if n <= times:
    raise InputError(f"diversity: needs more than times={times} embeddings, found {n}")
  gen = as_generator(rng)
  first = gen.choice(n, times, replace=False)
  second = gen.choice(n, times, replace=False)
  return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb: Any, times: int = 10, rng: Rng = 0) -> float:
  """Mean distance between `times` random pairs of repeats, `emb [N_prompts, R, D]` (R > times)."""
  emb = _matrix("emb", emb, ndim=3)
  repeats = emb.shape[1]
  if repeats <= times:
    raise InputError(f"multimodality: needs more than times={times} repeats per prompt, found "
                     f"emb of shape {emb.shape}")
  gen = as_generator(rng)
  first = gen.choice(repeats, times, replace=False)
  second = gen.choice(repeats, times, replace=False)
  return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean())


def mean_and_ci(values: Sequence[float]) -> tuple[float, float]:
  """(mean, 1.96 * population std / sqrt(n)) of the per-replication values."""
  v = np.asarray(values, dtype=np.float64).ravel()
  if v.size == 0:
    raise InputError("mean_and_ci: expected at least one value, found none")
  return float(v.mean()), float(1.96 * v.std() / np.sqrt(v.size))
