"""MotionVAE: exact parameter counts, shapes, padding invariance, sampling, input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.errors import InputError
from lead_jax.models import MotionVAE, abstract_params, count_params

SMALL = dict(latent_dim=32, ff_size=64, num_layers=3, num_heads=4)
INIT_KEY = jax.random.key(0, impl="unsafe_rbg")  # cheap to compile; the init law is tested in test_layers


@pytest.mark.parametrize("nfeats,expected", [(263, 18_032_135), (251, 18_025_979)])
def test_full_size_parameter_count(nfeats, expected):
  assert count_params(abstract_params("vae", MotionVAE(nfeats=nfeats))) == expected


def _lengths_mask(lengths, t):
  return jnp.asarray(np.arange(t)[None] < np.asarray(lengths)[:, None])


@pytest.fixture(scope="module")
def small_vae():
  vae = MotionVAE(nfeats=12, **SMALL)
  params = vae.init(INIT_KEY, jnp.zeros((1, 4, 12)), jnp.ones((1, 4), bool))["params"]
  return vae, params


_encode = jax.jit(lambda vae, p, x, m, key=None: vae.apply({"params": p}, x, m, key, method=MotionVAE.encode),
                  static_argnums=0)
_decode = jax.jit(lambda vae, p, z, m: vae.apply({"params": p}, z, m, method=MotionVAE.decode), static_argnums=0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("frames", [1, 40, 196])
def test_shapes_and_zeroed_padding(small_vae, batch, frames):
  vae, params = small_vae
  lengths = [max(1, frames - 3 * i) for i in range(batch)]
  mask = _lengths_mask(lengths, frames)
  feats = jax.random.normal(jax.random.key(1), (batch, frames, 12))
  z, mu, logvar = _encode(vae, params, feats, mask, jax.random.key(2))
  assert z.shape == mu.shape == logvar.shape == (batch, 1, 32)
  recon = _decode(vae, params, z, mask)
  assert recon.shape == (batch, frames, 12)
  assert np.all(np.asarray(recon)[~np.asarray(mask)] == 0)
  assert np.all(np.abs(np.asarray(recon)[np.asarray(mask)]) > 0)


def test_latents_do_not_depend_on_padded_frames(small_vae):
  vae, params = small_vae
  mask = _lengths_mask([40, 17], 40)
  feats = jax.random.normal(jax.random.key(3), (2, 40, 12))
  garbage = jnp.where(mask[..., None], feats, 1e3 * jax.random.normal(jax.random.key(4), feats.shape))
  a = _encode(vae, params, feats, mask)
  b = _encode(vae, params, garbage, mask)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # ...and the sequence cut to its length gives the same latent (up to float reassociation).
  c = _encode(vae, params, feats[1:, :17], mask[1:, :17])
  np.testing.assert_allclose(np.asarray(c[1]), np.asarray(a[1][1:]), atol=1e-5)


def test_sampling_is_reparameterised(small_vae):
  vae, params = small_vae
  mask = jnp.ones((2, 8), bool)
  feats = jax.random.normal(jax.random.key(5), (2, 8, 12))
  key = jax.random.key(6)
  z, mu, logvar = _encode(vae, params, feats, mask, key)
  expected = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
  np.testing.assert_allclose(np.asarray(z), np.asarray(expected), atol=1e-6)
  z0, mu0, _ = _encode(vae, params, feats, mask)
  np.testing.assert_array_equal(np.asarray(z0), np.asarray(mu0))


def test_bad_inputs_raise_input_error(small_vae):
  vae, params = small_vae
  with pytest.raises(InputError, match=r"\[B, T, 12\]"):
    vae.apply({"params": params}, jnp.zeros((1, 5, 11)), jnp.ones((1, 5), bool), method=MotionVAE.encode)
  with pytest.raises(InputError, match="mask"):
    vae.apply({"params": params}, jnp.zeros((1, 5, 12)), jnp.ones((1, 6), bool), method=MotionVAE.encode)
  with pytest.raises(InputError, match="498"):
    vae.apply({"params": params}, jnp.zeros((1, 499, 12)), jnp.ones((1, 499), bool),
              method=MotionVAE.encode)
  with pytest.raises(InputError, match=r"\[B, 1, 32\]"):
    vae.apply({"params": params}, jnp.zeros((1, 2, 32)), jnp.ones((1, 5), bool), method=MotionVAE.decode)
