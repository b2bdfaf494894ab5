"""Parity with diffusers' DDIM / DDPM / LCM schedulers (a test-only oracle; skipped without it)."""

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from lead_jax.diffusion import schedulers as sch  # noqa: E402

MLD = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
           beta_schedule="scaled_linear")


def _ddim(**kw):
  return diffusers.DDIMScheduler(**MLD, clip_sample=False, set_alpha_to_one=False,
                                 steps_offset=1, prediction_type="epsilon", **kw)


def _eps_fn(x: np.ndarray, t: int) -> np.ndarray:
  """A deterministic stand-in noise prediction that depends on x and t."""
  return (0.3 * x + np.sin(0.01 * t)).astype(np.float32)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [50, 10, 7])
def test_ddim_timesteps(spacing, steps):
  ref = _ddim(timestep_spacing=spacing)
  ref.set_timesteps(steps)
  ours = sch.make_ddim(num_inference_steps=steps, timestep_spacing=spacing)
  np.testing.assert_array_equal(np.asarray(ours.timesteps), ref.timesteps.numpy())
  np.testing.assert_allclose(np.asarray(ours.alphas_cumprod), ref.alphas_cumprod.numpy(), rtol=2e-6)
  np.testing.assert_allclose(float(ours.final_alpha_cumprod), float(ref.final_alpha_cumprod),
                             rtol=1e-6)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_three_steps(eta):
  ref = _ddim()
  ref.set_timesteps(50)
  ours = sch.make_ddim(num_inference_steps=50, eta=eta)
  rng = np.random.default_rng(0)
  x_ours = jnp.asarray(rng.standard_normal((2, 1, 16)).astype(np.float32))
  # the first three steps and the last (t=1 -> final alpha).
  for i in [0, 1, 2, 49]:
    t = int(ref.timesteps[i])
    noise = rng.standard_normal(x_ours.shape).astype(np.float32)
    eps_np = _eps_fn(np.asarray(x_ours), t)
    out = ref.step(torch.from_numpy(eps_np), t, torch.from_numpy(np.array(x_ours)), eta=eta,
                   variance_noise=torch.from_numpy(noise) if eta > 0 else None)
    expected = out.prev_sample.numpy()
    x_ours = sch.ddim_step(ours, jnp.asarray(eps_np), t, int(ours.prev_timesteps[i]), x_ours,
                           noise=jnp.asarray(noise))
    np.testing.assert_allclose(np.asarray(x_ours), expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("steps", [None, 20])
def test_ddpm_timesteps_and_three_steps(steps):
  ref = diffusers.DDPMScheduler(**MLD, variance_type="fixed_small", clip_sample=False,
                                prediction_type="epsilon")
  ours = sch.make_ddpm(num_inference_steps=steps)
  if steps is not None:
    ref.set_timesteps(steps)
  np.testing.assert_array_equal(np.asarray(ours.timesteps), ref.timesteps.numpy())
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 1, 16)).astype(np.float32)
  x_ours = jnp.asarray(x)
  x0 = rng.standard_normal(x.shape).astype(np.float32)
  t_batch = np.array([3, 777])
  np.testing.assert_allclose(
      np.asarray(sch.add_noise(ours, jnp.asarray(x0), jnp.asarray(x), jnp.asarray(t_batch))),
      ref.add_noise(torch.from_numpy(x0), torch.from_numpy(x), torch.from_numpy(t_batch)).numpy(),
      rtol=1e-5, atol=1e-6)
  n = ours.num_inference_steps
  for i in [0, 1, 2, n - 2, n - 1]:
    t = int(ours.timesteps[i])
    eps_np = _eps_fn(np.asarray(x_ours), t)
    generator = torch.Generator().manual_seed(i)
    expected = ref.step(torch.from_numpy(eps_np), t, torch.from_numpy(np.array(x_ours)),
                        generator=generator).prev_sample.numpy()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(i)).numpy()
    x_ours = sch.ddpm_step(ours, jnp.asarray(eps_np), t, x_ours, noise=jnp.asarray(noise))
    np.testing.assert_allclose(np.asarray(x_ours), expected, rtol=5e-5, atol=5e-5)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_lcm_timesteps_and_steps(steps):
  ref = diffusers.LCMScheduler(**MLD, original_inference_steps=50, clip_sample=False,
                               set_alpha_to_one=False, timestep_scaling=10.0)
  ref.set_timesteps(steps)
  ours = sch.make_lcm(num_inference_steps=steps)
  np.testing.assert_array_equal(np.asarray(ours.timesteps), ref.timesteps.numpy())
  rng = np.random.default_rng(2)
  x_ours = jnp.asarray(rng.standard_normal((2, 1, 16)).astype(np.float32))
  for i in range(steps):
    t = int(ours.timesteps[i])
    eps_np = _eps_fn(np.asarray(x_ours), t)
    expected = ref.step(torch.from_numpy(eps_np), t, torch.from_numpy(np.array(x_ours)),
                        generator=torch.Generator().manual_seed(i)).prev_sample.numpy()
    noise = torch.randn(eps_np.shape, generator=torch.Generator().manual_seed(i)).numpy()
    x_ours = sch.lcm_step(ours, jnp.asarray(eps_np), t, int(ours.prev_timesteps[i]), x_ours,
                          noise=jnp.asarray(noise))
    np.testing.assert_allclose(np.asarray(x_ours), expected, rtol=5e-5, atol=5e-5)
