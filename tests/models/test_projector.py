"""LEAD projector: shapes for every variant and text width; the Eq. 7 loss against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.errors import ConfigError, InputError
from lead_jax.models import Projector, abstract_params, count_params, gaussian_batch_kl, projector_loss

SMALL = dict(num_tokens=4, width=16, ff_size=32, num_layers=3, num_heads=2, mlp_layers=2)


@pytest.mark.parametrize("arch", ["transformer", "skip", "mlp"])
@pytest.mark.parametrize("text_dim", [768, 384])
def test_shapes_and_round_trip_methods(arch, text_dim):
  proj = Projector(text_dim=text_dim, arch=arch, **SMALL)
  z = jax.random.normal(jax.random.key(0), (3, 1, 256))
  params = proj.init(jax.random.key(1, impl="unsafe_rbg"), z)["params"]
  z_proj, z_hat = jax.jit(lambda p, z: proj.apply({"params": p}, z))(params, z)
  assert z_proj.shape == (3, text_dim) and z_hat.shape == (3, 1, 256)
  enc_fn = jax.jit(lambda p, z: proj.apply({"params": p}, z, method=Projector.encode))
  enc = enc_fn(params, z)
  dec = jax.jit(lambda p, e: proj.apply({"params": p}, e, method=Projector.decode))(params, enc)
  np.testing.assert_allclose(np.asarray(enc), np.asarray(z_proj), atol=1e-5)
  np.testing.assert_allclose(np.asarray(dec), np.asarray(z_hat), atol=1e-5)
  # Each sample is processed independently (no mixing across the batch).
  single = enc_fn(params, z[1:2])
  np.testing.assert_allclose(np.asarray(single), np.asarray(z_proj[1:2]), atol=1e-5)


def test_default_is_nine_layer_transformer_with_1024_ff():
  params = abstract_params("projector", Projector(text_dim=768))
  assert sorted(k for k in params["enc_stack"]) == [f"layers_{i}" for i in range(9)]
  assert params["enc_stack"]["layers_0"]["linear1"]["kernel"].shape == (256, 1024)
  assert params["enc_in"]["kernel"].shape == (32, 256)  # 8 chunks of 32 dims
  assert params["enc_out"]["kernel"].shape == (256, 768)
  assert params["dec_in"]["kernel"].shape == (768, 8 * 256)
  skip = abstract_params("projector", Projector(text_dim=768, arch="skip"))
  # skip adds 4 Linear(2d -> d) and a final LayerNorm per stack
  assert count_params(skip) - count_params(params) == 2 * (4 * (512 * 256 + 256) + 512)


def test_config_and_input_errors():
  with pytest.raises(ConfigError, match="arch"):
    Projector(arch="rnn").init(jax.random.key(0), jnp.zeros((1, 1, 256)))
  with pytest.raises(ConfigError, match="num_tokens=6"):
    Projector(num_tokens=6).init(jax.random.key(0), jnp.zeros((1, 1, 256)))
  with pytest.raises(InputError, match=r"\[B, 1, 256\]"):
    Projector(**SMALL).init(jax.random.key(0), jnp.zeros((1, 256)))


def _numpy_loss(z, z_proj, z_hat, text, eps=1e-6):
  z, z_hat = z.reshape(len(z), -1).astype(np.float64), z_hat.reshape(len(z_hat), -1).astype(np.float64)
  rec = np.mean((z - z_hat) ** 2)
  cos = np.sum(z_proj * text, -1) / (np.linalg.norm(z_proj, axis=-1) * np.linalg.norm(text, axis=-1))
  align = np.mean(1 - cos)
  mp, mq, vp, vq = z.mean(0), z_hat.mean(0), z.var(0) + eps, z_hat.var(0) + eps
  kl = np.mean(0.5 * np.log(vq / vp) + (vp + (mp - mq) ** 2) / (2 * vq) - 0.5)
  return rec, align, kl


def test_loss_terms_match_numpy():
  rng = np.random.default_rng(0)
  z, z_hat = rng.normal(size=(6, 1, 256)), 0.7 * rng.normal(size=(6, 1, 256)) + 0.2
  z_proj, text = rng.normal(size=(6, 768)), rng.normal(size=(6, 768))
  rec, align, kl = _numpy_loss(z, z_proj, z_hat, text)
  out = projector_loss(*(jnp.asarray(a, jnp.float32) for a in (z, z_proj, z_hat, text)))
  np.testing.assert_allclose(float(out["rec"]), rec, rtol=1e-5)
  np.testing.assert_allclose(float(out["align"]), align, rtol=1e-5)
  np.testing.assert_allclose(float(out["kl"]), kl, rtol=1e-4)
  np.testing.assert_allclose(float(out["loss"]), 4.7036 * rec + 2.1591 * align + 0.0596 * kl, rtol=1e-5)
  # KL of identical batches is 0; alignment of parallel vectors is 0.
  assert abs(float(gaussian_batch_kl(jnp.asarray(z[:, 0]), jnp.asarray(z[:, 0])))) < 1e-6
  assert abs(float(projector_loss(jnp.asarray(z), jnp.asarray(2 * text), jnp.asarray(z),
                                  jnp.asarray(text))["loss"])) < 1e-5


@pytest.mark.parametrize("off", [0, 1, 2])
def test_zero_weight_switches_a_term_off(off):
  rng = np.random.default_rng(1)
  args = [jnp.asarray(a, jnp.float32) for a in (rng.normal(size=(4, 1, 256)), rng.normal(size=(4, 384)),
                                                rng.normal(size=(4, 1, 256)), rng.normal(size=(4, 384)))]
  weights = [1.0, 2.0, 3.0]
  weights[off] = 0
  out = projector_loss(*args, weights=tuple(weights))
  terms = [out["rec"], out["align"], out["kl"]]
  expected = sum(w * float(t) for w, t in zip(weights, terms))
  np.testing.assert_allclose(float(out["loss"]), expected, rtol=1e-5)
  assert float(terms[off]) > 0  # still reported
  # gradient of the loss w.r.t. the input that only the switched-off term sees is zero
  if off == 1:
    g = jax.grad(lambda zp: projector_loss(args[0], zp, args[2], args[3], weights=tuple(weights))["loss"])(args[1])
    np.testing.assert_array_equal(np.asarray(g), 0)
  # a batch of one has zero variance: eps keeps the KL finite
  one = projector_loss(args[0][:1], args[1][:1], args[2][:1], args[3][:1])
  assert np.isfinite(float(one["loss"]))
