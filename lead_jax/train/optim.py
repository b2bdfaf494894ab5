"""The optimiser of every stage: AdamW with a warmup + decay schedule, clipping and accumulation.

Config fields (`config.optimizer`, defaults in `configs/train_common.py:optimizer_config`):
  learning_rate, b1, b2, eps, weight_decay   AdamW (MLD: 1e-4, .9, .999, 1e-8, .01 on every param)
  schedule        'constant' | 'cosine' | 'linear' after `warmup_steps` of linear warmup from 0
  decay_steps     length of the decay (0 = the rest of training); `end_lr_factor` its final rate
  grad_clip_norm  global-norm clipping (0 = off)
  grad_accum_steps  gradients of this many calls averaged into one update (`optax.MultiSteps`)
"""

from __future__ import annotations

import optax

from lead_jax.config_loader import require_fields
from lead_jax.errors import ConfigError

FIELDS = ("learning_rate", "b1", "b2", "eps", "weight_decay", "schedule", "warmup_steps",
          "decay_steps", "end_lr_factor", "grad_clip_norm", "grad_accum_steps")


def _require(opt_cfg, reader: str) -> None:
  require_fields({"optimizer": opt_cfg}, {"optimizer": FIELDS}, reader)


def make_lr_schedule(opt_cfg, num_steps: int) -> optax.Schedule:
  """Learning rate per optimiser update: warmup (linear from 0) then constant / cosine / linear."""
  _require(opt_cfg, "lead_jax.train.optim.make_lr_schedule")
  lr = float(opt_cfg.learning_rate)
  warmup = int(opt_cfg.warmup_steps)
  decay_steps = int(opt_cfg.decay_steps) or max(num_steps - warmup, 1)
  end = lr * float(opt_cfg.end_lr_factor)
  kind = opt_cfg.schedule
  if kind == "constant":
    main = optax.constant_schedule(lr)
  elif kind == "cosine":
    main = optax.cosine_decay_schedule(lr, decay_steps, alpha=end / lr if lr else 0.0)
  elif kind == "linear":
    main = optax.linear_schedule(lr, end, decay_steps)
  else:
    raise ConfigError(f"config.optimizer.schedule={kind!r}; expected constant, cosine or linear")
  if warmup <= 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(opt_cfg, num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW as MLD (reference §2.6), optional global-norm clipping, gradient accumulation.

  `num_steps` counts calls of the step (micro-steps). Returns the transformation and
  `lr_fn(micro_step)`, the rate applied at a given call of the step.
  """
  _require(opt_cfg, "lead_jax.train.optim.make_optimizer")
  accum = int(opt_cfg.grad_accum_steps)
  if accum < 1:
    raise ConfigError(f"config.optimizer.grad_accum_steps must be >= 1, got {accum}")
  schedule = make_lr_schedule(opt_cfg, max(num_steps // accum, 1))
  parts = []
  clip = float(opt_cfg.grad_clip_norm)
  if clip > 0:
    parts.append(optax.clip_by_global_norm(clip))
  parts.append(optax.adamw(schedule, b1=float(opt_cfg.b1), b2=float(opt_cfg.b2),
                           eps=float(opt_cfg.eps), weight_decay=float(opt_cfg.weight_decay)))
  tx = optax.chain(*parts) if len(parts) > 1 else parts[0]
  if accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accum).gradient_transformation()
  return tx, (lambda step: schedule(step // accum))
