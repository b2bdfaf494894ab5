"""T2M evaluator port: GRU parity with torch.nn.GRU, full-network parity through the importer."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn as tnn
from torch.nn.utils.rnn import pack_padded_sequence

from benchmarks import torch_reference
from lead_jax.convert import t2m_ckpt
from lead_jax.errors import InputError, MissingFileError, WeightsError
from lead_jax.metrics import t2m_evaluator as te


def _torch_bigru_final(gru, x, lengths, h0):
  packed = pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=True,
                                enforce_sorted=False)
  _, h_n = gru(packed, h0)
  return torch.cat([h_n[0], h_n[1]], -1).detach().numpy()


def _bigru_params(gru, hidden):
  sd = {k: v for k, v in gru.state_dict().items()}
  sd = {f"gru.{k}": v.numpy() for k, v in sd.items()}
  sd["hidden"] = hidden.numpy()
  flat = dict(t2m_ckpt._to_flax(k, v) for k, v in sd.items())
  return {k[1]: v for k, v in flat.items()}


@pytest.mark.parametrize("in_dim,hid", [(6, 7), (16, 32)])
def test_bigru_matches_torch_packed(in_dim, hid):
  torch.manual_seed(0)
  gru = tnn.GRU(in_dim, hid, batch_first=True, bidirectional=True)
  x = torch.randn(5, 9, in_dim)
  lengths = [9, 1, 4, 7, 2]
  hidden = torch.randn(2, 1, hid)
  want = _torch_bigru_final(gru, x, lengths, hidden.repeat(1, 5, 1))
  x_pad = x.clone()
  for b, n in enumerate(lengths):            # garbage in the padding must not matter
    x_pad[b, n:] = 1e3
  params = _bigru_params(gru, hidden)
  got = te.BiGRU(hid).apply({"params": params}, jnp.asarray(x_pad.numpy()),
                            jnp.asarray(lengths))
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def torch_evaluator():
  return torch_reference.t2m_evaluator(263, seed=1)


@pytest.fixture(scope="module")
def fake_finest(torch_evaluator, tmp_path_factory):
  path = tmp_path_factory.mktemp("t2m") / "finest.tar"
  ckpt = {k: v.state_dict() for k, v in torch_evaluator.items()}
  ckpt["epoch"] = 28
  torch.save(ckpt, path)
  return path


def test_parameter_counts():
  params = te.init_params(jax.random.key(0))
  assert te.count_params(params["text"]) == 4_100_288
  assert te.count_params(params["movement"]) == 1_842_688
  assert te.count_params(params["motion"]) == 15_747_584


def test_full_evaluator_matches_torch(torch_evaluator, fake_finest):
  params = t2m_ckpt.load_t2m_checkpoint(fake_finest)
  rng = np.random.default_rng(0)
  lengths = [46, 64, 41]                      # frames; padded batch of 64
  feats = rng.normal(size=(3, 64, 263)).astype(np.float32)
  for b, n in enumerate(lengths):
    feats[b, n:] = 0.0
  want = []
  with torch.no_grad():
    for b, n in enumerate(lengths):            # batch-size-1 evaluation, as MLD's test loop
      mov = torch_evaluator["movement_encoder"](torch.as_tensor(feats[b:b + 1, :n, :-4]))
      want.append(torch_evaluator["motion_encoder"](mov, [n // 4]).numpy())
  got = te.motion_embeddings(params, jnp.asarray(feats), jnp.asarray(lengths))
  np.testing.assert_allclose(np.asarray(got), np.concatenate(want), atol=2e-5, rtol=1e-4)

  words = rng.normal(size=(4, 22, 300)).astype(np.float32)
  pos = np.eye(15, dtype=np.float32)[rng.integers(0, 15, size=(4, 22))]
  sent = [22, 5, 12, 3]
  with torch.no_grad():
    want = torch_evaluator["text_encoder"](torch.as_tensor(words), sent,
                                           torch.as_tensor(pos)).numpy()
  got = te.text_embeddings(params, jnp.asarray(words), jnp.asarray(pos), jnp.asarray(sent))
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-5, rtol=1e-4)


def test_importer_is_strict(torch_evaluator, tmp_path):
  ckpt = {k: dict(v.state_dict()) for k, v in torch_evaluator.items()}
  del ckpt["motion_encoder"]["hidden"]
  ckpt["text_encoder"]["extra.weight"] = torch.zeros(2)
  ckpt["movement_encoder"]["out_net.bias"] = torch.zeros(511)
  with pytest.raises(WeightsError) as e:
    t2m_ckpt.state_dicts_to_params(ckpt)
  msg = str(e.value)
  assert "missing motion_encoder.hidden (2, 1, 1024)" in msg
  assert "unexpected text_encoder.extra.weight" in msg
  assert "movement_encoder.out_net.bias: expected shape (512,), found (511,)" in msg
  with pytest.raises(WeightsError, match="lacks"):
    t2m_ckpt.state_dicts_to_params({"text_encoder": {}})
  with pytest.raises(MissingFileError, match="download_t2m_evaluators.sh"):
    t2m_ckpt.load_t2m_checkpoint(tmp_path / "finest.tar")
  (tmp_path / "junk.tar").write_bytes(b"not a checkpoint")
  with pytest.raises(WeightsError, match="junk.tar"):
    t2m_ckpt.load_t2m_checkpoint(tmp_path / "junk.tar")


def test_evaluator_refuses_other_width_and_renormalises(humanml3d_dir):
  params = te.init_params(jax.random.key(1))
  mean, std = t2m_ckpt.load_eval_stats(humanml3d_dir / "evaluator_norm/t2m_mean.npy",
                                       humanml3d_dir / "evaluator_norm/t2m_std.npy")
  ev = te.T2MEvaluator(params, mean, std)
  assert ev.dim_pose == 263
  with pytest.raises(InputError, match="width 263"):
    ev.motion_embeddings(np.zeros((1, 40, 251), np.float32), [40])
  with pytest.raises(InputError, match="lengths"):
    ev.motion_embeddings(np.zeros((1, 40, 263), np.float32), [41])
  x = np.load(humanml3d_dir / "new_joint_vecs/012314.npy")[None].astype(np.float32)
  ds_mean, ds_std = np.load(humanml3d_dir / "Mean.npy"), np.load(humanml3d_dir / "Std.npy")
  got = ev.to_eval_space((x - ds_mean) / ds_std, ds_mean, ds_std)
  np.testing.assert_allclose(got, (x - mean) / std, atol=1e-3, rtol=1e-4)
  # The evaluator's root/foot-contact std are the dataset's divided by 5 (reference 7.4).
  assert not np.allclose(std, ds_std)
  emb = ev.motion_embeddings(got, [x.shape[1] - 1])
  assert emb.shape == (1, 512) and np.all(np.isfinite(emb))


def _fake_glove(tmp_path, words):
  vecs = np.arange(len(words) * 300, dtype=np.float32).reshape(len(words), 300)
  np.save(tmp_path / "our_vab_data.npy", vecs)
  with open(tmp_path / "our_vab_words.pkl", "wb") as f:
    pickle.dump(list(words), f)
  with open(tmp_path / "our_vab_idx.pkl", "wb") as f:
    pickle.dump({w: i for i, w in enumerate(words)}, f)
  return vecs


def test_word_vectorizer(tmp_path):
  words = ["sos", "eos", "unk", "a", "man", "walk", "left", "slowly"]
  vecs = _fake_glove(tmp_path, words)
  wv = t2m_ckpt.WordVectorizer(tmp_path)
  assert len(wv) == 8 and wv.dim == 300
  v, p = wv["walk/VERB"]
  np.testing.assert_array_equal(v, vecs[5])
  assert p.argmax() == t2m_ckpt.POS_ENUMERATOR["Act_VIP"] and p.sum() == 1
  assert wv["man/NOUN"][1].argmax() == 1
  assert wv["left/ADJ"][1].argmax() == 9 and wv["slowly/ADV"][1].argmax() == 13
  v, p = wv["zebra/NOUN"]
  np.testing.assert_array_equal(v, vecs[2])
  assert p.argmax() == 14
  w, p, n = wv.encode_tokens(["a/DET", "man/NOUN", "walk/VERB"])
  assert w.shape == (22, 300) and p.shape == (22, 15) and n == 5
  np.testing.assert_array_equal(w[[0, 1, 4, 5, 21]], vecs[[0, 3, 1, 2, 2]])
  _, _, n = wv.encode_tokens(["a/DET"] * 30)
  assert n == 22
  (tmp_path / "our_vab_idx.pkl").unlink()
  with pytest.raises(MissingFileError, match="our_vab_idx.pkl.*download_glove.sh"):
    t2m_ckpt.WordVectorizer(tmp_path)
