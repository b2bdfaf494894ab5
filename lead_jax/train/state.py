"""The training state: one pytree holding everything a step reads and writes.

  state = TrainState.create(params, optimizer, rng=jax.random.key(0), ema=True)
  state.step [] int32 · params · opt_state (optax) · ema_params (None when EMA is off) · rng (key)

`rng` is the run's base key; the loop derives the key of step `s` as `fold_in(rng, s)`, so a resumed
run draws the same randomness as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  rng: jax.Array

  @classmethod
  def create(cls, params: Any, optimizer: optax.GradientTransformation, rng: jax.Array,
             ema: bool = False) -> "TrainState":
    """Step 0 state; `ema_params` starts as a copy of `params` when `ema` is True."""
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
               ema_params=jax.tree.map(jnp.copy, params) if ema else None, rng=rng)

  def array_items(self) -> dict[str, Any]:
    """The checkpointed array pytrees by item name (see `lead_jax.checkpoints`)."""
    items = {"params": self.params, "opt_state": self.opt_state}
    if self.ema_params is not None:
      items["ema_params"] = self.ema_params
    return items
