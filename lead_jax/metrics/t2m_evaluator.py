"""Flax port of the published T2M text-motion matching evaluator (reference.md section 8.1).

Three networks, each a Linen module whose parameters `lead_jax.convert.t2m_ckpt` imports from the
PyTorch checkpoint `finest.tar`:

  MovementConvEncoder  features [B, T, D-4] -> movements [B, T//4, 512]
  MotionEncoderBiGRU   movements [B, T//4, 512], lengths//4 -> motion embedding [B, 512]
  TextEncoderBiGRU     GloVe [B, L, 300] + POS one-hots [B, L, 15], lengths -> text embedding [B, 512]

The GRUs are PyTorch-exact (gate order r, z, n; `b_hn` inside `r * (W_hn h + b_hn)`), start from a
learned initial state, and honour `lengths` exactly as `pack_padded_sequence` does: the forward
state stops at the last valid step, the backward pass starts at the last valid step. Padding
therefore never leaks into an embedding, and no sorting by length is needed.

`T2MEvaluator` (host side) bundles the parameters with the evaluator's feature statistics and the
feature width it was trained on; it re-normalises model-space features (`renorm4t2m`), refuses
features of another width, and computes embeddings with jitted functions. Its motion path masks
padding so a padded batch gives the embeddings of batch-size-1 evaluation (MLD's TEST.BATCH_SIZE).

  evaluator = lead_jax.convert.t2m_ckpt.load_t2m_evaluator(finest_tar, mean_npy, std_npy)
  m = evaluator.motion_embeddings(features_eval_space, lengths)          # [B, 512]
  t = evaluator.text_embeddings(word_emb, pos_onehot, sent_lens)         # [B, 512]
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError

Array = jax.Array
UNIT_LENGTH = 4
FOOT_CONTACT_DIMS = 4
NUM_POS = 15
WORD_DIM = 300


def _uniform(scale: float) -> Callable[..., Array]:
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


def gru_step(h: Array, gi: Array, w_hh: Array, b_hh: Array) -> Array:
  """One PyTorch GRU step. `gi = x W_ih + b_ih` `[B, 3H]` (r, z, n), `h [B, H]`, `w_hh [H, 3H]`."""
  gh = h @ w_hh + b_hh
  hidden = h.shape[-1]
  i_r, i_z, i_n = gi[..., :hidden], gi[..., hidden:2 * hidden], gi[..., 2 * hidden:]
  h_r, h_z, h_n = gh[..., :hidden], gh[..., hidden:2 * hidden], gh[..., 2 * hidden:]
  r = jax.nn.sigmoid(i_r + h_r)
  z = jax.nn.sigmoid(i_z + h_z)
  n = jnp.tanh(i_n + r * h_n)
  return (1.0 - z) * n + z * h


def bidirectional_gru(params: dict[str, Any], x: Array, lengths: Array, h0: Array
                      ) -> tuple[Array, Array]:
  """Final states of a packed bidirectional GRU.

  Args:
    params: `{'forward'|'backward': {'w_ih' [F, 3H], 'w_hh' [H, 3H], 'b_ih' [3H], 'b_hh' [3H]}}`.
    x: `[B, T, F]` padded inputs.
    lengths: `[B]` valid steps (>= 1).
    h0: `[2, B, H]` initial states (forward, backward).
  Returns:
    `(h_forward, h_backward)`, each `[B, H]`: the forward state after step `lengths-1`, the backward
    state after running from step `lengths-1` down to 0.
  """
  fw, bw = params["forward"], params["backward"]
  steps = x.shape[1]
  gi_f = jnp.swapaxes(x @ fw["w_ih"] + fw["b_ih"], 0, 1)            # [T, B, 3H]
  gi_b = jnp.swapaxes(x @ bw["w_ih"] + bw["b_ih"], 0, 1)[::-1]      # reversed time
  t_f = jnp.arange(steps)
  valid_f = t_f[:, None] < lengths[None, :]                         # [T, B]
  valid_b = valid_f[::-1]

  def step(carry, inputs):
    h_f, h_b = carry
    g_f, g_b, v_f, v_b = inputs
    h_f = jnp.where(v_f[:, None], gru_step(h_f, g_f, fw["w_hh"], fw["b_hh"]), h_f)
    h_b = jnp.where(v_b[:, None], gru_step(h_b, g_b, bw["w_hh"], bw["b_hh"]), h_b)
    return (h_f, h_b), None

  (h_f, h_b), _ = jax.lax.scan(step, (h0[0], h0[1]), (gi_f, gi_b, valid_f, valid_b))
  return h_f, h_b


class BiGRU(nn.Module):
  """Bidirectional single-layer GRU with a learned initial state `hidden [2, H]`."""
  hidden_size: int

  @nn.compact
  def __call__(self, x: Array, lengths: Array) -> Array:
    """`x [B, T, F]`, `lengths [B]` -> `cat(h_forward, h_backward)` `[B, 2H]`."""
    h, f = self.hidden_size, x.shape[-1]
    init = _uniform(1.0 / np.sqrt(h))
    params = {}
    for direction in ("forward", "backward"):
      params[direction] = {
          "w_ih": self.param(f"{direction}_w_ih", init, (f, 3 * h)),
          "w_hh": self.param(f"{direction}_w_hh", init, (h, 3 * h)),
          "b_ih": self.param(f"{direction}_b_ih", init, (3 * h,)),
          "b_hh": self.param(f"{direction}_b_hh", init, (3 * h,)),
      }
    hidden = self.param("hidden", nn.initializers.normal(1.0), (2, h))
    h0 = jnp.broadcast_to(hidden[:, None, :], (2, x.shape[0], h)).astype(x.dtype)
    h_f, h_b = bidirectional_gru(params, x, lengths, h0)
    return jnp.concatenate([h_f, h_b], axis=-1)


class OutputNet(nn.Module):
  """Linear -> LayerNorm(eps 1e-5) -> LeakyReLU(0.2) -> Linear."""
  hidden_size: int
  output_size: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = nn.Dense(self.hidden_size, name="dense_0")(x)
    x = nn.LayerNorm(epsilon=1e-5, name="norm")(x)
    x = nn.leaky_relu(x, 0.2)
    return nn.Dense(self.output_size, name="dense_1")(x)


class MovementConvEncoder(nn.Module):
  """Two stride-2 convolutions (k=4, p=1) with LeakyReLU(0.2), then a linear layer.

  `__call__(x [B, T, F], lengths [B] or None) -> [B, T//4, output]`. With `lengths`, inputs at
  `t >= length` and first-convolution outputs at `t >= length//2` are zeroed, which reproduces
  running each sequence alone (its own zero padding) inside a padded batch. Dropout is an
  identity here (evaluation only).
  """
  hidden_size: int = 512
  output_size: int = 512

  @nn.compact
  def __call__(self, x: Array, lengths: Array | None = None) -> Array:
    if lengths is not None:
      x = jnp.where(jnp.arange(x.shape[1])[None, :, None] < lengths[:, None, None], x, 0.0)
    x = nn.Conv(self.hidden_size, (4,), strides=(2,), padding=((1, 1),), name="conv_0")(x)
    x = nn.leaky_relu(x, 0.2)
    if lengths is not None:
      x = jnp.where(jnp.arange(x.shape[1])[None, :, None] < (lengths // 2)[:, None, None], x, 0.0)
    x = nn.Conv(self.output_size, (4,), strides=(2,), padding=((1, 1),), name="conv_1")(x)
    x = nn.leaky_relu(x, 0.2)
    return nn.Dense(self.output_size, name="out_net")(x)


class MotionEncoderBiGRU(nn.Module):
  """`input_emb` Linear -> BiGRU -> OutputNet: movements `[B, T', 512]`, `[B]` -> `[B, 512]`."""
  hidden_size: int = 1024
  output_size: int = 512

  @nn.compact
  def __call__(self, movements: Array, lengths: Array) -> Array:
    x = nn.Dense(self.hidden_size, name="input_emb")(movements)
    x = BiGRU(self.hidden_size, name="gru")(x, lengths)
    return OutputNet(self.hidden_size, self.output_size, name="output_net")(x)


class TextEncoderBiGRU(nn.Module):
  """`input_emb(word + pos_emb(pos))` -> BiGRU -> OutputNet: `[B, L, 300]`, `[B, L, 15]` -> `[B, 512]`."""
  hidden_size: int = 512
  output_size: int = 512

  @nn.compact
  def __call__(self, word_emb: Array, pos_onehot: Array, lengths: Array) -> Array:
    x = word_emb + nn.Dense(word_emb.shape[-1], name="pos_emb")(pos_onehot)
    x = nn.Dense(self.hidden_size, name="input_emb")(x)
    x = BiGRU(self.hidden_size, name="gru")(x, lengths)
    return OutputNet(self.hidden_size, self.output_size, name="output_net")(x)


def init_params(key: Array, dim_pose: int = 263) -> dict[str, Any]:
  """Random parameters `{'movement', 'motion', 'text'}` (the layout `t2m_ckpt` produces)."""
  k1, k2, k3 = jax.random.split(key, 3)
  movement = MovementConvEncoder().init(k1, jnp.zeros((1, 8, dim_pose - FOOT_CONTACT_DIMS)))
  motion = MotionEncoderBiGRU().init(k2, jnp.zeros((1, 2, 512)), jnp.ones((1,), jnp.int32))
  text = TextEncoderBiGRU().init(k3, jnp.zeros((1, 3, WORD_DIM)), jnp.zeros((1, 3, NUM_POS)),
                                 jnp.ones((1,), jnp.int32))
  return {"movement": movement["params"], "motion": motion["params"], "text": text["params"]}


def renorm4t2m(features: Any, mean: Any, std: Any, eval_mean: Any, eval_std: Any) -> Any:
  """Model-space features -> evaluator space: `((x * std + mean) - eval_mean) / eval_std`."""
  return ((features * std + mean) - eval_mean) / eval_std


BATCHINGS = ("per_sequence", "padded")


@functools.partial(jax.jit, static_argnames=("batching",))
def _motion_embed(params: dict[str, Any], features: Array, lengths: Array,
                  batching: str = "per_sequence") -> Array:
  x = features[..., :-FOOT_CONTACT_DIMS]
  if batching == "padded":  # T2M's evaluation: zero-padded (in evaluator space) to the batch length
    x = jnp.where(jnp.arange(x.shape[1])[None, :, None] < lengths[:, None, None], x, 0.0)
  movements = MovementConvEncoder().apply({"params": params["movement"]}, x,
                                          lengths if batching == "per_sequence" else None)
  return MotionEncoderBiGRU().apply({"params": params["motion"]}, movements,
                                    lengths // UNIT_LENGTH)


@jax.jit
def _text_embed(params: dict[str, Any], word_emb: Array, pos_onehot: Array, lengths: Array
                ) -> Array:
  return TextEncoderBiGRU().apply({"params": params["text"]}, word_emb, pos_onehot, lengths)


def motion_embeddings(params: dict[str, Any], features: Array, lengths: Array,
                      batching: str = "per_sequence") -> Array:
  """Jittable: evaluator-space features `[B, T, D]`, frame counts `[B]` -> `[B, 512]`.

  `batching='per_sequence'` (default) gives each row the embedding of running it alone, as MLD's
  batch-1 test does; 'padded' is T2M's own evaluation, where a row zero-padded to the batch length
  lets the padding into its last movement features (up to ~0.3 apart for short rows)."""
  if batching not in BATCHINGS:
    raise InputError(f"evaluator batching must be one of {BATCHINGS}, found {batching!r}")
  return _motion_embed(params, features, lengths, batching)


def text_embeddings(params: dict[str, Any], word_emb: Array, pos_onehot: Array, lengths: Array
                    ) -> Array:
  """Jittable: GloVe `[B, L, 300]`, POS one-hots `[B, L, 15]`, token counts `[B]` -> `[B, 512]`."""
  return _text_embed(params, word_emb, pos_onehot, lengths)


def count_params(tree: Any) -> int:
  return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)))


@dataclasses.dataclass
class T2MEvaluator:
  """A loaded evaluator: parameters, the feature width it was trained on and its statistics.

  `eval_mean`/`eval_std` `[D]` are the evaluator's normalisation (`evaluator_norm/t2m_*.npy`);
  `dataset` names the data it was trained on (for error messages).
  """
  params: dict[str, Any]
  eval_mean: np.ndarray
  eval_std: np.ndarray
  dataset: str = "humanml3d"

  @property
  def dim_pose(self) -> int:
    return int(self.params["movement"]["conv_0"]["kernel"].shape[1]) + FOOT_CONTACT_DIMS

  def check_features(self, features: Any, what: str = "features") -> None:
    shape = np.shape(features)
    if len(shape) != 3 or shape[-1] != self.dim_pose:
      raise InputError(f"{what}: this evaluator was trained on {self.dataset} features of width "
                       f"{self.dim_pose} and expects [B, T, {self.dim_pose}], found {shape}; use "
                       f"an evaluator trained on the dataset these features come from")

  def to_eval_space(self, features: Any, mean: Any, std: Any) -> np.ndarray:
    """Model-space (dataset `mean`/`std` normalised) features `[B, T, D]` -> evaluator space."""
    self.check_features(features)
    return renorm4t2m(np.asarray(features, np.float32), np.asarray(mean, np.float32),
                      np.asarray(std, np.float32), self.eval_mean, self.eval_std)

  def motion_embeddings(self, features: Any, lengths: Any,
                        batching: str = "per_sequence") -> np.ndarray:
    """Evaluator-space features `[B, T, D]` and frame counts `[B]` (>= 4) -> `[B, 512]`
    (`batching`: see the module function)."""
    self.check_features(features)
    lengths = np.asarray(lengths, np.int32)
    if lengths.shape != (np.shape(features)[0],) or lengths.min() < UNIT_LENGTH \
        or lengths.max() > np.shape(features)[1]:
      raise InputError(f"lengths: expected [{np.shape(features)[0]}] frame counts in "
                       f"[{UNIT_LENGTH}, {np.shape(features)[1]}], found shape {lengths.shape} "
                       f"values {lengths.min(initial=0)}..{lengths.max(initial=0)}")
    return np.asarray(motion_embeddings(self.params, jnp.asarray(features, jnp.float32),
                                        jnp.asarray(lengths), batching))

  def text_embeddings(self, word_emb: Any, pos_onehot: Any, lengths: Any) -> np.ndarray:
    """GloVe `[B, L, 300]`, POS `[B, L, 15]`, token counts `[B]` (sos/eos included) -> `[B, 512]`."""
    b, l = np.shape(word_emb)[:2]
    lengths = np.asarray(lengths, np.int32)
    if np.shape(word_emb) != (b, l, WORD_DIM) or np.shape(pos_onehot) != (b, l, NUM_POS) \
        or lengths.shape != (b,) or lengths.min() < 1 or lengths.max() > l:
      raise InputError(f"text inputs: expected word_emb [B, L, {WORD_DIM}], pos_onehot "
                       f"[B, L, {NUM_POS}], lengths [B] in [1, L]; found {np.shape(word_emb)}, "
                       f"{np.shape(pos_onehot)}, {lengths.shape}")
    return np.asarray(text_embeddings(self.params, jnp.asarray(word_emb, jnp.float32),
                                      jnp.asarray(pos_onehot, jnp.float32), jnp.asarray(lengths)))
