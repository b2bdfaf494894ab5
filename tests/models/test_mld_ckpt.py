"""MLD checkpoint import: parity with the PyTorch re-statement through a fake `.ckpt`, strictness."""

import jax.numpy as jnp
import numpy as np
import pytest

from lead_jax.convert.mld_ckpt import load_mld_checkpoint, state_dict_to_params
from lead_jax.errors import MissingFileError, WeightsError
from lead_jax.models import LatentDenoiser, MotionVAE

torch = pytest.importorskip("torch")
from benchmarks.torch_reference import MLDModel  # noqa: E402


def _randomised(model):
  """Perturb every parameter (biases and norms too) so a wrong mapping cannot hide."""
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.05 * torch.randn(p.shape, generator=gen))
  return model.eval()


def _parity(model, vae_params, den_params, nfeats, text_dim, batch=2, frames=16, kwargs=None):
  kwargs = kwargs or {}
  gen = torch.Generator().manual_seed(1)
  feats = torch.randn(batch, frames, nfeats, generator=gen)
  lengths = torch.tensor([frames, frames // 2 + 1][:batch])
  z_t, text = torch.randn(batch, 1, model.vae.latent_dim, generator=gen), torch.randn(batch, 1, text_dim, generator=gen)
  t = torch.tensor([3, 977][:batch])
  with torch.no_grad():
    _, mu, logvar = model.vae.encode(feats, lengths, sample=False)
    recon = model.vae.decode(mu, lengths, frames)
    eps = model.denoiser(z_t, t, text)
  mask = jnp.asarray(np.arange(frames)[None] < lengths.numpy()[:, None])
  vae = MotionVAE(nfeats=nfeats, **kwargs)
  _, mu2, logvar2 = vae.apply({"params": vae_params}, jnp.asarray(feats.numpy()), mask, method=MotionVAE.encode)
  recon2 = vae.apply({"params": vae_params}, mu2, mask, method=MotionVAE.decode)
  eps2 = LatentDenoiser(text_dim=text_dim, **kwargs).apply(
      {"params": den_params}, jnp.asarray(z_t.numpy()), jnp.asarray(t.numpy()), jnp.asarray(text.numpy()[:, 0]))
  np.testing.assert_allclose(np.asarray(mu2)[:, 0], mu.numpy()[0], atol=1e-4)
  np.testing.assert_allclose(np.asarray(logvar2)[:, 0], logvar.numpy()[0], atol=1e-4)
  np.testing.assert_allclose(np.asarray(recon2), recon.numpy(), atol=1e-4)
  np.testing.assert_allclose(np.asarray(eps2), eps.numpy(), atol=1e-4)


def test_full_size_checkpoint_parity(tmp_path):
  model = _randomised(MLDModel(263, 768))
  state = dict(model.state_dict())
  state["text_encoder.text_model.embeddings.token_embedding.weight"] = torch.zeros(3, 4)  # dropped
  state["t2m_textencoder.input_emb.weight"] = torch.zeros(2, 2)  # dropped
  path = tmp_path / "mld.ckpt"
  torch.save({"state_dict": state, "epoch": 3}, path)
  vae_params, den_params = load_mld_checkpoint(path)
  assert "mem_pos" not in den_params
  _parity(model, vae_params, den_params, 263, 768)


SMALL = dict(d=32, ff=64, num_layers=3, heads=4)
SMALL_FLAX = dict(latent_dim=32, ff_size=64, num_layers=3, num_heads=4)


def test_small_minilm_width_parity_and_vae_only_checkpoint():
  model = _randomised(MLDModel(12, 384, **SMALL))
  vae_params, den_params = state_dict_to_params(model.state_dict())
  _parity(model, vae_params, den_params, 12, 384, batch=2, frames=7, kwargs=SMALL_FLAX)
  vae_only = {k: v for k, v in model.state_dict().items() if k.startswith("vae.")}
  vae2, den2 = state_dict_to_params(vae_only)
  assert den2 is None
  np.testing.assert_array_equal(vae2["skel_embedding"]["kernel"], vae_params["skel_embedding"]["kernel"])


def test_missing_mis_shaped_and_unexpected_keys_raise():
  state = dict(MLDModel(12, 384, **SMALL).state_dict())
  missing = dict(state)
  del missing["vae.encoder.middle_block.norm2.bias"]
  with pytest.raises(WeightsError, match="missing vae parameters: encoder/middle_block/norm2/bias"):
    state_dict_to_params(missing)
  bad = dict(state)
  bad["denoiser.encoder.linear_blocks.0.weight"] = torch.zeros(32, 63)
  with pytest.raises(WeightsError, match=r"denoiser.encoder.linear_blocks.0.weight: expected \(64, 32\)"):
    state_dict_to_params(bad)
  extra = dict(state)
  extra["vae.encoder.spare.weight"] = torch.zeros(2, 2)
  with pytest.raises(WeightsError, match="unexpected keys: vae.encoder.spare.weight"):
    state_dict_to_params(extra)
  other = dict(state)
  other["optimizer.step"] = torch.zeros(1)
  with pytest.raises(WeightsError, match="optimizer.step"):
    state_dict_to_params(other)


def test_missing_file_and_non_checkpoint(tmp_path):
  with pytest.raises(MissingFileError):
    load_mld_checkpoint(tmp_path / "nope.ckpt")
  junk = tmp_path / "junk.ckpt"
  junk.write_bytes(b"not a checkpoint")
  with pytest.raises(WeightsError, match="junk.ckpt"):
    load_mld_checkpoint(junk)
