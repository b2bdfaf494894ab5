"""CLIP text tower as MLD uses it (`CLIPModel.get_text_features`), in Flax, over HF weight files.

Pre-LN transformer with a causal mask and quick_gelu, a final LayerNorm, and the projected pooled
feature `text_projection(final_layer_norm(h)[eos_index])` (no bias, NOT L2-normalised). Pooling is
at the FIRST end-of-text token, never at `argmax(ids)`: Hugging Face's legacy configs
(`eos_token_id == 2`, e.g. openai/clip-vit-large-patch14) pool at `argmax(input_ids)`, which is wrong
as soon as a placeholder token (id 49408 > 49407) is in the prompt.

No attention mask is applied besides the causal one (as in MLD): padding after the end token cannot
change the pooled feature; the per-token states after it are those of the unmasked model.

Packed prompts (`encode_packed`): each prompt's tokens up to its first end token, in rows;
position embeddings at each token's position within its prompt, attention to the token itself and
the tokens before it in its prompt, the pooled feature at the prompt's end token. The tower is
causal, so prompts are packed as prefix trees (`shares_prefixes`; `packing.pack_prefix_tree`):
prompts beginning with the same tokens share those tokens' slots (the start token and "a person"
are computed once per row, not once per prompt). The last layer computes its queries, MLP and
final LayerNorm at the end tokens only (keys and values at every token): nothing else reaches the
pooled feature.

Usage:
  encoder = load_clip("deps/clip-vit-large-patch14")           # config.json + weights + tokenizer
  encoder = load_clip(weights_dir, bpe_path="bpe_simple_vocab_16e6.txt.gz")  # no tokenizer files
  features = encoder.encode(["a person walks forward"])         # [1, 768] float32
"""

from __future__ import annotations

import dataclasses
import gzip
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError, MissingFileError, WeightsError
from lead_jax.models import packing as packing_lib
from lead_jax.text import hf_weights
from lead_jax.text.base import TextEncoder, TokenBatch
from lead_jax.text.layers import activation, multi_head_attention, packed_attention

START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
# CLIP's vocabulary: 256 byte symbols, their end-of-word forms, 48,894 merges, 2 specials = 49,408.
CLIP_NUM_MERGES = 49408 - 2 * 256 - 2
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
  """Sizes of the CLIP text tower; the defaults are openai/clip-vit-large-patch14's."""
  vocab_size: int = 49408
  hidden_size: int = 768
  intermediate_size: int = 3072
  num_layers: int = 12
  num_heads: int = 12
  max_positions: int = 77
  projection_dim: int = 768
  layer_norm_eps: float = 1e-5
  hidden_act: str = "quick_gelu"

  @classmethod
  def from_hf(cls, text_config: Any, projection_dim: int) -> "CLIPTextConfig":
    """From a transformers `CLIPTextConfig` and the projection width."""
    return cls(vocab_size=text_config.vocab_size, hidden_size=text_config.hidden_size,
               intermediate_size=text_config.intermediate_size,
               num_layers=text_config.num_hidden_layers,
               num_heads=text_config.num_attention_heads,
               max_positions=text_config.max_position_embeddings,
               projection_dim=int(projection_dim), layer_norm_eps=text_config.layer_norm_eps,
               hidden_act=text_config.hidden_act)


# ([P] rows, [P] columns, [P] compact token indices) of selected token slots
Slots = tuple[jax.Array, jax.Array, jax.Array]


class CLIPAttention(nn.Module):
  """Multi-head self-attention with HF-named projections (`q_proj`, `k_proj`, `v_proj`, `out_proj`)."""
  config: CLIPTextConfig

  @nn.compact
  def __call__(self, x: jax.Array, attend: jax.Array, layout: Any = None,
               select: Slots | None = None) -> jax.Array:
    """`x [B, L, D]`, `attend [B, L, L]` -> `[B, L, D]`. With `layout` (a packing): `x` is its
    compact tokens `[F, D]` and `attend` its `[R, C, C]` -> `[F, D]`; with `select` too (rows,
    columns, tokens), only the queries at those slots, over the keys of their rows: -> `[P, D]`."""
    width, heads = self.config.hidden_size, self.config.num_heads
    q_proj, k_proj, v_proj, out_proj = (nn.Dense(width, name=n) for n in
                                        ("q_proj", "k_proj", "v_proj", "out_proj"))
    if layout is None:
      return out_proj(multi_head_attention(q_proj(x), k_proj(x), v_proj(x), heads, attend))
    if select is None:
      return out_proj(packed_attention(q_proj(x), k_proj(x), v_proj(x), heads, attend, layout))
    rows, columns, tokens = select
    keys, values = (packing_lib.to_rows(proj(x), layout)[rows] for proj in (k_proj, v_proj))
    out = multi_head_attention(q_proj(x[tokens])[:, None], keys, values, heads,
                               attend[rows, columns][:, None])
    return out_proj(out[:, 0])


class CLIPEncoderLayer(nn.Module):
  """Pre-LN block: `x + attn(ln1(x))`, then `x + fc2(act(fc1(ln2(x))))`; `layout` and `select` as
  `CLIPAttention`'s (with `select`, the block's outputs at those slots only, `[P, D]`)."""
  config: CLIPTextConfig

  @nn.compact
  def __call__(self, x: jax.Array, attend: jax.Array, layout: Any = None,
               select: Slots | None = None) -> jax.Array:
    c = self.config
    attended = CLIPAttention(c, name="self_attn")(
        nn.LayerNorm(epsilon=c.layer_norm_eps, name="layer_norm1")(x), attend, layout, select)
    x = (x if select is None else x[select[2]]) + attended
    h = nn.LayerNorm(epsilon=c.layer_norm_eps, name="layer_norm2")(x)
    h = nn.Dense(c.intermediate_size, name="fc1")(h)
    h = nn.Dense(c.hidden_size, name="fc2")(activation(c.hidden_act)(h))
    return x + h


class CLIPTextTransformer(nn.Module):
  """CLIP text tower with projection. Params mirror HF names (see `hf_key`)."""
  config: CLIPTextConfig

  def setup(self):
    c = self.config
    self.token_embedding = nn.Embed(c.vocab_size, c.hidden_size)
    self.position_embedding = nn.Embed(c.max_positions, c.hidden_size)
    self.layers = [CLIPEncoderLayer(c, name=f"layers_{i}") for i in range(c.num_layers)]
    self.final_layer_norm = nn.LayerNorm(epsilon=c.layer_norm_eps)
    self.text_projection = nn.Dense(c.projection_dim, use_bias=False)

  def encode(self, token_embeddings: jax.Array, attention_mask: jax.Array,
             eos_index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`[B, L, D]` input embeddings -> (projected pooled `[B, E]`, final-LN states `[B, L, D]`).

    `attention_mask` is accepted for the common interface and not used (causal mask only).
    """
    del attention_mask
    batch, length, width = token_embeddings.shape
    if length > self.config.max_positions or width != self.config.hidden_size:
      raise InputError(f"CLIP token embeddings: expected [B, <={self.config.max_positions}, "
                       f"{self.config.hidden_size}], found {list(token_embeddings.shape)}")
    h = token_embeddings + self.position_embedding.embedding[:length]
    causal = jnp.tril(jnp.ones((length, length), bool))[None]
    for layer in self.layers:
      h = layer(h, causal)
    h = self.final_layer_norm(h)
    pooled = h[jnp.arange(batch), eos_index]
    return self.text_projection(pooled), h

  def encode_packed(self, token_embeddings: jax.Array,
                    packing: packing_lib.Packing | packing_lib.PrefixPacking) -> jax.Array:
    """Packed prompts: `[R, C, D]` input embeddings and their `Packing` or `PrefixPacking` (each
    prompt's tokens up to its first end token) -> projected pooled `[P, E]` (at each prompt's last
    token). C may exceed the context: positions count within a prompt. The layers run on the
    compact tokens (`[F, D]`, the real slots), attention in the rows."""
    rows, capacity, width = token_embeddings.shape
    if (rows, capacity) != tuple(packing.segment_ids.shape) or width != self.config.hidden_size:
      raise InputError(f"packed CLIP token embeddings: expected [{packing.segment_ids.shape[0]}, "
                       f"{packing.segment_ids.shape[1]}, {self.config.hidden_size}], found "
                       f"{list(token_embeddings.shape)}")
    positions = packing_lib.to_tokens(jnp.asarray(packing.positions), packing)
    h = (packing_lib.to_tokens(token_embeddings, packing)
         + self.position_embedding.embedding[positions])
    attend = packing_lib.attention_mask(packing, causal=True)
    for layer in self.layers[:-1]:
      h = layer(h, attend, packing)
    rows, columns = packing_lib.last_slots(packing)
    last = jnp.asarray(packing.slot_tokens)[rows, columns]
    pooled = self.layers[-1](h, attend, packing, (rows, columns, last))
    return self.text_projection(self.final_layer_norm(pooled))

  def __call__(self, ids: jax.Array, attention_mask: jax.Array,
               eos_index: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.encode(self.token_embedding(ids), attention_mask, eos_index)


_TOP_LEVEL = {
    "token_embedding": "text_model.embeddings.token_embedding",
    "position_embedding": "text_model.embeddings.position_embedding",
    "final_layer_norm": "text_model.final_layer_norm",
    "text_projection": "text_projection",
}
_LEAF = {"kernel": "weight", "embedding": "weight", "scale": "weight", "bias": "bias"}
_BLOCK = {"fc1": "mlp.fc1", "fc2": "mlp.fc2"}


def hf_key(path: tuple[str, ...]) -> hf_weights.HFKey:
  """Our leaf path -> (HF `CLIPTextModelWithProjection` / `CLIPModel` tensor name, transposed)."""
  *modules, leaf = path
  head = modules[0]
  if head.startswith("layers_"):
    parts = [f"text_model.encoder.layers.{head.split('_')[1]}"]
    parts += [_BLOCK.get(m, m) for m in modules[1:]]
  else:
    parts = [_TOP_LEVEL[head], *modules[1:]]
  return ".".join(parts + [_LEAF[leaf]]), leaf == "kernel"


def _ignored(key: str) -> bool:
  """HF tensors a full CLIPModel file holds that the text tower does not use."""
  return (key.startswith("vision_model.") or key in ("visual_projection.weight", "logit_scale")
          or key.endswith("position_ids"))


def abstract_params(config: CLIPTextConfig) -> dict[str, Any]:
  """Parameter shapes of the tower (`jax.ShapeDtypeStruct` leaves), no allocation."""
  module = CLIPTextTransformer(config)
  ids = jnp.zeros((1, config.max_positions), jnp.int32)
  variables = jax.eval_shape(module.init, jax.random.key(0), ids, ids, jnp.zeros((1,), jnp.int32))
  return variables["params"]


# -- tokenizer ----------------------------------------------------------------------------------
def _byte_symbols() -> list[str]:
  """The 256 printable stand-ins of the bytes, in CLIP's vocabulary order.

  Bytes that are printable and not blank ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves and
  come first, in byte order; the other 68 bytes follow, in byte order, as chr(256 + n).
  """
  printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
               *range(ord("®"), ord("ÿ") + 1)]
  others = [b for b in range(256) if b not in set(printable)]
  return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


def clip_vocabulary(bpe_path: str | pathlib.Path,
                    num_merges: int = CLIP_NUM_MERGES) -> tuple[dict[str, int], list[tuple[str, str]]]:
  """CLIP's token->id map and merge list from OpenAI's `bpe_simple_vocab_16e6.txt.gz`.

  The file is a version line then one merge per line ("t h"); CLIP uses the first `num_merges`.
  Vocabulary order: byte symbols, the same with `</w>`, one token per merge, then the 2 specials.
  """
  bpe_path = pathlib.Path(bpe_path)
  if not bpe_path.is_file():
    raise MissingFileError(f"CLIP BPE vocabulary {bpe_path} not found (bpe_simple_vocab_16e6.txt.gz)")
  opener = gzip.open if bpe_path.suffix == ".gz" else open
  with opener(bpe_path, "rt", encoding="utf-8") as f:
    lines = f.read().rstrip("\n").split("\n")
  merges = []
  for number, line in enumerate(lines[1:1 + num_merges], start=2):
    pair = tuple(line.split())
    if len(pair) != 2:
      raise InputError(f"{bpe_path}:{number}: expected a merge 'a b', found {line!r}")
    merges.append(pair)
  symbols = _byte_symbols()
  tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
  tokens += [START_OF_TEXT, END_OF_TEXT]
  vocab = {token: i for i, token in enumerate(tokens)}
  if len(vocab) != len(tokens):
    raise InputError(f"{bpe_path}: the merges produce duplicate tokens ({len(tokens)} tokens, "
                     f"{len(vocab)} distinct)")
  return vocab, merges


def clip_tokenizer_from_bpe(bpe_path: str | pathlib.Path, max_length: int = 77,
                            num_merges: int = CLIP_NUM_MERGES) -> Any:
  """A Hugging Face CLIP tokenizer built from the BPE vocabulary file alone."""
  import transformers  # pylint: disable=import-outside-toplevel
  vocab, merges = clip_vocabulary(bpe_path, num_merges)
  return transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def load_clip_tokenizer(path: str | pathlib.Path, bpe_path: str | pathlib.Path | None = None,
                        max_length: int = 77) -> Any:
  """Tokenizer files of `path` (AutoTokenizer.from_pretrained) or else the BPE file `bpe_path`."""
  path = pathlib.Path(path)
  if any((path / name).is_file() for name in TOKENIZER_FILES):
    import transformers  # pylint: disable=import-outside-toplevel
    return transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
  if bpe_path is not None:
    return clip_tokenizer_from_bpe(bpe_path, max_length)
  raise MissingFileError(
      f"no CLIP tokenizer in {path}: expected tokenizer.json or vocab.json + merges.txt there, or "
      "pass bpe_path=<bpe_simple_vocab_16e6.txt.gz>")


# -- encoder ------------------------------------------------------------------------------------
class CLIPTextEncoder(TextEncoder):
  """Frozen CLIP text encoder: pooled `[B, projection_dim]`, tokens `[B, 77, hidden]`."""

  shares_prefixes = True  # causal: packed prompts share their common leading tokens

  def __init__(self, config: CLIPTextConfig, params: dict[str, Any], tokenizer: Any,
               name: str = "clip", max_length: int | None = None):
    self.config = config
    if END_OF_TEXT not in tokenizer.get_vocab():
      raise WeightsError(f"the CLIP tokenizer has no {END_OF_TEXT} token")
    self.eos_token_id = int(tokenizer.convert_tokens_to_ids(END_OF_TEXT))
    if max_length is not None and max_length > config.max_positions:
      raise InputError(f"max_length {max_length} exceeds max_position_embeddings "
                       f"{config.max_positions}")
    super().__init__(name=name, module=CLIPTextTransformer(config), params=params,
                     tokenizer=tokenizer, max_length=max_length or config.max_positions,
                     vocab_size=config.vocab_size, token_dim=config.hidden_size,
                     embed_dim=config.projection_dim)

  def _embedding_table(self, params: dict[str, Any]) -> jax.Array:
    return params["token_embedding"]["embedding"]

  def _eos_index(self, ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    is_eos = ids == self.eos_token_id
    if not is_eos.any(axis=1).all():
      raise InputError(f"CLIP tokens without {END_OF_TEXT} (id {self.eos_token_id}) in rows "
                       f"{np.flatnonzero(~is_eos.any(axis=1)).tolist()}")
    return np.argmax(is_eos, axis=1).astype(np.int32)  # first occurrence

  def token_lengths(self, batch: TokenBatch) -> np.ndarray:
    """`[B]`: tokens up to and including the first end token (causal: the pooled feature sees
    nothing after it)."""
    return np.asarray(batch.eos_index).astype(np.int64) + 1


def load_clip(path: str | pathlib.Path, bpe_path: str | pathlib.Path | None = None,
              max_length: int | None = None) -> CLIPTextEncoder:
  """Loads an openai/clip-vit-large-patch14-layout directory (CLIPModel or text-with-projection).

  Args:
    path: directory with config.json, model.safetensors / pytorch_model.bin (or sharded indices)
      and, unless `bpe_path` is given, the tokenizer files.
    bpe_path: `bpe_simple_vocab_16e6.txt.gz`, used when the directory has no tokenizer files.
    max_length: token length L (default: the config's max_position_embeddings, 77).
  """
  path = pathlib.Path(path)
  hf_config = hf_weights.read_config(path)
  model_type = getattr(hf_config, "model_type", None)
  if model_type == "clip":
    text_config, projection_dim = hf_config.text_config, hf_config.projection_dim
  elif model_type == "clip_text_model":
    text_config, projection_dim = hf_config, hf_config.projection_dim
  else:
    raise WeightsError(f"{path / 'config.json'}: model_type {model_type!r} "
                       f"(architectures {getattr(hf_config, 'architectures', None)}) is not a CLIP "
                       "text model; expected 'clip' (CLIPModel) or 'clip_text_model' "
                       "(CLIPTextModelWithProjection)")
  config = CLIPTextConfig.from_hf(text_config, projection_dim)
  state = hf_weights.read_state_dict(path, keep=lambda key: not _ignored(key))
  params = hf_weights.assign_params(abstract_params(config), state, hf_key, _ignored,
                                    model_name=f"CLIP text model ({model_type})")
  tokenizer = load_clip_tokenizer(path, bpe_path, max_length or config.max_positions)
  return CLIPTextEncoder(config, jax.tree.map(jnp.asarray, params), tokenizer,
                         max_length=max_length)
