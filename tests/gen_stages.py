"""Helpers for the generation / inversion tests: tiny text encoders on disk and tiny stage workdirs
holding random parameters, saved with `lead_jax.checkpoints` exactly as the trainers save them.

  bert_dir = write_tiny_bert(tmp / "bert")
  stages = write_tiny_stages(tmp / "runs", text_encoder_path=bert_dir, text_dim=32)
  pipe = Pipeline.from_workdir(stages["projector"])
"""

from __future__ import annotations

import gzip
import json
import pathlib

import jax
import numpy as np

WORDS = ["a", "person", "walks", "walk", "forward", "someone", "is", "walking", "the", "man", "sim",
         "robot", "human", "somebody", "character", "figure", "dances", "jumps", "slowly", "wave",
         "##s", "##ing", "."]

TINY_MERGES = [
    "p e", "pe r", "s o", "so n</w>", "per son</w>", "w a", "l k", "wa lk", "walk s</w>",
    "t h", "th e</w>", "m a", "ma n</w>", "d a", "n c", "da nc", "e s</w>", "danc es</w>",
    "f o", "fo r", "r d</w>", "wa rd</w>", "for ward</w>", "l k</w>", "wa lk</w>",
]


def _perturb(model, scale: float = 0.2, seed: int = 0) -> None:
  import torch
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(scale * torch.randn(p.shape, generator=generator))


def write_tiny_bert(directory: pathlib.Path, hidden: int = 32) -> pathlib.Path:
  """A 2-layer BERT mean-pooling sentence encoder (MiniLM layout) of width `hidden`."""
  import torch
  import transformers
  vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
  tokenizer = transformers.BertTokenizer(vocab=vocab, model_max_length=32)
  config = transformers.BertConfig(
      vocab_size=len(vocab), hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
      num_attention_heads=4, max_position_embeddings=32, type_vocab_size=2)
  torch.manual_seed(1)
  model = transformers.BertModel(config).eval()
  _perturb(model, seed=1)
  directory.mkdir(parents=True, exist_ok=True)
  model.save_pretrained(directory)
  tokenizer.save_pretrained(directory)
  (directory / "modules.json").write_text(json.dumps([
      {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
      {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  ]))
  (directory / "1_Pooling").mkdir(exist_ok=True)
  (directory / "1_Pooling" / "config.json").write_text(json.dumps(
      {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True}))
  return directory


def write_tiny_clip(directory: pathlib.Path, projection_dim: int = 24) -> pathlib.Path:
  """A 2-layer CLIP text tower with projection and a tiny BPE tokenizer (16-token context)."""
  import torch
  import transformers
  from lead_jax.text.clip import clip_tokenizer_from_bpe
  directory.mkdir(parents=True, exist_ok=True)
  bpe = directory / "tiny_bpe.txt.gz"
  with gzip.open(bpe, "wt", encoding="utf-8") as f:
    f.write("#version: 0.2\n" + "\n".join(TINY_MERGES) + "\n")
  tokenizer = clip_tokenizer_from_bpe(bpe, max_length=16)
  config = transformers.CLIPTextConfig(
      vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
      num_attention_heads=4, max_position_embeddings=16, projection_dim=projection_dim,
      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
      pad_token_id=tokenizer.pad_token_id)
  torch.manual_seed(0)
  model = transformers.CLIPTextModelWithProjection(config).eval()
  _perturb(model)
  model.save_pretrained(directory)
  tokenizer.save_pretrained(directory)
  return directory


def write_stats(directory: pathlib.Path, dim: int = 263, seed: int = 0) -> pathlib.Path:
  """Mean.npy / Std.npy of width `dim` (random, Std in [0.5, 1.5])."""
  rng = np.random.default_rng(seed)
  directory.mkdir(parents=True, exist_ok=True)
  np.save(directory / "Mean.npy", (0.1 * rng.normal(size=dim)).astype(np.float32))
  np.save(directory / "Std.npy", rng.uniform(0.5, 1.5, size=dim).astype(np.float32))
  return directory


def random_params(shapes, seed: int, scale: float = 0.2):
  """Random parameters of the given `ShapeDtypeStruct` tree (NumPy, no compile): N(0, scale^2),
  LayerNorm scales around 1. Much faster here than `init_params` for tests."""
  rng = np.random.default_rng(seed)

  def leaf(path, x):
    noise = scale * rng.standard_normal(x.shape).astype(np.float32)
    return noise + 1.0 if jax.tree_util.keystr(path).endswith("['scale']") else noise

  return jax.tree_util.tree_map_with_path(leaf, shapes)


def write_tiny_stages(root: pathlib.Path, *, text_encoder_path: pathlib.Path, text_dim: int,
                      kind: str = "minilm", seed: int = 0, ema: bool = False) -> dict[str, pathlib.Path]:
  """VAE, denoiser and projector workdirs (tiny configs/test_*.py sizes, random parameters).

  The projector's config names the denoiser's and the VAE's workdirs (`dependencies`), as a
  trained projector stage does. With `ema`, each stage also saves `ema_params` (params + 0.01).
  Returns {'vae', 'denoiser', 'projector', 'data'} paths.
  """
  from configs import test_denoiser, test_projector, test_vae
  from lead_jax import checkpoints
  from lead_jax.models import abstract_params, build_models

  data = write_stats(root / "data")
  dirs = {name: root / name for name in ("vae", "denoiser", "projector")}
  configs = {"vae": test_vae.get_config(), "denoiser": test_denoiser.get_config(),
             "projector": test_projector.get_config()}
  for name, config in configs.items():
    config.text_encoder.kind = kind
    config.text_encoder.dim = text_dim
    config.data.dir = str(data)
    config.dependencies.text_encoder_path = str(text_encoder_path)
    if name != "vae":
      config.dependencies.vae_workdir = str(dirs["vae"])
    if name == "projector":
      config.dependencies.denoiser_workdir = str(dirs["denoiser"])
  for i, (name, config) in enumerate(configs.items()):
    module = build_models(config)[name]
    params = random_params(abstract_params(name, module), seed + i)
    arrays = {"params": params}
    if ema:
      arrays["ema_params"] = jax.tree.map(lambda x: x + 0.01, params)
    with checkpoints.Checkpointer(dirs[name]) as ckpt:
      ckpt.save(2, arrays, meta={}, config=config.to_dict())
  return {**dirs, "data": data}


def tiny_evaluator_config(data_dir: pathlib.Path):
  """`configs/evaluator_demo.py` shrunk to the tiny dataset of the evaluation tests (16-32 frames,
  batch 4, 16-wide GRUs, 8-d embeddings)."""
  from configs import evaluator_demo  # pylint: disable=import-outside-toplevel
  config = evaluator_demo.get_config()
  config.data.update(dir=str(data_dir), builder="motion_folder", split="train", min_len=16,
                     max_len=32, batch_size=4, prefetch=0)
  config.evaluator.update(movement_hidden=16, movement_out=16, motion_hidden=16,
                          text_hidden=16, output_dim=8)
  return config
