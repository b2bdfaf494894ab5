"""Evaluation during training: FID and R-precision of generated motions on a fixed subset.

With `config.evaluation.evaluator` set (a folder written by `lead-jax import t2m-evaluator`, or a
trained-evaluator workdir), the denoiser, projector and LCM stages generate motions for the first
`evaluation.num_items` rows of the evaluation split - fixed captions, crops and noise, so the
numbers are comparable across steps - and report `fid`, `r_precision_top1..3` and `mm_dist`
against those rows' ground truth beside their loss metrics; `train.best_metric: 'eval/fid'` then keeps the best
checkpoint (`dependencies.checkpoint: best` lets a later stage use it). Generation uses the
trained weights by the workdir rule (the EMA when the run keeps one), `evaluation.steps` sampler
steps and `evaluation.guidance_scale`. With several processes each evaluates its shard of the
split and the embeddings are gathered before any metric, so every process reports the same
global numbers.

  generation_eval = for_stage(config, text_encoder, null_emb, models, frozen_params,
                              trained="denoiser", schedule=config.scheduler)  # None when off
  eval_fn = combine(loss_eval_fn, generation_eval)   # + {'fid', 'r_precision_top1', ..., 'mm_dist'}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from lead_jax import workdir as stage_io
from lead_jax.config_loader import require_fields
from lead_jax.diffusion import make_scheduler, motion_keys
from lead_jax.errors import ConfigError
from lead_jax.generate import synthesis
from lead_jax.metrics import scores
from lead_jax.train import inputs
from lead_jax.train.state import TrainState

FIELDS = {"evaluation": ("evaluator", "num_items", "steps", "guidance_scale", "batching",
                         "cache_dir"),
          "dataset": ("joints_num",), "data": ("max_len",)}
GENERATION_BATCH = 32
SAMPLER = {"denoiser": "ddim", "projector": "ddim", "lcm": "lcm"}


def enabled(config) -> bool:
  """Whether the config asks for generation metrics (`evaluation.evaluator` set)."""
  return "evaluation" in config and bool(config.evaluation.evaluator)


def combine(*eval_fns: Callable[[TrainState], Mapping[str, float]] | None
            ) -> Callable[[TrainState], dict[str, float]] | None:
  """One evaluation function reporting every given function's metrics (None when none is given)."""
  fns = [fn for fn in eval_fns if fn is not None]
  if not fns:
    return None
  return lambda state: {k: v for fn in fns for k, v in fn(state).items()}


def all_rows(rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """The valid rows of every process, in process order (`rows [N, ...]`, `valid [N]` of the
  same N on every process)."""
  if jax.process_count() == 1:
    return rows[valid]
  rows = np.asarray(multihost_utils.process_allgather(rows, tiled=True))
  valid = np.asarray(multihost_utils.process_allgather(valid, tiled=True))
  return rows[valid]


def _subset(eval_stream: Any, count: int) -> dict[str, np.ndarray]:
  """The first `count` valid rows of this process's evaluation pass (padded to `count` rows with
  `valid` False, so every process holds arrays of the same shape)."""
  parts: dict[str, list] = {}
  kept = 0
  for batch in eval_stream:
    valid = np.asarray(batch["valid"], bool) & (np.cumsum(batch["valid"]) + kept <= count)
    for name in ("motion", "length", "text_emb", "tokens", "caption"):
      parts.setdefault(name, []).append(np.asarray(batch[name])[valid])
    kept += int(valid.sum())
    if kept >= count:
      break
  if kept == 0:
    raise ConfigError("evaluation.num_items: the evaluation split has no usable row")
  rows = {k: np.concatenate(v) for k, v in parts.items()}
  pad = count - kept
  out = {k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) for k, v in rows.items()}
  out["valid"] = np.arange(count) < kept
  return out


def make_generation_eval(config, eval_stream: Any, null_text_emb: np.ndarray, mean: np.ndarray,
                         std: np.ndarray, models: Mapping[str, Any],
                         frozen_params: Mapping[str, Any], trained: str,
                         schedule: Mapping[str, Any]) -> Callable[[TrainState], dict[str, float]]:
  """The generation metrics of `config.evaluation` for a stage whose trained module is
  `models[trained]` ('denoiser', 'projector', or the LCM student under 'denoiser' with
  `trained='lcm'`); `models` and `frozen_params` hold the other modules ('vae', 'denoiser',
  optionally 'projector') and their frozen weights; `schedule` is the denoiser's noise schedule
  (its config's `scheduler` section)."""
  require_fields(config, FIELDS, "lead_jax.train.evaluation")
  ev = config.evaluation
  per_process = -(-int(ev.num_items) // jax.process_count())
  subset = _subset(eval_stream, per_process)
  embedder, _ = stage_io.load_evaluator(ev.evaluator, mean, std, batching=ev.batching,
                                        cache_dir=ev.cache_dir or None)
  frames = int(config.data.max_len)
  gt = subset["motion"] * std + mean
  gt = np.where(np.arange(frames)[None, :, None] < subset["length"][:, None, None], gt, 0.0)
  valid = subset["valid"]
  gt_emb = all_rows(embedder.embed_motion(gt.astype(np.float32), subset["length"]), valid)
  text_emb = all_rows(embedder.embed_text(subset), valid)
  state = make_scheduler(schedule, SAMPLER[trained], int(ev.steps))
  key_stage = "denoiser" if trained == "lcm" else trained
  vae, denoiser, projector = models["vae"], models["denoiser"], models.get("projector")
  joints_num = int(config.dataset.joints_num)

  @jax.jit
  def generate(params, cond, lengths, keys):
    features, _ = synthesis.synthesize(
        vae, denoiser, projector, params, cond, jnp.asarray(null_text_emb, jnp.float32), lengths,
        keys, jnp.float32(ev.guidance_scale), state, jnp.asarray(mean), jnp.asarray(std), frames,
        joints_num)
    return features

  first_row = jax.process_index() * per_process
  keys = motion_keys(jax.random.key(int(config.seed)), first_row + np.arange(per_process),
                     np.zeros(per_process, np.int64))

  def generation_eval(train_state: TrainState) -> dict[str, float]:
    weights = (train_state.ema_params if train_state.ema_params is not None
               else train_state.params)
    params = {**frozen_params, key_stage: weights}
    features = []
    for begin in range(0, per_process, GENERATION_BATCH):
      rows = np.arange(begin, begin + GENERATION_BATCH) % per_process  # fixed shape: wrap around
      features.append(np.asarray(generate(
          params, jnp.asarray(subset["text_emb"][rows], jnp.float32),
          jnp.asarray(subset["length"][rows], jnp.int32), keys[rows]))[: per_process - begin])
    generated = np.concatenate(features)[:per_process]
    if not np.isfinite(generated).all():  # ranked last by a 'min' best_metric, never best
      return {"fid": float("inf"), "r_precision_top1": 0.0, "mm_dist": float("inf")}
    gen_emb = all_rows(embedder.embed_motion(generated, subset["length"]), valid)
    group = min(32, len(gen_emb))
    r = scores.r_precision(text_emb, gen_emb, min(3, group), group)
    return {"fid": scores.fid(gt_emb, gen_emb),
            **{f"r_precision_top{k + 1}": v for k, v in enumerate(r)},
            "mm_dist": scores.mm_dist(text_emb, gen_emb, group)}

  return generation_eval


def for_stage(config, text_encoder: Any, null_text_emb: np.ndarray, models: Mapping[str, Any],
              frozen_params: Mapping[str, Any], trained: str, schedule: Mapping[str, Any]
              ) -> Callable[[TrainState], dict[str, float]] | None:
  """`make_generation_eval` over the stage's evaluation split (frame batches of `data.eval_split`
  whichever source the loss uses) and its dataset statistics, or None when `enabled(config)` is
  False or the run does not evaluate (`train.eval_every` 0)."""
  if not enabled(config) or not int(config.train.eval_every):
    return None
  mean, std = stage_io.dataset_stats(config)
  stream = inputs.make_eval_stream(config, text_encoder)
  return make_generation_eval(config, stream, null_text_emb, mean, std, models, frozen_params,
                              trained, schedule)
