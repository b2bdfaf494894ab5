"""The guided scan sampler against step-by-step NumPy loops, guidance identities and tracing."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.diffusion import sampling, schedulers as sch
from lead_jax.errors import ConfigError, InputError

B, E, D = 3, 6, 8


def _toy_params(seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {"w": (0.1 * rng.standard_normal((D, D))).astype(np.float32),
          "u": (0.5 * rng.standard_normal((E, D))).astype(np.float32),
          "c": np.float32(0.2)}


def toy_denoise(params, z_t, t, text_emb):
  """eps = z W + text U + c t / 1000: linear, so its guided trajectory is computable in NumPy."""
  return (z_t @ params["w"] + (text_emb @ params["u"])[:, None, :]
          + params["c"] * (t.astype(jnp.float32) / 1000.0)[:, None, None])


def _np_eps(params, z, t, text):
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  return z @ p["w"] + (text @ p["u"])[:, None, :] + p["c"] * t / 1000.0


def _np_guided(params, z, t, cond, uncond, scale):
  eps_u = _np_eps(params, z, t, np.broadcast_to(uncond, cond.shape))
  eps_c = _np_eps(params, z, t, cond)
  return eps_u + scale * (eps_c - eps_u)


def _abar64() -> np.ndarray:
  betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64)**2
  return np.cumprod(1.0 - betas)


def _inputs(seed: int = 1):
  rng = np.random.default_rng(seed)
  cond = rng.standard_normal((B, E)).astype(np.float32)
  uncond = rng.standard_normal((E,)).astype(np.float32)
  return cond, uncond


def _motion_keys(key):
  return jax.random.split(key, B)


def _keys(key, steps):
  """The sampler's documented key use: motion i starts from normal(keys[i]) and step s draws
  normal(fold_in(keys[i], s + 1))."""
  keys = _motion_keys(key)
  z = np.stack([np.asarray(jax.random.normal(k, (1, D)), np.float64) for k in keys])
  step_noise = [np.stack([np.asarray(jax.random.normal(jax.random.fold_in(k, s + 1), (1, D)),
                                     np.float64) for k in keys]) for s in range(steps)]
  return z, step_noise


def test_ddim_scan_matches_numpy_loop():
  params, (cond, uncond) = _toy_params(), _inputs()
  state = sch.make_ddim(num_inference_steps=50)
  key = jax.random.key(42)
  got = sampling.sample_latents(toy_denoise, params, _motion_keys(key),
                                cond, uncond, state, 7.5, (1, D), "ddim")
  abar = _abar64()
  z, _ = _keys(key, 50)
  for t in range(981, 0, -20):
    eps = _np_guided(params, z, t, cond, uncond, 7.5)
    prev = abar[t - 20] if t - 20 >= 0 else abar[0]
    x0 = (z - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
    z = np.sqrt(prev) * x0 + np.sqrt(1 - prev) * eps
  assert got.shape == (B, 1, D) and got.dtype == jnp.float32
  assert np.abs(z).max() > 0.1  # a non-trivial trajectory
  np.testing.assert_allclose(np.asarray(got), z, rtol=1e-5, atol=1e-5)


def test_ddim_eta_scan_matches_numpy_loop():
  params, (cond, uncond) = _toy_params(), _inputs()
  state = sch.make_ddim(num_inference_steps=10, eta=1.0)
  key = jax.random.key(5)
  got = sampling.sample_latents(toy_denoise, params, _motion_keys(key),
                                cond, uncond, state, 3.0, (1, D))
  abar = _abar64()
  z, noises = _keys(key, 10)
  for i, t in enumerate(range(901, 0, -100)):
    eps = _np_guided(params, z, t, cond, uncond, 3.0)
    prev = abar[t - 100] if t - 100 >= 0 else abar[0]
    var = (1 - prev) / (1 - abar[t]) * (1 - abar[t] / prev)
    x0 = (z - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
    z = np.sqrt(prev) * x0 + np.sqrt(1 - prev - var) * eps + np.sqrt(var) * noises[i]
  np.testing.assert_allclose(np.asarray(got), z, rtol=1e-5, atol=1e-5)


def test_ddpm_scan_matches_numpy_loop():
  params, (cond, uncond) = _toy_params(), _inputs()
  state = sch.make_ddpm(num_inference_steps=10)
  key = jax.random.key(7)
  got = sampling.sample_latents(toy_denoise, params, _motion_keys(key),
                                cond, uncond, state, 7.5, (1, D), "ddpm")
  abar = _abar64()
  z, noises = _keys(key, 10)
  for i, t in enumerate(range(900, -1, -100)):
    eps = _np_guided(params, z, t, cond, uncond, 7.5)
    prev = abar[t - 100] if t > 0 else 1.0
    beta = 1 - abar[t] / prev
    x0 = (z - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
    z = (np.sqrt(prev) * beta / (1 - abar[t]) * x0
         + np.sqrt(1 - beta) * (1 - prev) / (1 - abar[t]) * z)
    if t > 0:
      z = z + np.sqrt((1 - prev) / (1 - abar[t]) * beta) * noises[i]
  np.testing.assert_allclose(np.asarray(got), z, rtol=1e-5, atol=1e-5)


def test_lcm_scan_without_guidance_matches_numpy_loop():
  params, (cond, _) = _toy_params(), _inputs()
  state = sch.make_lcm(num_inference_steps=4)
  key = jax.random.key(9)
  got = sampling.sample_latents(toy_denoise, params, _motion_keys(key),
                                cond, None, state, 1.0, (1, D), "lcm")
  abar = _abar64()
  z, noises = _keys(key, 4)
  ts = [999, 759, 499, 259, -1]
  for i in range(4):
    t, prev_t = ts[i], ts[i + 1]
    eps = _np_eps(params, z, t, cond)
    s = 10.0 * t
    x0 = (z - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
    z = s / np.sqrt(s**2 + 0.25) * x0 + 0.25 / (s**2 + 0.25) * z
    if prev_t >= 0:
      z = np.sqrt(abar[prev_t]) * z + np.sqrt(1 - abar[prev_t]) * noises[i]
  np.testing.assert_allclose(np.asarray(got), z, rtol=1e-5, atol=1e-5)


def test_guided_eps_order_and_formula():
  def echo_text(params, z_t, t, text_emb):  # eps = the text embedding it was given
    del params, t
    return jnp.broadcast_to(text_emb[:, None, :], z_t.shape)
  cond = jnp.asarray(np.random.default_rng(3).standard_normal((B, D)), jnp.float32)
  uncond = jnp.asarray(np.random.default_rng(4).standard_normal((D,)), jnp.float32)
  z = jnp.zeros((B, 1, D))
  u = np.broadcast_to(np.asarray(uncond), (B, 1, D))
  c = np.asarray(cond)[:, None, :]
  np.testing.assert_allclose(
      np.asarray(sampling.guided_eps(echo_text, None, z, 5, cond, uncond, 0.0)), u)
  np.testing.assert_allclose(
      np.asarray(sampling.guided_eps(echo_text, None, z, 5, cond, uncond, 7.5)),
      u + 7.5 * (c - u), rtol=1e-6, atol=1e-6)
  per_sample = jnp.stack([uncond * (i + 1) for i in range(B)])
  np.testing.assert_allclose(
      np.asarray(sampling.guided_eps(echo_text, None, z, 5, cond, per_sample, 0.0)),
      np.asarray(per_sample)[:, None, :])


def test_doubled_batch_layout():
  seen = {}
  def record(params, z_t, t, text_emb):
    seen.update(z=np.asarray(z_t), t=np.asarray(t), text=np.asarray(text_emb))
    return z_t
  cond, uncond = _inputs()
  z = jnp.asarray(np.random.default_rng(0).standard_normal((B, 1, D)), jnp.float32)
  sampling.guided_eps(record, None, z, 21, jnp.asarray(cond), jnp.asarray(uncond), 7.5)
  assert seen["z"].shape == (2 * B, 1, D) and seen["t"].shape == (2 * B,)
  np.testing.assert_array_equal(seen["t"], 21)
  np.testing.assert_array_equal(seen["z"][:B], seen["z"][B:])
  np.testing.assert_array_equal(seen["text"][:B], np.broadcast_to(uncond, (B, E)))
  np.testing.assert_array_equal(seen["text"][B:], cond)


def test_guidance_scale_one_equals_conditional_only():
  params, (cond, uncond) = _toy_params(), _inputs()
  state = sch.make_ddim(num_inference_steps=50)
  key = jax.random.key(0)
  guided = sampling.sample_latents(toy_denoise, params, _motion_keys(key),
                                cond, uncond, state, 1.0, (1, D))
  cond_only = sampling.sample_latents(toy_denoise, params, _motion_keys(key),
                                cond, None, state, 7.5, (1, D))
  other = sampling.sample_latents(toy_denoise, params, _motion_keys(key),
                                cond, uncond, state, 2.0, (1, D))
  np.testing.assert_allclose(np.asarray(guided), np.asarray(cond_only), rtol=1e-5, atol=1e-5)
  assert np.abs(np.asarray(other) - np.asarray(cond_only)).max() > 1e-2


def test_jits_once():
  traces = []
  def counting_denoise(params, z_t, t, text_emb):
    traces.append(z_t.shape)
    return toy_denoise(params, z_t, t, text_emb)
  sample = jax.jit(sampling.sample_latents,
                   static_argnames=("denoise_fn", "latent_shape", "scheduler"))
  params, (cond, uncond) = _toy_params(), _inputs()
  state = sch.make_ddim(num_inference_steps=50)
  first = sample(counting_denoise, params, _motion_keys(jax.random.key(0)), cond, uncond, state,
                 guidance_scale=7.5, latent_shape=(1, D))
  n_traces = len(traces)
  assert n_traces >= 1
  second = sample(counting_denoise, _toy_params(1), _motion_keys(jax.random.key(1)), cond + 1.0,
                  uncond, state,
                  guidance_scale=3.0, latent_shape=(1, D))
  second.block_until_ready()
  assert len(traces) == n_traces, "second call with same shapes retraced the sampler"
  eager = sampling.sample_latents(toy_denoise, params, _motion_keys(jax.random.key(0)), cond,
                                  uncond, state,
                                  7.5, (1, D))
  np.testing.assert_allclose(np.asarray(first), np.asarray(eager), rtol=1e-5, atol=1e-5)
  assert not np.allclose(np.asarray(first), np.asarray(second))


def test_sampler_errors():
  params, (cond, uncond) = _toy_params(), _inputs()
  run = functools.partial(sampling.sample_latents, toy_denoise, params,
                          _motion_keys(jax.random.key(0)))
  with pytest.raises(InputError, match=r"uncond_emb has shape \(5,\)"):
    run(cond, uncond[:5], sch.make_ddim(num_inference_steps=2), 7.5, (1, D))
  with pytest.raises(InputError, match="cond_emb must be"):
    run(cond[0], uncond, sch.make_ddim(num_inference_steps=2), 7.5, (1, D))
  with pytest.raises(ConfigError, match="scheduler='ddpm'"):
    run(cond, uncond, sch.make_ddim(num_inference_steps=2), 7.5, (1, D), "ddpm")
  def truncating(params, z_t, t, text_emb):
    return toy_denoise(params, z_t, t, text_emb)[..., :-1]
  for uncond_emb in (uncond, None):
    with pytest.raises(InputError, match=r"denoise_fn returned shape \(\d+, 1, 7\)"):
      sampling.sample_latents(truncating, params, _motion_keys(jax.random.key(0)), cond,
                              uncond_emb,
                              sch.make_ddim(num_inference_steps=2), 7.5, (1, D))
