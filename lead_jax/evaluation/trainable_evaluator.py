"""A text-motion matching evaluator for datasets without a published one (custom data, DeepMimic).

Same motion-encoder family as the T2M evaluator (`t2m_evaluator.MovementConvEncoder`: two
stride-2 convolutions; `MotionEncoderBiGRU`: packed bidirectional GRU with learned initial state),
sizes from `config.evaluator`. Text side: the pooled caption embedding of our frozen text encoder
(the `text_emb` the data stream already carries) through a small MLP head (Linear -> LayerNorm ->
LeakyReLU -> Linear), so no GloVe files are needed.

Loss: T2M's contrastive margin loss (the one the published evaluator was trained with), chosen over
InfoNCE because it acts directly on the Euclidean distances that R-precision, MM-Dist, FID and
diversity measure and keeps their scale bounded by the margin:
  loss = mean_i ||t_i - m_i||^2 + mean_i max(0, margin - ||t_i - m_(i+s mod B)||)^2,
s uniform in [1, B) per step (a shifted batch supplies the negative pairs). Motions enter in the
dataset's own normalisation (the stream's), so `eval_mean/std` of this evaluator are Mean/Std.

  from lead_jax.evaluation import trainable_evaluator as te
  state = te.train_and_evaluate(config, workdir)       # config: configs/evaluator_demo.py
  evaluator = te.load_trained_evaluator(workdir)       # -> TrainedEvaluator
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lead_jax import checkpoints
from lead_jax.errors import ConfigError, InputError
from lead_jax.evaluation.t2m_evaluator import MotionEncoderBiGRU, MovementConvEncoder

Array = jax.Array


def evaluator_config(nfeats: int = 263, text_dim: int = 384) -> ml_collections.ConfigDict:
  """Model section `evaluator` (sizes) and its loss fields."""
  return ml_collections.ConfigDict({
      "nfeats": nfeats, "text_dim": text_dim, "drop_last": 4, "unit_length": 4,
      "movement_hidden": 512, "movement_out": 512, "motion_hidden": 1024, "text_hidden": 512,
      "output_dim": 512, "margin": 10.0})


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


def contrastive_margin_loss(text: Array, motion: Array, shift: Array, margin: float,
                            weights: Array | None = None) -> dict[str, Array]:
  """T2M's loss: positive distances squared + hinge on the shifted (negative) pairs, squared."""
  w = jnp.ones(text.shape[0]) if weights is None else weights.astype(jnp.float32)
  n = jnp.maximum(w.sum(), 1.0)
  d_pos = jnp.sqrt(jnp.sum(jnp.square(text - motion), -1) + 1e-12)
  negative = jnp.roll(motion, shift, axis=0)
  w_neg = w * jnp.roll(w, shift)
  d_neg = jnp.sqrt(jnp.sum(jnp.square(text - negative), -1) + 1e-12)
  pos = jnp.sum(w * jnp.square(d_pos)) / n
  neg = jnp.sum(w_neg * jnp.square(jnp.maximum(margin - d_neg, 0.0))) / jnp.maximum(w_neg.sum(), 1)
  return {"loss": pos + neg, "pos_dist": jnp.sum(w * d_pos) / n,
          "neg_dist": jnp.sum(w_neg * d_neg) / jnp.maximum(w_neg.sum(), 1)}


def make_loss_fn(model: TrainableEvaluator, margin: float):
  def loss_fn(params, batch, frozen, key):
    del frozen
    m, t = model.apply({"params": params}, batch["motion"], batch["length"], batch["text_emb"])
    shift = jax.random.randint(key, (), 1, batch["motion"].shape[0])
    terms = contrastive_margin_loss(t.astype(jnp.float32), m.astype(jnp.float32), shift, margin)
    return terms["loss"], {k: v for k, v in terms.items() if k != "loss"}
  return loss_fn


def _check_config(config) -> None:
  if "evaluator" not in config:
    raise ConfigError("config has no `evaluator` section (see configs/evaluator_demo.py)")
  if int(config.evaluator.text_dim) != int(config.text_encoder.dim):
    raise ConfigError(f"config.evaluator.text_dim={config.evaluator.text_dim} but "
                      f"config.text_encoder.dim={config.text_encoder.dim}")
  if int(config.data.min_len) < int(config.evaluator.unit_length):
    raise ConfigError("config.data.min_len must be >= config.evaluator.unit_length")


def make_eval_fn(model: TrainableEvaluator, config, eval_stream):
  """`eval_fn(state) -> {loss, r_precision_top1, mm_dist}` on the eval split (groups of 32 or less)."""
  from lead_jax.evaluation import metrics  # pylint: disable=import-outside-toplevel
  from lead_jax.train import common  # pylint: disable=import-outside-toplevel
  limit = int(config.train.get("eval_batches", 0))
  apply = jax.jit(lambda p, m, l, t: model.apply({"params": p}, m, l, t))

  def eval_fn(state) -> dict[str, float]:
    ms, ts = [], []
    for batch in common.eval_batches(eval_stream, limit):
      m, t = jax.device_get(apply(state.params, batch["motion"], batch["length"],
                                  batch["text_emb"]))
      ms.append(np.asarray(m)[batch["valid"]])
      ts.append(np.asarray(t)[batch["valid"]])
    m, t = np.concatenate(ms), np.concatenate(ts)
    group = min(32, len(m))
    return {"r_precision_top1": metrics.r_precision(t, m, 1, group)[0],
            "mm_dist": metrics.mm_dist(t, m, group)}

  return eval_fn


def train_and_evaluate(config, workdir: str, *, text_encoder: Any = None):
  """Trains (or resumes) the evaluator of `config` in `workdir`; returns the final TrainState."""
  from lead_jax.train import common  # pylint: disable=import-outside-toplevel
  _check_config(config)
  mesh = common.start_stage(config)
  model = build(config.evaluator)
  train_stream, eval_stream = common.stage_streams(config, text_encoder)
  program = common.make_train_program(config, mesh, lambda key: init_params(model, key),
                                      make_loss_fn(model, float(config.evaluator.margin)))
  eval_fn = make_eval_fn(model, config, eval_stream) if eval_stream is not None else None
  return common.run_stage(config, workdir, program, train_stream, None, eval_fn, mesh)


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


def load_trained_evaluator(workdir: str, item: str = "params") -> TrainedEvaluator:
  """The evaluator trained in `workdir` (architecture from its saved config)."""
  config = checkpoints.load_config(workdir)
  if "evaluator" not in config:
    raise ConfigError(f"{workdir}: its saved config has no `evaluator` section; is this an "
                      f"evaluator workdir?")
  model = build(config["evaluator"])
  target = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
  params = checkpoints.load_params(workdir, item, target=target)
  name = config.get("data", {}).get("builder", "custom")
  return TrainedEvaluator(model, params, name)
