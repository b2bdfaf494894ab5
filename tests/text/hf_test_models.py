"""Tiny random Hugging Face CLIP / BERT models saved to disk, and helpers, for the text tests."""

import gzip
import json
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# A tiny CLIP BPE vocabulary in the format of bpe_simple_vocab_16e6.txt.gz: a version line, then
# merges. The words it covers become single tokens; everything else falls back to bytes.
TINY_MERGES = [
    "p e", "pe r", "s o", "so n</w>", "per son</w>", "w a", "l k", "wa lk", "walk s</w>",
    "t h", "th e</w>", "m a", "ma n</w>", "d a", "n c", "da nc", "e s</w>", "danc es</w>",
    "f o", "fo r", "r d</w>", "wa rd</w>", "for ward</w>",
]


def perturb_(model, scale: float = 0.2, seed: int = 0) -> None:
  """Adds noise to every parameter so LayerNorm scales/biases are not the trivial 1/0."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(scale * torch.randn(p.shape, generator=generator))


@pytest.fixture(scope="session")
def tiny_bpe_file(tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp("bpe") / "tiny_bpe.txt.gz"
  with gzip.open(path, "wt", encoding="utf-8") as f:
    f.write("#version: 0.2\n" + "\n".join(TINY_MERGES) + "\n")
  return path


def save_clip_dir(directory: pathlib.Path, model, tokenizer, weights: str = "safetensors") -> pathlib.Path:
  """Writes config.json + weights ("safetensors", "bin" or "sharded") + tokenizer files."""
  directory.mkdir(parents=True, exist_ok=True)
  if weights == "bin":
    model.config.save_pretrained(directory)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
  elif weights == "sharded":
    model.save_pretrained(directory, max_shard_size="40KB")
  else:
    model.save_pretrained(directory)
  if tokenizer is not None:
    tokenizer.save_pretrained(directory)
  return directory


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory, tiny_bpe_file):
  """(directory, torch CLIPTextModelWithProjection, tokenizer) with a first-EOS config."""
  from lead_jax.text.clip import clip_tokenizer_from_bpe
  tokenizer = clip_tokenizer_from_bpe(tiny_bpe_file, max_length=16)
  config = transformers.CLIPTextConfig(
      vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
      num_attention_heads=4, max_position_embeddings=16, projection_dim=24,
      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
      pad_token_id=tokenizer.pad_token_id)
  torch.manual_seed(0)
  model = transformers.CLIPTextModelWithProjection(config).eval()
  perturb_(model)
  directory = save_clip_dir(tmp_path_factory.mktemp("clip") / "tiny", model, tokenizer)
  return directory, model, tokenizer


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
  """(directory, torch BertModel, tokenizer) with a small word-level vocabulary."""
  words = ["a", "person", "walks", "forward", "someone", "is", "walking", "the", "man", "dances",
           "jumps", "slowly", "##s", "##ing", "."]
  vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
  tokenizer = transformers.BertTokenizer(vocab=vocab, model_max_length=32)
  config = transformers.BertConfig(
      vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
      num_attention_heads=4, max_position_embeddings=32, type_vocab_size=2)
  torch.manual_seed(1)
  model = transformers.BertModel(config).eval()
  perturb_(model, seed=1)
  directory = tmp_path_factory.mktemp("bert") / "tiny"
  model.save_pretrained(directory)
  tokenizer.save_pretrained(directory)
  (directory / "modules.json").write_text(json.dumps([
      {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
      {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
      {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
  ]))
  (directory / "1_Pooling").mkdir()
  (directory / "1_Pooling" / "config.json").write_text(json.dumps(
      {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
  return directory, model, tokenizer


def torch_mean_pool(model, tokenizer, texts, normalize=True) -> np.ndarray:
  """sentence-transformers pipeline in torch: BertModel -> masked mean -> L2 normalise."""
  batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
  with torch.no_grad():
    hidden = model(**batch).last_hidden_state
  weights = batch["attention_mask"][..., None].float()
  pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
  if normalize:
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
  return pooled.numpy()
