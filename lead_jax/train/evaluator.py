"""Training the text-motion evaluator (`lead_jax.metrics.trainable_evaluator`) for datasets
without a published one (custom data, DeepMimic, the Bandai study).

Loss: T2M's contrastive margin loss (the one the published evaluator was trained with), chosen over
InfoNCE because it acts directly on the Euclidean distances that R-precision, MM-Dist, FID and
diversity measure and keeps their scale bounded by the margin:
  loss = mean_i ||t_i - m_i||^2 + mean_i max(0, margin - ||t_i - m_(i+s mod B)||)^2,
s uniform in [1, B) per step (a shifted batch supplies the negative pairs). Motions enter in the
dataset's own normalisation (the stream's), so the evaluator's statistics are the dataset's Mean/Std.

  lead-jax train --config=configs/evaluator_demo.py --workdir=runs/evaluator
Evaluation (`train.eval_every`): R-precision top-1 and MM-Dist on the evaluation split.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax.config_loader import require_fields
from lead_jax.errors import ConfigError
from lead_jax.metrics import scores, trainable_evaluator
from lead_jax.metrics.trainable_evaluator import TrainableEvaluator
from lead_jax.train import mesh as mesh_lib
from lead_jax.train import stage
from lead_jax.train.step import LossFn, make_train_program

Array = jax.Array


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


def make_loss_fn(model: TrainableEvaluator, margin: float) -> LossFn:
  """`loss_fn(params, batch, frozen, key)`: the margin loss with a random shift s in [1, B)."""
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


def make_eval_fn(model: TrainableEvaluator, config, eval_stream, mesh):
  """`eval_fn(state) -> {r_precision_top1, mm_dist}` on the eval split (groups of 32 or less) over
  the valid rows of the global batches (every process's embeddings, gathered)."""
  require_fields(config, {"train": ("eval_batches",)}, "lead_jax.train.evaluator.make_eval_fn")
  limit = int(config.train.eval_batches)
  apply = jax.jit(lambda p, m, l, t: model.apply({"params": p}, m, l, t))

  def eval_fn(state) -> dict[str, float]:
    ms, ts = [], []
    for batch in stage.eval_batches(eval_stream, limit):
      batch = mesh_lib.to_global_batch(batch, mesh)
      m, t, valid = mesh_lib.to_host(
          (*apply(state.params, batch["motion"], batch["length"], batch["text_emb"]),
           batch["valid"]))
      ms.append(m[valid])
      ts.append(t[valid])
    m, t = np.concatenate(ms), np.concatenate(ts)
    group = min(32, len(m))
    return {"r_precision_top1": scores.r_precision(t, m, 1, group)[0],
            "mm_dist": scores.mm_dist(t, m, group)}

  return eval_fn


def train_and_evaluate(config, workdir: str, *, text_encoder: Any = None):
  """Trains (or resumes) the evaluator of `config` in `workdir`; returns the final TrainState."""
  _check_config(config)
  mesh = stage.start_stage(config)
  model = trainable_evaluator.build(config.evaluator)
  train_stream, eval_stream = stage.stage_streams(config, text_encoder)
  program = make_train_program(
      config, mesh, lambda key: trainable_evaluator.init_params(model, key),
      make_loss_fn(model, float(config.evaluator.margin)))
  eval_fn = make_eval_fn(model, config, eval_stream, mesh) if eval_stream is not None else None
  return stage.run_stage(config, workdir, program, train_stream, None, eval_fn, mesh)
