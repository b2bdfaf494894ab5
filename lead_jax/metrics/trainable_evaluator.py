"""A text-motion matching evaluator for datasets without a published one (custom data, DeepMimic).

Same motion-encoder family as the T2M evaluator (`t2m_evaluator.MovementConvEncoder`: two
stride-2 convolutions; `MotionEncoderBiGRU`: packed bidirectional GRU with learned initial state),
sizes from `config.evaluator`. Text side: the pooled caption embedding of our frozen text encoder
(the `text_emb` the data stream already carries) through a small MLP head (Linear -> LayerNorm ->
LeakyReLU -> Linear), so no GloVe files are needed. It is trained with T2M's contrastive margin
loss (`lead_jax.train.evaluator`) on motions in the dataset's own normalisation.

  lead-jax train --config=configs/evaluator_demo.py --workdir=runs/evaluator   # lead_jax.train.evaluator
  evaluator = lead_jax.workdir.load_trained_evaluator("runs/evaluator")       # -> TrainedEvaluator
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.errors import InputError
from lead_jax.metrics.t2m_evaluator import MotionEncoderBiGRU, MovementConvEncoder

Array = jax.Array


class TrainableEvaluator(nn.Module):
  """Motion `[B, T, nfeats]` + lengths `[B]` and pooled text `[B, text_dim]` -> two `[B, output]`."""
  nfeats: int
  text_dim: int
  drop_last: int = 4
  unit_length: int = 4
  movement_hidden: int = 512
  movement_out: int = 512
  motion_hidden: int = 1024
  text_hidden: int = 512
  output_dim: int = 512

  def setup(self):
    self.movement = MovementConvEncoder(self.movement_hidden, self.movement_out)
    self.motion = MotionEncoderBiGRU(self.motion_hidden, self.output_dim)
    self.text_in = nn.Dense(self.text_hidden)
    self.text_norm = nn.LayerNorm(epsilon=1e-5)
    self.text_out = nn.Dense(self.output_dim)

  def encode_motion(self, motion: Array, lengths: Array) -> Array:
    x = motion[..., :motion.shape[-1] - self.drop_last]
    movements = self.movement(x, lengths)
    return self.motion(movements, jnp.maximum(lengths // self.unit_length, 1))

  def encode_text(self, text_emb: Array) -> Array:
    return self.text_out(nn.leaky_relu(self.text_norm(self.text_in(text_emb)), 0.2))

  def __call__(self, motion: Array, lengths: Array, text_emb: Array) -> tuple[Array, Array]:
    return self.encode_motion(motion, lengths), self.encode_text(text_emb)


def build(cfg: Any) -> TrainableEvaluator:
  fields = {f.name for f in dataclasses.fields(TrainableEvaluator)} - {"parent", "name"}
  return TrainableEvaluator(**{k: cfg[k] for k in fields if k in cfg})


def init_params(model: TrainableEvaluator, key: Array) -> Any:
  steps = 2 * model.unit_length
  return model.init(key, jnp.zeros((1, steps, model.nfeats)), jnp.full((1,), steps, jnp.int32),
                    jnp.zeros((1, model.text_dim)))["params"]


@dataclasses.dataclass
class TrainedEvaluator:
  """A trained evaluator: embeds model-space (dataset-normalised) motions and pooled captions."""
  model: TrainableEvaluator
  params: Any
  dataset: str = "custom"

  def __post_init__(self):
    self._motion = jax.jit(lambda p, m, l: self.model.apply({"params": p}, m, l,
                                                            method="encode_motion"))
    self._text = jax.jit(lambda p, t: self.model.apply({"params": p}, t, method="encode_text"))

  @property
  def dim_pose(self) -> int:
    return int(self.model.nfeats)

  def check_features(self, features: Any, what: str = "features") -> None:
    shape = np.shape(features)
    if len(shape) != 3 or shape[-1] != self.dim_pose:
      raise InputError(f"{what}: this evaluator was trained on {self.dataset} features of width "
                       f"{self.dim_pose} and expects [B, T, {self.dim_pose}], found {shape}")

  def motion_embeddings(self, features: Any, lengths: Any) -> np.ndarray:
    self.check_features(features)
    lengths = np.asarray(lengths, np.int32)
    if lengths.shape != (np.shape(features)[0],) or lengths.min() < self.model.unit_length:
      raise InputError(f"lengths: expected [{np.shape(features)[0]}] values >= "
                       f"{self.model.unit_length}, found {lengths}")
    return np.asarray(self._motion(self.params, jnp.asarray(features, jnp.float32),
                                   jnp.asarray(lengths)))

  def text_embeddings(self, text_emb: Any) -> np.ndarray:
    if np.ndim(text_emb) != 2 or np.shape(text_emb)[1] != self.model.text_dim:
      raise InputError(f"text_emb: expected [B, {self.model.text_dim}], found "
                       f"{np.shape(text_emb)}")
    return np.asarray(self._text(self.params, jnp.asarray(text_emb, jnp.float32)))
