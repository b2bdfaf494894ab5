"""Matmul precision: bfloat16 kernels give bfloat16 x bfloat16 -> float32 matmuls, the rest float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.errors import ConfigError
from lead_jax.models import LatentDenoiser, MotionVAE, Projector, init_params, layers, precision


def _vae_and_params():
  vae = MotionVAE(nfeats=263, latent_dim=32, ff_size=64, num_layers=3, num_heads=4)
  return vae, init_params("vae", vae, jax.random.key(0))


def test_cast_matmul_weights_casts_kernels_only():
  vae, params = _vae_and_params()
  cast = precision.cast_matmul_weights(params, "bfloat16")
  flat = jax.tree_util.tree_flatten_with_path(cast)[0]
  kernels = [leaf for path, leaf in flat if path[-1].key == "kernel"]
  others = [leaf for path, leaf in flat if path[-1].key != "kernel"]
  assert kernels and others
  assert all(k.dtype == jnp.bfloat16 for k in kernels)
  assert all(o.dtype == jnp.float32 for o in others)  # biases, LayerNorm, position tables, tokens
  assert precision.cast_matmul_weights(params, "float32") is params
  with pytest.raises(ConfigError, match="float16"):
    precision.cast_matmul_weights(params, "float16")


def test_matmul_casts_operands_and_accumulates_float32():
  x = jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4) + 1e-3
  w = jnp.linspace(0.5, 2.0, 8, dtype=jnp.float32).reshape(4, 2)
  out = layers.matmul("ij,jk->ik", x, w.astype(jnp.bfloat16), dtype=jnp.bfloat16)
  assert out.dtype == jnp.float32
  expected = np.asarray(x.astype(jnp.bfloat16), np.float32) @ np.asarray(w.astype(jnp.bfloat16),
                                                                         np.float32)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)
  jaxpr = jax.make_jaxpr(lambda a, b: layers.matmul("ij,jk->ik", a, b, dtype=jnp.bfloat16))(x, w)
  dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
  assert [v.aval.dtype for v in dots[0].invars] == [jnp.bfloat16, jnp.bfloat16]
  assert dots[0].outvars[0].aval.dtype == jnp.float32
  # float32 weights: a plain float32 matmul, unchanged numerics.
  np.testing.assert_array_equal(layers.matmul("ij,jk->ik", x, w, dtype=jnp.float32), x @ w)


def test_bfloat16_modules_stay_close_to_float32_and_output_float32():
  vae, params = _vae_and_params()
  fast = precision.cast_matmul_weights(params, "bfloat16")
  rng = np.random.default_rng(0)
  features = jnp.asarray(rng.normal(size=(2, 24, 263)), jnp.float32)
  mask = jnp.arange(24)[None] < jnp.array([[24], [17]])
  z32 = vae.apply({"params": params}, features, mask, method=MotionVAE.encode)[1]
  z16 = vae.apply({"params": fast}, features, mask, method=MotionVAE.encode)[1]
  rec32 = vae.apply({"params": params}, z32, mask, method=MotionVAE.decode)
  rec16 = vae.apply({"params": fast}, z32, mask, method=MotionVAE.decode)
  assert z16.dtype == rec16.dtype == jnp.float32
  # bfloat16 keeps 8 significant bits: relative deviation of the order of 1e-2, not more.
  for a, b in ((z32, z16), (rec32, rec16)):
    rel = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
    assert 1e-5 < rel < 3e-2, rel
  np.testing.assert_array_equal(np.asarray(rec16)[1, 17:], 0.0)  # masks unaffected

  den = LatentDenoiser(text_dim=16, latent_dim=32, ff_size=64, num_layers=3)
  dparams = init_params("denoiser", den, jax.random.key(1))
  z, t, text = z32, jnp.array([10, 900]), jnp.asarray(rng.normal(size=(2, 16)), jnp.float32)
  e32 = den.apply({"params": dparams}, z, t, text)
  e16 = den.apply({"params": precision.cast_matmul_weights(dparams, "bfloat16")}, z, t, text)
  assert e16.dtype == jnp.float32
  assert float(jnp.linalg.norm(e32 - e16) / jnp.linalg.norm(e32)) < 3e-2

  proj = Projector(text_dim=16, latent_dim=32)
  pparams = init_params("projector", proj, jax.random.key(2))
  p16 = proj.apply({"params": precision.cast_matmul_weights(pparams, "bfloat16")}, z,
                   method=Projector.encode)
  p32 = proj.apply({"params": pparams}, z, method=Projector.encode)
  assert p16.dtype == jnp.float32
  assert float(jnp.linalg.norm(p32 - p16) / jnp.linalg.norm(p32)) < 3e-2


def test_compiler_options_only_for_float32_on_cpu():
  assert precision.compiler_options("bfloat16", "cpu") is None
  assert precision.compiler_options("float32", "gpu") is None
  option = "xla_cpu_experimental_ynn_fusion_type"
  expected = {option: ""} if precision._option_supported(option, "") else None  # pylint: disable=protected-access
  assert precision.compiler_options("float32", "cpu") == expected
  assert not precision._option_supported(option, "not-a-fusion-type")  # pylint: disable=protected-access
  with pytest.raises(ConfigError, match="matmul dtype"):
    precision.compiler_options("int8", "cpu")


def test_command_line_choices_are_the_supported_dtypes():
  from lead_jax.commands import pipeline_args  # pylint: disable=import-outside-toplevel
  assert pipeline_args.MATMUL_DTYPES == tuple(precision.MATMUL_DTYPES)
