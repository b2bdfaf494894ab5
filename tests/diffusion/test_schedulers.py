"""Schedulers against the reference constants (reference §5, §6.1) and direct NumPy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.diffusion import schedulers as sch
from lead_jax.errors import ConfigError, InputError


def _abar64() -> np.ndarray:
  betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64)**2
  return np.cumprod(1.0 - betas)


def _randn(seed: int, shape: tuple[int, ...]) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_constants_match_reference():
  state = sch.make_ddpm()
  betas, abar = np.asarray(state.betas), np.asarray(state.alphas_cumprod)
  assert betas.shape == abar.shape == (1000,)
  np.testing.assert_allclose(betas[0], 0.00085, rtol=1e-6)
  np.testing.assert_allclose(betas[999], 0.012, rtol=1e-6)
  np.testing.assert_allclose(abar[0], 0.99915, rtol=1e-6)
  np.testing.assert_allclose(abar[999], 0.0046601, rtol=1e-6)
  # scaled_linear means betas are squares of a linear ramp.
  np.testing.assert_allclose(np.diff(np.sqrt(betas.astype(np.float64)), 2), 0.0, atol=1e-7)
  assert np.all(np.diff(abar) < 0)


def test_linear_schedule():
  betas = np.asarray(sch.make_ddpm(beta_schedule="linear", beta_start=1e-4, beta_end=0.02).betas)
  np.testing.assert_allclose(betas, np.linspace(1e-4, 0.02, 1000), rtol=1e-6)


def test_ddim_timesteps_exact():
  state = sch.make_ddim()
  expected = np.arange(981, 0, -20)
  assert expected.shape == (50,) and expected[0] == 981 and expected[-1] == 1
  np.testing.assert_array_equal(np.asarray(state.timesteps), expected)
  np.testing.assert_array_equal(np.asarray(state.prev_timesteps), expected - 20)
  assert state.timesteps.dtype == jnp.int32
  assert state.init_noise_sigma == 1.0


def test_ddim_final_alpha():
  state = sch.make_ddim()
  assert int(state.prev_timesteps[-1]) == -19
  np.testing.assert_allclose(float(sch.alpha_cumprod_at(state, -19)), 0.99915, rtol=1e-6)
  ones = sch.make_ddim(set_alpha_to_one=True)
  assert float(sch.alpha_cumprod_at(ones, -19)) == 1.0
  # t = 1 -> -19 with eta = 0 uses abar_prev = 0.99915.
  x_t, eps = _randn(0, (2, 1, 4)), _randn(1, (2, 1, 4))
  abar = _abar64()
  x0 = (x_t - np.sqrt(1 - abar[1]) * eps) / np.sqrt(abar[1])
  expected = np.sqrt(0.99915) * x0 + np.sqrt(1 - 0.99915) * eps
  got = sch.ddim_step(state, jnp.asarray(eps), 1, -19, jnp.asarray(x_t))
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("t,prev_t", [(981, 961), (501, 481), (21, 1)])
def test_ddim_step_direct_formula(t, prev_t):
  state = sch.make_ddim()
  abar = _abar64()
  x_t, eps = _randn(2, (3, 1, 8)), _randn(3, (3, 1, 8))
  x0 = (x_t - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
  expected = np.sqrt(abar[prev_t]) * x0 + np.sqrt(1 - abar[prev_t]) * eps
  got = sch.ddim_step(state, jnp.asarray(eps), t, prev_t, jnp.asarray(x_t))
  np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(np.asarray(sch.predict_x0(state, eps, t, x_t)), x0, rtol=2e-5,
                             atol=2e-5)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_eta_variance_diffusers_formula(eta):
  state = sch.make_ddim(eta=eta)
  abar = _abar64()
  t, prev_t = 481, 461
  x_t, eps = _randn(4, (2, 1, 8)), _randn(5, (2, 1, 8))
  key = jax.random.key(7)
  noise = np.asarray(jax.random.normal(key, x_t.shape, jnp.float32))
  # diffusers DDIMScheduler._get_variance and step, written out.
  variance = (1 - abar[prev_t]) / (1 - abar[t]) * (1 - abar[t] / abar[prev_t])
  std = eta * np.sqrt(variance)
  x0 = (x_t - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
  expected = np.sqrt(abar[prev_t]) * x0 + np.sqrt(1 - abar[prev_t] - std**2) * eps + std * noise
  np.testing.assert_allclose(float(sch.ddim_variance(state, t, prev_t)), variance, rtol=1e-5)
  got = sch.ddim_step(state, jnp.asarray(eps), t, prev_t, jnp.asarray(x_t), key=key)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-5, atol=2e-5)
  # explicit eta overrides the state's; explicit noise replaces the key.
  got0 = sch.ddim_step(state, jnp.asarray(eps), t, prev_t, jnp.asarray(x_t), key=key, eta=0.0)
  direct0 = np.sqrt(abar[prev_t]) * x0 + np.sqrt(1 - abar[prev_t]) * eps
  np.testing.assert_allclose(np.asarray(got0), direct0, rtol=2e-5, atol=2e-5)
  got_n = sch.ddim_step(state, jnp.asarray(eps), t, prev_t, jnp.asarray(x_t), noise=noise)
  np.testing.assert_allclose(np.asarray(got_n), expected, rtol=2e-5, atol=2e-5)
  with pytest.raises(ConfigError, match="PRNG key"):
    sch.ddim_step(state, jnp.asarray(eps), t, prev_t, jnp.asarray(x_t))


def test_add_noise_direct_formula():
  state = sch.make_ddpm()
  abar = _abar64()
  x0, noise = _randn(8, (4, 1, 16)), _randn(9, (4, 1, 16))
  t = np.array([0, 10, 500, 999])
  expected = (np.sqrt(abar[t])[:, None, None] * x0 + np.sqrt(1 - abar[t])[:, None, None] * noise)
  got = sch.add_noise(state, jnp.asarray(x0), jnp.asarray(noise), jnp.asarray(t))
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
  # F(eps) inverts the forward process.
  np.testing.assert_allclose(np.asarray(sch.predict_x0(state, noise, t, got)), x0, rtol=1e-4,
                             atol=1e-4)


@pytest.mark.parametrize("t", [999, 500, 1, 0])
def test_ddpm_step_direct_formula(t):
  state = sch.make_ddpm()
  abar = _abar64()
  x_t, eps = _randn(10, (2, 1, 8)), _randn(11, (2, 1, 8))
  key = jax.random.key(3)
  noise = np.asarray(jax.random.normal(key, x_t.shape, jnp.float32))
  abar_prev = abar[t - 1] if t > 0 else 1.0
  beta = 1 - abar[t] / abar_prev
  x0 = (x_t - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
  mean = (np.sqrt(abar_prev) * beta / (1 - abar[t]) * x0
          + np.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar[t]) * x_t)
  var = max((1 - abar_prev) / (1 - abar[t]) * beta, 1e-20)
  expected = mean + (np.sqrt(var) * noise if t > 0 else 0.0)
  got = sch.ddpm_step(state, jnp.asarray(eps), t, jnp.asarray(x_t), key)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=5e-5, atol=5e-5)
  if t == 0:  # the last step is the posterior mean, i.e. x0_hat
    np.testing.assert_allclose(np.asarray(got), x0, rtol=5e-5, atol=5e-5)


def test_ddpm_strided_and_fixed_large():
  state = sch.make_ddpm(num_inference_steps=10, variance_type="fixed_large")
  np.testing.assert_array_equal(np.asarray(state.timesteps), np.arange(900, -1, -100))
  abar = _abar64()
  t = 300
  beta = 1 - abar[t] / abar[t - 100]
  np.testing.assert_allclose(float(sch.ddpm_variance(state, t, t - 100)), beta, rtol=1e-5)
  x_t, eps = _randn(12, (1, 1, 4)), _randn(13, (1, 1, 4))
  noise = _randn(14, (1, 1, 4))
  x0 = (x_t - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
  mean = (np.sqrt(abar[t - 100]) * beta / (1 - abar[t]) * x0
          + np.sqrt(1 - beta) * (1 - abar[t - 100]) / (1 - abar[t]) * x_t)
  got = sch.ddpm_step(state, jnp.asarray(eps), t, jnp.asarray(x_t), noise=jnp.asarray(noise))
  np.testing.assert_allclose(np.asarray(got), mean + np.sqrt(beta) * noise, rtol=5e-5, atol=5e-5)


def test_batched_timesteps_match_scalar():
  state = sch.make_ddim()
  x_t, eps = _randn(15, (3, 1, 8)), _randn(16, (3, 1, 8))
  t, prev = np.array([981, 501, 21]), np.array([961, 481, 1])
  batched = sch.ddim_step(state, jnp.asarray(eps), t, prev, jnp.asarray(x_t))
  for i in range(3):
    single = sch.ddim_step(state, jnp.asarray(eps[i:i + 1]), int(t[i]), int(prev[i]),
                           jnp.asarray(x_t[i:i + 1]))
    np.testing.assert_allclose(np.asarray(batched[i:i + 1]), np.asarray(single), rtol=1e-6)


@pytest.mark.parametrize("steps,expected", [(1, [999]), (2, [999, 499]), (4, [999, 759, 499, 259])])
def test_lcm_timesteps(steps, expected):
  state = sch.make_lcm(num_inference_steps=steps)
  np.testing.assert_array_equal(np.asarray(state.timesteps), expected)
  np.testing.assert_array_equal(np.asarray(state.prev_timesteps), expected[1:] + [-1])
  assert tuple(expected) == sch.LCM_TIMESTEPS[steps]


def test_lcm_step_direct_formula():
  state = sch.make_lcm(num_inference_steps=2)
  abar = _abar64()
  x_t, eps, noise = _randn(17, (2, 1, 8)), _randn(18, (2, 1, 8)), _randn(19, (2, 1, 8))
  for t, prev_t in [(999, 499), (499, -1)]:
    s = 10.0 * t
    c_skip, c_out = 0.25 / (s**2 + 0.25), s / np.sqrt(s**2 + 0.25)
    x0 = (x_t - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
    denoised = c_out * x0 + c_skip * x_t
    expected = (np.sqrt(abar[prev_t]) * denoised + np.sqrt(1 - abar[prev_t]) * noise
                if prev_t >= 0 else denoised)
    got = sch.lcm_step(state, jnp.asarray(eps), t, prev_t, jnp.asarray(x_t), noise=jnp.asarray(noise))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=5e-5, atol=5e-5)
  c_skip, c_out = sch.lcm_boundary_scalings(state, 0)
  assert float(c_skip) == 1.0 and float(c_out) == 0.0


def test_sample_timesteps_range_and_shape():
  t = sch.sample_timesteps(jax.random.key(0), 4096, 1000)
  assert t.shape == (4096,) and t.dtype == jnp.int32
  t = np.asarray(t)
  assert t.min() >= 0 and t.max() <= 999
  assert t.min() < 10 and t.max() > 990  # covers the range
  np.testing.assert_allclose(t.mean(), 499.5, atol=15)


def test_init_noise():
  state = sch.make_ddim()
  z = sch.init_noise(state, jax.random.key(1), (2, 1, 256))
  assert z.shape == (2, 1, 256) and z.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(z), np.asarray(jax.random.normal(jax.random.key(1),
                                                                          (2, 1, 256))))


def test_steps_jit():
  state = sch.make_ddim(eta=0.3)
  x_t, eps = jnp.asarray(_randn(20, (2, 1, 8))), jnp.asarray(_randn(21, (2, 1, 8)))
  key = jax.random.key(0)
  eager = sch.ddim_step(state, eps, 501, 481, x_t, key)
  jitted = jax.jit(sch.ddim_step)(state, eps, jnp.int32(501), jnp.int32(481), x_t, key)
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-6)


def test_errors():
  with pytest.raises(ConfigError, match="beta_schedule"):
    sch.make_ddpm(beta_schedule="cosine")
  with pytest.raises(ConfigError, match="variance_type"):
    sch.make_ddpm(variance_type="learned")
  with pytest.raises(ConfigError, match="timestep_spacing"):
    sch.make_ddim(timestep_spacing="karras")
  with pytest.raises(ConfigError, match="num_inference_steps"):
    sch.make_ddim(num_inference_steps=2000)
  with pytest.raises(ConfigError, match="num_inference_steps"):
    sch.make_lcm(num_inference_steps=60)
  state = sch.make_ddim()
  with pytest.raises(InputError, match=r"eps has shape \(2, 1, 4\).*x_t has shape \(2, 1, 8\)"):
    sch.ddim_step(state, jnp.zeros((2, 1, 4)), 1, -19, jnp.zeros((2, 1, 8)))
  with pytest.raises(InputError, match="timesteps must be a scalar or"):
    sch.add_noise(state, jnp.zeros((2, 1, 4)), jnp.zeros((2, 1, 4)), jnp.array([1, 2, 3]))
