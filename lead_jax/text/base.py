"""`TextEncoder`: one interface over frozen text towers (CLIP, MiniLM) for conditioning and inversion.

The forward pass is split so textual inversion can feed its own input embeddings:

  batch = encoder.tokenize(texts)                              # TokenBatch, fixed length L
  emb = encoder.embed_tokens(params, batch.ids, extra)         # [B, L, D] lookup only
  pooled, tokens = encoder.encode_embeddings(params, emb, batch)  # [B, E], [B, L, D_hidden]

Both are pure functions of explicit `params` (the Flax parameter tree, without the `"params"`
wrapper) and jittable. `encode(texts)` runs them jitted, in batches, and returns NumPy float32.

Packed prompts (`lead_jax.models.packing`): the prompts' real tokens side by side in rows, so the
tower computes no padding; the pooled features are `encode_embeddings`' up to float reassociation.

  packed = encoder.pack_tokens(batch, capacity=24)              # PackedTokens, host side
  emb = encoder.embed_tokens(params, packed.ids, extra)         # [R, C, D]
  pooled = encoder.encode_packed(params, emb, packed)           # [P, E]
  pooled = encoder.encode_packed_ids(params, packed, extra)     # the same, in one call

A causal encoder (CLIP, `shares_prefixes`) packs prompts as prefix trees
(`packing.pack_prefix_tree`): prompts that begin alike ("a person ...") compute their common
tokens once, and identical prompts are computed once.

The encoder never changes once loaded. Placeholder tokens (motion textual inversion) are data, an
`ExtraTokens` of token strings and input embeddings `[K, D]`, passed to `tokenize` / `encode`
(and their rows to `embed_tokens`): token k gets the id `vocab_size + k`.

  extra = encoder.new_tokens(["<dance-x>"], initializer="dance")   # rows from "dance"
  extra = extra.replace("<dance-x>", v_star)                        # a learnt vector [D]
  features = encoder.encode(["a person <dance-x>"], extra)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import ConfigError, InputError
from lead_jax.fingerprints import tree_fingerprint
from lead_jax.models import packing as packing_lib


@dataclasses.dataclass(frozen=True)
class ExtraTokens:
  """Placeholder tokens as data: `tokens` (K strings) and their input `embeddings [K, D]`.

  Immutable: `add` and `replace` return new objects. An encoder tokenising with them gives token k
  the id `vocab_size + k` and looks its row up in `embeddings`.
  """
  tokens: tuple[str, ...]
  embeddings: np.ndarray

  def __post_init__(self):
    tokens = tuple(self.tokens)
    rows = np.asarray(self.embeddings, np.float32)
    if rows.ndim != 2 or rows.shape[0] != len(tokens):
      raise InputError(f"extra tokens: {len(tokens)} tokens need embeddings [{len(tokens)}, D], "
                       f"found {rows.shape}")
    if len(set(tokens)) != len(tokens):
      raise InputError(f"extra tokens: duplicate token in {list(tokens)}")
    if not np.isfinite(rows).all():
      bad = [t for t, r in zip(tokens, rows) if not np.isfinite(r).all()]
      raise InputError(f"extra tokens: the embedding of {bad} is not finite")
    object.__setattr__(self, "tokens", tokens)
    object.__setattr__(self, "embeddings", rows)

  @classmethod
  def empty(cls, token_dim: int) -> "ExtraTokens":
    return cls((), np.zeros((0, int(token_dim)), np.float32))

  def __len__(self) -> int:
    return len(self.tokens)

  def _row(self, token: str) -> int:
    if token not in self.tokens:
      raise InputError(f"{token!r} is not a placeholder of these extra tokens {list(self.tokens)}")
    return self.tokens.index(token)

  def embedding(self, token: str) -> np.ndarray:
    """The input embedding `[D]` of `token`."""
    return self.embeddings[self._row(token)].copy()

  def replace(self, token: str, vector: Any) -> "ExtraTokens":
    """A copy with `token`'s input embedding set to `vector [D]` (e.g. a learnt v*)."""
    vector = np.asarray(vector, np.float32)
    if vector.shape != self.embeddings.shape[1:]:
      raise InputError(f"embedding for {token!r}: expected shape {self.embeddings.shape[1:]}, "
                       f"found {vector.shape}")
    rows = self.embeddings.copy()
    rows[self._row(token)] = vector
    return ExtraTokens(self.tokens, rows)

  def add(self, other: "ExtraTokens") -> "ExtraTokens":
    """These tokens followed by `other`'s (none may be here already)."""
    clash = sorted(set(self.tokens) & set(other.tokens))
    if clash:
      raise InputError(f"extra tokens {clash} are already defined")
    return ExtraTokens(self.tokens + other.tokens,
                       np.concatenate([self.embeddings, other.embeddings], axis=0))


@flax.struct.dataclass
class TokenBatch:
  """Tokenised prompts padded to a fixed length L.

  Attributes:
    ids: `[B, L]` int32 token ids.
    attention_mask: `[B, L]` int32, 1 on real tokens (start/end tokens included), 0 on padding.
    eos_index: `[B]` int32 position of the first end-of-sequence token (CLIP's pooling position;
      BERT's `[SEP]`).
  """
  ids: Any
  attention_mask: Any
  eos_index: Any

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(self.ids.shape)


@flax.struct.dataclass
class PackedTokens:
  """Prompts packed side by side in rows of C token slots (`TextEncoder.pack_tokens`).

  Attributes:
    ids: `[R, C]` int32 token ids (0 on empty slots).
    packing: the P prompts' `lead_jax.models.packing.Packing` (segment ids, positions within a
      prompt, each prompt's row, offset and token count), or their `PrefixPacking` (prefix trees:
      a causal encoder's prompts share their common leading tokens).
  """
  ids: Any
  packing: packing_lib.Packing | packing_lib.PrefixPacking

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(self.ids.shape)


def next_pow2(n: int, smallest: int = 1) -> int:
  """Smallest power of two >= n, at least `smallest` (returned as is when n <= smallest): padding
  lengths, so jitted code compiles once per bucket (`next_pow2(70, smallest=64)` is 128)."""
  return max(int(smallest), 1 << max(int(n) - 1, 0).bit_length())


def _bucket(length: int, max_length: int, smallest: int = 16) -> int:
  """Smallest power of two >= `length` (at least `smallest`), capped at `max_length`."""
  return min(next_pow2(length, smallest), max_length)


MIN_TOKEN_BUCKET = 16
TOKEN_STEP = 8      # token-length buckets: multiples of this
TOKEN_ROW = 64      # packed prompts: tokens per row (unless the longest prompt is longer)
PROMPT_ROW_BUCKETS = 4  # packed prompts: the row count is a multiple of P / this


def token_bucket(longest: int, max_length: int) -> int:
  """Token length the text encoder runs at: the multiple of 8 >= `longest` (at least 16), at most
  `max_length` (the encoder's context)."""
  return int(min(max(-(-int(longest) // TOKEN_STEP) * TOKEN_STEP, MIN_TOKEN_BUCKET), max_length))


def token_row_bucket(lengths: np.ndarray, max_length: int) -> int:
  """Tokens per row of packed prompts of `lengths` tokens: `TOKEN_ROW`, or the longest prompt's
  `token_bucket` when longer, or the multiple of 8 (>= 16) holding all the tokens when smaller."""
  everything = max(-(-int(np.sum(lengths)) // TOKEN_STEP) * TOKEN_STEP, MIN_TOKEN_BUCKET)
  return max(token_bucket(int(np.max(lengths)), max_length), min(everything, TOKEN_ROW))


class TextEncoder:
  """A frozen text encoder: Flax module + parameters + tokenizer.

  The module provides `encode(token_embeddings [B,L,D], attention_mask [B,L], eos_index [B])
  -> (pooled [B,E], tokens [B,L,D_hidden])`; a subclass gives `_embedding_table(params) -> [V, D]`
  and `_eos_index(ids, attention_mask) -> [B]`.
  """

  # Whether `encode` may cut trailing padding (to a power-of-two length) before the forward pass.
  # Valid when padding cannot change the pooled feature (causal CLIP, masked mean pooling).
  trim_padding: bool = True
  # Whether a token's state depends only on the tokens up to it (a causal tower): packed prompts
  # then share their common prefixes (`pack_tokens`).
  shares_prefixes: bool = False

  def __init__(self, *, name: str, module: nn.Module, params: dict[str, Any], tokenizer: Any,
               max_length: int, vocab_size: int, token_dim: int, embed_dim: int):
    self._name = name
    self.module = module
    self.params = params
    self.tokenizer = tokenizer
    self.max_length = int(max_length)
    self._vocab_size = int(vocab_size)
    self._token_dim = int(token_dim)
    self._embed_dim = int(embed_dim)
    if len(tokenizer) > self._vocab_size:
      raise ConfigError(
          f"{name}: the tokenizer has {len(tokenizer)} tokens but the embedding table has "
          f"{self._vocab_size} rows; placeholder tokens are `ExtraTokens` passed to tokenize/encode")
    self._tokenizers: dict[tuple[str, ...], Any] = {(): tokenizer}  # memo per placeholder set
    self._jit_forward = jax.jit(self._forward)
    self._jit_packed_forward = jax.jit(self.encode_packed_ids)

  # -- properties -------------------------------------------------------------------------------
  @property
  def name(self) -> str:
    return self._name

  @property
  def fingerprint(self) -> str:
    """12 hex digits identifying the weights (shapes, sums and leading bytes of every tensor):
    caches keyed by it never mix two checkpoints of one architecture (e.g. two CLIP folders)."""
    if getattr(self, "_fingerprint", None) is None:
      self._fingerprint = tree_fingerprint(self.params)
    return self._fingerprint

  @property
  def settings_label(self) -> str:
    """The settings besides the weights that change an embedding (for cache keys)."""
    return f"L{self.max_length}"

  @property
  def embed_dim(self) -> int:
    """Width E of the pooled feature."""
    return self._embed_dim

  @property
  def token_dim(self) -> int:
    """Width D of the input token embeddings."""
    return self._token_dim

  @property
  def vocab_size(self) -> int:
    """Rows of the pretrained token table; placeholder ids start here."""
    return self._vocab_size

  def no_extra_tokens(self) -> ExtraTokens:
    """An empty `ExtraTokens` of this encoder's token width."""
    return ExtraTokens.empty(self._token_dim)

  def _extra(self, extra: ExtraTokens | None) -> ExtraTokens:
    if extra is None:
      return self.no_extra_tokens()
    if extra.embeddings.shape[1] != self._token_dim:
      raise InputError(f"{self._name}: extra token embeddings have width "
                       f"{extra.embeddings.shape[1]}, this encoder's tokens {self._token_dim}")
    return extra

  # -- hooks for subclasses ---------------------------------------------------------------------
  def _embedding_table(self, params: dict[str, Any]) -> jax.Array:
    raise NotImplementedError

  def _eos_index(self, ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    raise NotImplementedError

  def token_lengths(self, batch: TokenBatch) -> np.ndarray:
    """`[B]` int: the leading tokens of each prompt its pooled feature depends on (the real
    tokens; raises `InputError` when padding does not follow them)."""
    mask = np.asarray(batch.attention_mask).astype(bool)
    lengths = mask.sum(axis=1)
    if not (mask == (np.arange(mask.shape[1])[None] < lengths[:, None])).all():
      raise InputError(f"{self._name}: the attention mask is not real tokens followed by padding")
    return lengths

  # -- tokenisation -----------------------------------------------------------------------------
  def _tokenizer_for(self, tokens: tuple[str, ...]) -> Any:
    """The tokenizer that knows `tokens` as the single tokens `vocab_size + k` (a memoised copy:
    the loaded tokenizer itself never changes)."""
    if tokens not in self._tokenizers:
      vocabulary = self.tokenizer.get_vocab()
      for token in tokens:
        if not isinstance(token, str) or not token.strip() or token in vocabulary:
          raise InputError(f"{token!r} is empty or already in the {self._name} vocabulary")
      tokenizer = copy.deepcopy(self.tokenizer)
      tokenizer.add_tokens(list(tokens))
      for k, token in enumerate(tokens):
        token_id = tokenizer.convert_tokens_to_ids(token)
        pieces = tokenizer(f"a {token} b", add_special_tokens=False)["input_ids"]
        if token_id != self._vocab_size + k or pieces.count(token_id) != 1:
          raise InputError(f"the {self._name} tokenizer does not take {token!r} as the single "
                           f"token {self._vocab_size + k} (got id {token_id}, pieces {pieces})")
      self._tokenizers[tokens] = tokenizer
    return self._tokenizers[tokens]

  def tokenize(self, texts: Sequence[str], extra: ExtraTokens | None = None) -> TokenBatch:
    """Token ids padded (and truncated) to `max_length`; placeholders of `extra` get the ids
    `vocab_size + k`.

    Prompts longer than `max_length` keep their first `max_length - 2` word pieces followed by the
    end token (the Hugging Face `truncation=True` rule MLD uses).
    """
    texts = _check_texts(texts, self._name)
    tokenizer = self._tokenizer_for(self._extra(extra).tokens)
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=self.max_length,
                        return_tensors="np")
    ids = np.asarray(encoded["input_ids"], np.int32)
    mask = np.asarray(encoded["attention_mask"], np.int32)
    if ids.shape != (len(texts), self.max_length):
      raise InputError(f"{self._name}: tokenizer returned ids of shape {ids.shape}, expected "
                       f"{(len(texts), self.max_length)}")
    return TokenBatch(ids=ids, attention_mask=mask, eos_index=self._eos_index(ids, mask))

  def truncated(self, texts: Sequence[str], extra: ExtraTokens | None = None) -> np.ndarray:
    """`[B]` bool: which texts have more tokens than `max_length` (cut by `tokenize`)."""
    tokenizer = self._tokenizer_for(self._extra(extra).tokens)
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    return np.asarray([len(ids) > self.max_length for ids in full], bool)

  # -- pure forward -----------------------------------------------------------------------------
  def embed_tokens(self, params: dict[str, Any], ids: jax.Array,
                   extra_embeddings: jax.Array | None = None) -> jax.Array:
    """Input token embeddings `[B, L, D]` (lookup only: no positions, no normalisation).

    Args:
      params: the module's parameter tree.
      ids: `[B, L]` int token ids; ids >= `vocab_size` index `extra_embeddings`.
      extra_embeddings: `[K, D]` rows for placeholder tokens (ids `vocab_size .. vocab_size+K-1`).
    """
    table = self._embedding_table(params)
    if extra_embeddings is not None:
      table = jnp.concatenate([table, jnp.asarray(extra_embeddings, table.dtype)], axis=0)
    return jnp.take(table, ids, axis=0)

  def encode_embeddings(self, params: dict[str, Any], token_embeddings: jax.Array,
                        batch: TokenBatch) -> tuple[jax.Array, jax.Array]:
    """Runs the transformer on input embeddings `[B, L, D]`.

    Returns:
      pooled `[B, E]` and per-token hidden states `[B, L, D_hidden]`.
    """
    return self.module.apply({"params": params}, token_embeddings, batch.attention_mask,
                             batch.eos_index, method=self.module.encode)

  def pack_tokens(self, batch: TokenBatch, capacity: int, num_prompts: int | None = None,
                  row_buckets: int = packing_lib.ROW_BUCKETS) -> PackedTokens:
    """`batch`'s prompts (their `token_lengths` tokens each) packed in rows of `capacity` slots
    (`lead_jax.models.packing.pack` with `row_buckets`, or `pack_prefix_tree` when the encoder
    `shares_prefixes`; host side, NumPy). `num_prompts` (>= B) appends padding prompts of no
    tokens (their pooled features are unspecified, finite).

    Raises `InputError` when a prompt has more than `capacity` tokens; `ConfigError` for an encoder
    whose padding may change the pooled feature (`trim_padding` False).
    """
    if not self.trim_padding:
      raise ConfigError(f"{self._name}: padding may change the pooled feature; prompts cannot be "
                        "packed")
    lengths = self.token_lengths(batch)
    count = lengths.shape[0] if num_prompts is None else int(num_prompts)
    if count < lengths.shape[0]:
      raise InputError(f"pack_tokens: num_prompts={count} < the batch's {lengths.shape[0]} prompts")
    if self.shares_prefixes:
      ids = np.asarray(batch.ids)
      sequences = [ids[i, :n] for i, n in enumerate(lengths)] + [()] * (count - len(lengths))
      tree, tree_ids = packing_lib.pack_prefix_tree(sequences, capacity, row_buckets)
      return PackedTokens(ids=tree_ids, packing=tree)
    layout = packing_lib.pack(np.concatenate([lengths, np.zeros(count - lengths.shape[0], int)]),
                              capacity, row_buckets)
    ids = np.zeros(layout.shape, np.int32)
    slots = layout.segment_ids >= 0
    ids[slots] = np.asarray(batch.ids)[layout.segment_ids[slots], layout.positions[slots]]
    return PackedTokens(ids=ids, packing=layout)

  def encode_packed(self, params: dict[str, Any], token_embeddings: jax.Array,
                    packed: PackedTokens) -> jax.Array:
    """Pooled `[P, E]` of packed prompts from their input embeddings `[R, C, D]`
    (`embed_tokens(params, packed.ids, extra)`): `encode_embeddings`' pooled features, computed on
    the real tokens only."""
    return self.module.apply({"params": params}, token_embeddings, packed.packing,
                             method=self.module.encode_packed)

  def _forward(self, params: dict[str, Any], extra_embeddings: jax.Array,
               batch: TokenBatch) -> jax.Array:
    embeddings = self.embed_tokens(params, batch.ids, extra_embeddings)
    return self.encode_embeddings(params, embeddings, batch)[0]

  def encode_packed_ids(self, params: dict[str, Any], packed: PackedTokens,
                        extra_embeddings: jax.Array | None = None) -> jax.Array:
    """Pooled `[P, E]` of packed prompts from their ids: `embed_tokens` (placeholder rows
    `extra_embeddings [K, D]`), then `encode_packed`. Pure and jittable."""
    return self.encode_packed(params, self.embed_tokens(params, packed.ids, extra_embeddings),
                              packed)

  def trim(self, batch: TokenBatch) -> TokenBatch:
    """`batch` `[B, L]` cut to `[B, L']`, L' its longest row rounded up to a power of two >= 16
    (at most `max_length`), when `trim_padding`; else `batch` itself. The result is the same:
    padding columns are masked out, and bucketed lengths compile a few shapes only."""
    if not self.trim_padding:
      return batch
    length = _bucket(int(np.asarray(batch.attention_mask).sum(axis=1).max()), self.max_length)
    return TokenBatch(ids=batch.ids[:, :length], attention_mask=batch.attention_mask[:, :length],
                      eos_index=batch.eos_index)

  def encode(self, texts: Sequence[str], extra: ExtraTokens | None = None,
             batch_size: int = 64, packed: bool | None = None) -> np.ndarray:
    """Pooled features `[B, E]` float32 of `texts`, jitted, `batch_size` prompts per call.

    Packed (the default when the encoder allows it, `trim_padding`): the prompts are taken in the
    order of their tokens, so a call's prompts share leading tokens and have like lengths; each
    call packs them (`pack_tokens`, rows of `token_row_bucket` slots, the row count a multiple of
    `batch_size / PROMPT_ROW_BUCKETS`) and the tower computes their real tokens only (a caption
    cache of 512 ~17-token captions encodes 4.5x faster with CLIP-L than padded to 64 tokens,
    `benchmarks/text_encoders.py --captions`). The features equal
    the padded forward's up to float reassociation. `packed=False` runs every call padded to the
    longest prompt's power-of-two bucket (`trim`), the reference path.
    """
    texts = _check_texts(texts, self._name)
    if not texts:
      return np.zeros((0, self._embed_dim), np.float32)
    if packed and not self.trim_padding:
      raise ConfigError(f"{self._name}: padding may change the pooled feature; prompts cannot be "
                        "packed (encode with packed=False)")
    extra = self._extra(extra)
    batch = self.tokenize(texts, extra)
    self.check_ids(batch.ids, extra)
    chunk = _bucket(min(len(texts), batch_size), batch_size, smallest=1)
    if packed is False or not self.trim_padding:
      return self._encode_padded(self.trim(batch), extra, chunk)
    return self._encode_packed(batch, extra, chunk)

  def _encode_padded(self, batch: TokenBatch, extra: ExtraTokens, chunk: int) -> np.ndarray:
    """`encode` of a tokenised batch in calls of `chunk` rows (the last padded by repeating)."""
    outputs = []
    for start in range(0, batch.ids.shape[0], chunk):
      part = jax.tree.map(lambda x: x[start:start + chunk], batch)
      count = part.ids.shape[0]
      if count < chunk:  # pad the last chunk so every call has the same shape
        part = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], chunk - count, 0)]), part)
      pooled = self._jit_forward(self.params, extra.embeddings, part)
      outputs.append(np.asarray(pooled[:count], np.float32))
    return np.concatenate(outputs, axis=0)

  def _encode_packed(self, batch: TokenBatch, extra: ExtraTokens, chunk: int) -> np.ndarray:
    """`encode` of a tokenised batch, packed: prompts in token order, `chunk` per call (the last
    call's missing prompts are padding prompts of no tokens)."""
    lengths = self.token_lengths(batch)
    ids = np.asarray(batch.ids)
    order = np.asarray(sorted(range(len(lengths)), key=lambda i: (ids[i, :lengths[i]].tolist(), i)))
    out = np.empty((len(order), self._embed_dim), np.float32)
    for start in range(0, len(order), chunk):
      rows = order[start:start + chunk]
      part = jax.tree.map(lambda x: np.asarray(x)[rows], batch)
      tokens = self.pack_tokens(part, token_row_bucket(lengths[rows], ids.shape[1]), chunk,
                                PROMPT_ROW_BUCKETS)
      pooled = self._jit_packed_forward(self.params, tokens, extra.embeddings)
      out[rows] = np.asarray(pooled[:len(rows)], np.float32)
    return out

  def check_ids(self, ids: np.ndarray, extra: ExtraTokens | None = None) -> None:
    """Raises `InputError` when an id falls outside the table (pretrained rows + `extra`)."""
    limit = self._vocab_size + len(self._extra(extra))
    if ids.size and (ids.min() < 0 or ids.max() >= limit):
      raise InputError(f"{self._name}: token id {int(ids.max())} outside the embedding table of "
                       f"{limit} rows ({self._vocab_size} pretrained + {limit - self._vocab_size} "
                       "extra)")

  # -- placeholder tokens -----------------------------------------------------------------------
  def initial_embedding(self, word: str | None = None) -> np.ndarray:
    """`[D]`: the mean input embedding of `word`'s pieces (e.g. "dance"), or of the whole token
    table when `word` is None (a placeholder's starting point)."""
    table = np.asarray(self._embedding_table(self.params), np.float32)
    if word is None:
      return table.mean(axis=0)
    word_ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
    if not word_ids or max(word_ids) >= self._vocab_size:
      raise InputError(f"initializer {word!r} has no pretrained tokens in {self._name}")
    return table[word_ids].mean(axis=0)

  def new_tokens(self, tokens: Sequence[str] | str,
                 initializer: str | Sequence[str | None] | None = None,
                 extra: ExtraTokens | None = None) -> ExtraTokens:
    """`extra` (default none) followed by the placeholders `tokens`, each initialised from a
    descriptor word (`initial_embedding`; one word for all or one per token; None = table mean).

    Raises `InputError` when a token is in the vocabulary or in `extra` already, or is not taken
    as a single token by the tokenizer.
    """
    tokens = (tokens,) if isinstance(tokens, str) else tuple(tokens)
    if isinstance(initializer, str) or initializer is None:
      initializer = [initializer] * len(tokens)
    if len(initializer) != len(tokens):
      raise InputError(f"new_tokens: {len(tokens)} tokens but {len(initializer)} initializers")
    rows = np.stack([self.initial_embedding(w) for w in initializer]) if tokens else \
        np.zeros((0, self._token_dim), np.float32)
    merged = self._extra(extra).add(ExtraTokens(tokens, rows))
    self._tokenizer_for(merged.tokens)  # checks every token is new and tokenised as one
    return merged

  def __repr__(self) -> str:
    return (f"{type(self).__name__}(name={self._name!r}, vocab_size={self._vocab_size}, "
            f"token_dim={self._token_dim}, embed_dim={self._embed_dim}, "
            f"max_length={self.max_length})")


def _check_texts(texts: Sequence[str], name: str) -> list[str]:
  if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
    raise InputError(f"{name}: expected a list of strings, found {type(texts).__name__}"
                     + ("" if isinstance(texts, str) else
                        f" with items {sorted({type(t).__name__ for t in texts})}"))
  return list(texts)
