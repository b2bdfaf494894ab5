"""LatentDenoiser: exact parameter counts, shapes, MotionLCM cond_proj, input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.errors import InputError
from lead_jax.models import LatentDenoiser, abstract_params, count_params


def test_full_size_parameter_counts():
  assert count_params(abstract_params("denoiser", LatentDenoiser(text_dim=768))) == 8_221_184
  with_lcm = count_params(abstract_params("denoiser", LatentDenoiser(text_dim=768, cond_proj_dim=256)))
  assert with_lcm - 8_221_184 == 196_608
  # MiniLM width: emb_proj and time linear_1 shrink by 384 * 256 each.
  assert count_params(abstract_params("denoiser", LatentDenoiser(text_dim=384))) == \
      8_221_184 - 2 * 384 * 256


SMALL = dict(latent_dim=32, ff_size=64, num_layers=3, num_heads=4)


@pytest.mark.parametrize("text_dim", [768, 384])
@pytest.mark.parametrize("batch", [1, 3])
def test_shapes_and_conditioning(text_dim, batch):
  den = LatentDenoiser(text_dim=text_dim, **SMALL)
  z = jax.random.normal(jax.random.key(0), (batch, 1, 32))
  t = jnp.arange(batch) * 300
  text = jax.random.normal(jax.random.key(1), (batch, text_dim))
  params = den.init(jax.random.key(2, impl="unsafe_rbg"), z, t, text)["params"]
  apply = jax.jit(lambda p, z, t, text: den.apply({"params": p}, z, t, text))
  eps = apply(params, z, t, text)
  assert eps.shape == (batch, 1, 32)
  assert not np.allclose(np.asarray(eps), np.asarray(apply(params, z, t + 7, text)))
  assert not np.allclose(np.asarray(eps), np.asarray(apply(params, z, t, text + 1)))
  # [B, 1, E] text (MLD's layout) is accepted too; a scalar t broadcasts.
  np.testing.assert_allclose(np.asarray(apply(params, z, t, text[:, None])), np.asarray(eps), atol=1e-6)
  one_t = apply(params, z, jnp.int32(600), text)
  np.testing.assert_allclose(np.asarray(one_t), np.asarray(apply(params, z, jnp.full((batch,), 600), text)),
                             atol=1e-6)


def test_cond_proj_is_zero_initialised_and_changes_nothing_at_init():
  den = LatentDenoiser(text_dim=16, cond_proj_dim=8, **SMALL)
  plain = LatentDenoiser(text_dim=16, **SMALL)
  z, t, text = jnp.ones((2, 1, 32)), jnp.array([1, 500]), jnp.ones((2, 16))
  params = den.init(jax.random.key(0, impl="unsafe_rbg"), z, t, text, True, jnp.array([5.0, 9.0]))["params"]
  assert params["time_embedding"]["cond_proj"]["kernel"].shape == (8, 16)
  np.testing.assert_array_equal(np.asarray(params["time_embedding"]["cond_proj"]["kernel"]), 0)
  plain_params = jax.tree_util.tree_map(lambda x: x, params)
  del plain_params["time_embedding"]["cond_proj"]
  a = den.apply({"params": params}, z, t, text, True, jnp.array([5.0, 9.0]))
  b = plain.apply({"params": plain_params}, z, t, text)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  with pytest.raises(InputError, match="guidance"):
    den.apply({"params": params}, z, t, text)


def test_bad_shapes_raise_input_error():
  den = LatentDenoiser(text_dim=16, **SMALL)
  with pytest.raises(InputError, match=r"\[2, 16\]"):
    den.init(jax.random.key(0), jnp.ones((2, 1, 32)), jnp.array([1, 2]), jnp.ones((2, 15)))
  with pytest.raises(InputError, match=r"\[B, 1, 32\]"):
    den.init(jax.random.key(0), jnp.ones((2, 32)), jnp.array([1, 2]), jnp.ones((2, 16)))
