"""CLIP text tower: parity with transformers' torch CLIP, first-EOS pooling, tokenizers, params."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hf_test_models import perturb_, save_clip_dir
from lead_jax.errors import ConfigError, InputError, MissingFileError, WeightsError
from lead_jax.text import TokenBatch, load_text_encoder
from lead_jax.text import clip, hf_weights

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PROMPTS = ["a person walks forward", "the man dances", "", "xyz walks! 42 " * 4]


def _torch_outputs(model, ids: np.ndarray):
  with torch.no_grad():
    out = model(input_ids=torch.as_tensor(ids, dtype=torch.long))
  return out.text_embeds.numpy(), out.last_hidden_state.numpy()


def test_pooled_and_tokens_match_torch(tiny_clip):
  directory, model, _ = tiny_clip
  encoder = load_text_encoder("clip", directory)
  batch = encoder.tokenize(PROMPTS)
  assert batch.ids.shape == (4, 16) and batch.ids.dtype == np.int32
  # Padding (end-of-text ids) follows the first EOS; the long prompt is truncated to 14 pieces + EOS.
  eos = encoder.eos_token_id
  assert batch.eos_index.tolist()[3] == 15 and batch.ids[3, 15] == eos
  assert (batch.ids[2, 1:] == eos).all() and batch.eos_index[2] == 1
  assert batch.attention_mask.sum(1).tolist() == (batch.eos_index + 1).tolist()
  want_pooled, want_tokens = _torch_outputs(model, batch.ids)
  np.testing.assert_allclose(encoder.encode(PROMPTS), want_pooled, atol=1e-4, rtol=0)
  emb = encoder.embed_tokens(encoder.params, batch.ids)
  pooled, tokens = jax.jit(encoder.encode_embeddings)(encoder.params, emb, batch)
  assert pooled.shape == (4, 24) and tokens.shape == (4, 16, 32)
  np.testing.assert_allclose(pooled, want_pooled, atol=1e-4, rtol=0)
  np.testing.assert_allclose(tokens, want_tokens, atol=1e-4, rtol=0)  # padding states included
  assert (encoder.embed_dim, encoder.token_dim, encoder.vocab_size) == (24, 32, len(encoder.tokenizer))
  assert encoder.name == "clip"


def test_bin_and_sharded_weights_give_same_params(tiny_clip, tmp_path):
  directory, model, tokenizer = tiny_clip
  reference = load_text_encoder("clip", directory)
  for kind in ("bin", "sharded"):
    other_dir = save_clip_dir(tmp_path / kind, model, tokenizer, weights=kind)
    expected_file = {"bin": "pytorch_model.bin", "sharded": "model.safetensors.index.json"}[kind]
    assert hf_weights.find_weight_file(other_dir).name == expected_file
    other = load_text_encoder("clip", other_dir)
    jax.tree.map(np.testing.assert_array_equal, other.params, reference.params)
  assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1


def test_full_clip_model_directory_uses_text_tower(tiny_clip, tmp_path):
  _, text_model, tokenizer = tiny_clip
  vision = dict(hidden_size=16, intermediate_size=20, num_hidden_layers=1, num_attention_heads=2,
                image_size=8, patch_size=4)
  config = transformers.CLIPConfig(text_config=text_model.config.to_dict(), vision_config=vision,
                                   projection_dim=24)
  model = transformers.CLIPModel(config).eval()
  perturb_(model, seed=3)
  save_clip_dir(tmp_path / "full", model, tokenizer)
  encoder = load_text_encoder("clip", tmp_path / "full")
  ids = torch.as_tensor(encoder.tokenize(PROMPTS).ids, dtype=torch.long)
  with torch.no_grad():
    features = model.get_text_features(input_ids=ids)
  features = getattr(features, "pooler_output", features).numpy()
  np.testing.assert_allclose(encoder.encode(PROMPTS), features, atol=1e-4, rtol=0)


def test_placeholder_token_pools_at_first_eos_not_argmax(tiny_clip):
  directory, model, _ = tiny_clip
  encoder = load_text_encoder("clip", directory)
  extra = encoder.new_tokens(["<dance-x>"], initializer="dances")
  new_id = encoder.vocab_size
  assert new_id > encoder.eos_token_id
  prompts = ["the man <dance-x>", "a person walks"]
  batch = encoder.tokenize(prompts, extra)
  assert (batch.ids[0] == new_id).sum() == 1
  # Argmax pooling (HF's rule for legacy configs) would pick the placeholder, not the end token.
  assert batch.ids.argmax(axis=1)[0] != batch.eos_index[0]
  assert batch.ids[0, batch.eos_index[0]] == encoder.eos_token_id
  # Torch with the same extra row: its first-EOS config agrees with us...
  model = transformers.CLIPTextModelWithProjection.from_pretrained(directory).eval()  # a copy
  model.resize_token_embeddings(new_id + 1)
  with torch.no_grad():
    model.text_model.embeddings.token_embedding.weight[new_id] = torch.as_tensor(
        extra.embedding("<dance-x>"))
  want_pooled, want_tokens = _torch_outputs(model, batch.ids)
  ours = encoder.encode(prompts, extra)
  np.testing.assert_allclose(ours, want_pooled, atol=1e-4, rtol=0)
  manual = want_tokens[np.arange(2), batch.eos_index] @ model.text_projection.weight.detach().numpy().T
  np.testing.assert_allclose(ours, manual, atol=1e-4, rtol=0)
  # ...while the legacy rule (eos_token_id == 2 -> argmax) gives a different feature for row 0.
  model.text_model.eos_token_id = 2
  legacy, _ = _torch_outputs(model, batch.ids)
  assert np.abs(legacy[0] - ours[0]).max() > 1e-2
  np.testing.assert_allclose(legacy[1], ours[1], atol=1e-4, rtol=0)


def test_embedding_swap_equals_set_token_embedding(tiny_clip):
  directory, _, _ = tiny_clip
  encoder = load_text_encoder("clip", directory)
  extra = encoder.new_tokens(["<walk-y>"])
  new_id = encoder.vocab_size
  np.testing.assert_allclose(extra.embedding("<walk-y>"),
                             np.asarray(encoder.params["token_embedding"]["embedding"]).mean(0),
                             atol=1e-6)
  prompts = ["a person <walk-y> forward", "the man dances"]
  before = encoder.encode(prompts, extra)
  vector = np.random.default_rng(0).normal(size=encoder.token_dim).astype(np.float32)
  # Inversion-style: swap the placeholder row of embed_tokens' output with jnp.where.
  batch = encoder.tokenize(prompts, extra)
  emb = encoder.embed_tokens(encoder.params, batch.ids, extra.embeddings)
  swapped = jnp.where((batch.ids == new_id)[..., None], vector, emb)
  pooled_swapped, _ = jax.jit(encoder.encode_embeddings)(encoder.params, swapped, batch)
  learnt = extra.replace("<walk-y>", vector)
  after = encoder.encode(prompts, learnt)
  np.testing.assert_allclose(after, pooled_swapped, atol=1e-5, rtol=0)
  assert np.abs(after[0] - before[0]).max() > 1e-3  # the prompt with the token changed
  np.testing.assert_allclose(after[1], before[1], atol=1e-6)  # the other did not
  np.testing.assert_array_equal(extra.embedding("<walk-y>"),
                                np.asarray(encoder.params["token_embedding"]["embedding"]).mean(0))
  # The gradient w.r.t. the extra rows is what textual inversion trains.
  def loss(rows):
    e = encoder.embed_tokens(encoder.params, batch.ids, rows)
    return jnp.sum(encoder.encode_embeddings(encoder.params, e, batch)[0][0] ** 2)
  grad = jax.jit(jax.grad(loss))(jnp.asarray(extra.embeddings))
  assert grad.shape == (1, encoder.token_dim) and float(jnp.abs(grad).max()) > 0
  with pytest.raises(InputError, match="already"):
    encoder.new_tokens(["<walk-y>"], extra=extra)
  with pytest.raises(InputError, match="already"):
    encoder.new_tokens(["the</w>"])
  with pytest.raises(InputError, match="expected shape"):
    extra.replace("<walk-y>", vector[:3])
  with pytest.raises(InputError, match="not a placeholder"):
    extra.embedding("the</w>")


def test_encode_batches_and_trimming_agree(tiny_clip):
  directory, _, _ = tiny_clip
  encoder = load_text_encoder("clip", directory)
  prompts = [f"a person walks {'forward ' * (i % 4)}" for i in range(7)]
  full = encoder.encode(prompts)
  batch = encoder.tokenize(prompts)  # full length 16, no trimming
  direct, _ = jax.jit(encoder.encode_embeddings)(
      encoder.params, encoder.embed_tokens(encoder.params, batch.ids), batch)
  np.testing.assert_allclose(encoder.encode(prompts, batch_size=2), full, atol=1e-5, rtol=0)
  np.testing.assert_allclose(direct, full, atol=1e-5, rtol=0)
  assert encoder.encode([]).shape == (0, 24)
  with pytest.raises(InputError, match="list of strings"):
    encoder.encode("a person walks")


def test_missing_and_wrong_weights_raise(tiny_clip, tiny_bert, tmp_path):
  directory, model, tokenizer = tiny_clip
  with pytest.raises(MissingFileError, match="does not exist"):
    load_text_encoder("clip", tmp_path / "nowhere")
  with pytest.raises(MissingFileError, match="model directory"):
    load_text_encoder("clip")
  with pytest.raises(ConfigError, match="unknown"):
    load_text_encoder("t5")
  (tmp_path / "noconfig").mkdir()
  with pytest.raises(MissingFileError, match="config.json"):
    load_text_encoder("clip", tmp_path / "noconfig")
  no_weights = tmp_path / "noweights"
  model.config.save_pretrained(no_weights)
  with pytest.raises(WeightsError, match="no weight file.*model.safetensors"):
    load_text_encoder("clip", no_weights)

  state = {k: v.clone() for k, v in model.state_dict().items()}
  missing = dict(state)
  del missing["text_model.encoder.layers.1.mlp.fc2.bias"]
  _write_bin(tmp_path / "missing", model, tokenizer, missing)
  with pytest.raises(WeightsError, match=r"missing tensor.*text_model\.encoder\.layers\.1\.mlp\.fc2\.bias \[32\]"):
    load_text_encoder("clip", tmp_path / "missing")

  wrong = dict(state)
  wrong["text_projection.weight"] = torch.zeros(20, 32)
  _write_bin(tmp_path / "wrong", model, tokenizer, wrong)
  with pytest.raises(WeightsError, match=r"text_projection\.weight: expected \[24, 32\], found \[20, 32\]"):
    load_text_encoder("clip", tmp_path / "wrong")

  extra = dict(state)
  extra["text_model.encoder.layers.2.mlp.fc1.bias"] = torch.zeros(37)
  _write_bin(tmp_path / "extra", model, tokenizer, extra)
  with pytest.raises(WeightsError, match=r"unexpected tensor.*layers\.2\.mlp\.fc1\.bias"):
    load_text_encoder("clip", tmp_path / "extra")

  bert_dir, _, _ = tiny_bert
  with pytest.raises(WeightsError, match="model_type 'bert'.*not a CLIP"):
    load_text_encoder("clip", bert_dir)
  # A CLIP config over BERT weights: every tensor is reported missing or unexpected.
  mixed = tmp_path / "mixed"
  model.config.save_pretrained(mixed)
  (mixed / "model.safetensors").write_bytes((bert_dir / "model.safetensors").read_bytes())
  with pytest.raises(WeightsError, match=r"missing tensor.*unexpected tensor.*embeddings\.word_embeddings"):
    load_text_encoder("clip", mixed)

  no_tokenizer = tmp_path / "notok"
  model.save_pretrained(no_tokenizer)
  with pytest.raises(MissingFileError, match="bpe_path"):
    load_text_encoder("clip", no_tokenizer)


def _write_bin(directory: pathlib.Path, model, tokenizer, state) -> None:
  directory.mkdir()
  model.config.save_pretrained(directory)
  tokenizer.save_pretrained(directory)
  torch.save(state, directory / "pytorch_model.bin")


def test_weights_without_tokenizer_use_bpe_file(tiny_clip, tiny_bpe_file, tmp_path):
  directory, model, _ = tiny_clip
  model.save_pretrained(tmp_path / "weights_only")
  encoder = load_text_encoder("clip", tmp_path / "weights_only", bpe_path=tiny_bpe_file)
  reference = load_text_encoder("clip", directory)
  np.testing.assert_array_equal(encoder.tokenize(PROMPTS).ids, reference.tokenize(PROMPTS).ids)
  np.testing.assert_allclose(encoder.encode(PROMPTS), reference.encode(PROMPTS), atol=1e-6)


def test_tiny_bpe_tokenizer_merges(tiny_bpe_file):
  tokenizer = clip.clip_tokenizer_from_bpe(tiny_bpe_file)
  vocab, merges = clip.clip_vocabulary(tiny_bpe_file)
  assert len(tokenizer) == len(vocab) == 512 + len(merges) + 2
  pieces = tokenizer.convert_ids_to_tokens(tokenizer("A person walks  FORWARD.")["input_ids"])
  assert pieces == ["<|startoftext|>", "a</w>", "person</w>", "walks</w>", "forward</w>", ".</w>",
                    "<|endoftext|>"]


# -- the real CLIP vocabulary ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_bpe(shared_data) -> pathlib.Path:
  path = shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz"
  if not path.is_file():
    pytest.skip(f"{path} not found")
  return path


def test_real_bpe_tokenizer_golden_ids(real_bpe):
  tokenizer = clip.clip_tokenizer_from_bpe(real_bpe)
  assert len(tokenizer) == 49408
  assert tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>", "!", "a</w>"]) == [
      49406, 49407, 0, 320]
  assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
  assert tokenizer("a photo of a dog")["input_ids"][-2] == 1929


def test_real_bpe_tokenizer_matches_hf_from_vocab_files(real_bpe, tmp_path):
  vocab, merges = clip.clip_vocabulary(real_bpe)
  (tmp_path / "vocab.json").write_text(json.dumps(vocab))
  (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges))
  hf = transformers.CLIPTokenizer.from_pretrained(str(tmp_path))
  ours = clip.clip_tokenizer_from_bpe(real_bpe)
  texts = ["a person walks forward", "Someone's  jumping\tover   the fence!!", "It's 2024, isn't it?",
           "a man performs a cartwheel, then bows.", "café crème — naïve", "UPPER lower MiXeD",
           "a robot <*> slowly", "x" * 90, "the sim moonwalks backwards 3 times"]
  for text in texts:
    assert ours(text)["input_ids"] == hf(text)["input_ids"], text
  kwargs = dict(padding="max_length", truncation=True, max_length=77, return_tensors="np")
  np.testing.assert_array_equal(ours(texts, **kwargs)["input_ids"], hf(texts, **kwargs)["input_ids"])
  long_ids = ours(" ".join(["walk"] * 100), **kwargs)["input_ids"][0]
  assert long_ids[0] == 49406 and long_ids[-1] == 49407 and (long_ids[1:-1] != 49407).all()


def test_real_bpe_placeholder_gets_id_49408(real_bpe):
  tokenizer = clip.clip_tokenizer_from_bpe(real_bpe)
  tokenizer.add_tokens(["<dance-x>"])
  ids = tokenizer("someone <dance-x>.")["input_ids"]
  assert 49408 in ids and ids.count(49408) == 1
  assert int(np.argmax(ids)) == ids.index(49408) != ids.index(49407)  # the argmax pitfall


def test_vit_l14_parameter_count():
  params = clip.abstract_params(clip.CLIPTextConfig())
  assert hf_weights.count_params(params) == 123_650_304
  assert hf_weights.count_params({"text_projection": params["text_projection"]}) == 589_824
  assert params["token_embedding"]["embedding"].shape == (49408, 768)
  assert params["layers_11"]["fc1"]["kernel"].shape == (768, 3072)


def test_hf_key_names():
  assert clip.hf_key(("layers_3", "self_attn", "q_proj", "kernel")) == (
      "text_model.encoder.layers.3.self_attn.q_proj.weight", True)
  assert clip.hf_key(("layers_0", "fc2", "bias")) == ("text_model.encoder.layers.0.mlp.fc2.bias", False)
  assert clip.hf_key(("final_layer_norm", "scale")) == ("text_model.final_layer_norm.weight", False)
  assert clip.hf_key(("position_embedding", "embedding")) == (
      "text_model.embeddings.position_embedding.weight", False)


def test_token_batch_is_a_pytree():
  batch = TokenBatch(ids=np.zeros((2, 3), np.int32), attention_mask=np.ones((2, 3), np.int32),
                     eos_index=np.array([2, 1], np.int32))
  leaves = jax.tree.leaves(batch)
  assert len(leaves) == 3 and batch.shape == (2, 3)
  assert jax.jit(lambda b: b.ids.sum() + b.eos_index.sum())(batch) == 3
