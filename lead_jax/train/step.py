"""The one jitted training step every stage runs.

A stage supplies a pure loss `loss_fn(params, batch, frozen, key) -> (loss, aux)` and an
initialiser `init_params(key) -> params`; `make_train_program` turns them into

  init(rng) -> TrainState                                 jitted; state laid out on the mesh
  step(state, batch, frozen, key) -> (state, metrics)    ONE jitted function: donates `state`
                                                          (split over 'fsdp', `lead_jax.train.mesh`),
                                                          batch split over the whole mesh,
                                                          frozen / key / metrics replicated

Config fields: `config.optimizer` (`lead_jax.train.optim`) and
  train.num_steps       calls of the step (sets the schedule's length)
  train.ema_decay       EMA of the params, updated after each optimiser update (0 = off)
  train.compute_dtype   'float32' | 'bfloat16': params, frozen params and floating batch entries
                        cast for the loss; master params, gradients and optimiser stay float32
  train.dropout_rng     the generator of the dropout masks alone ('counter_hash' | 'threefry' |
                        'rbg' | 'unsafe_rbg', `dropout_rngs`); keys, parameter init and diffusion
                        noise stay threefry
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from lead_jax.config_loader import require_fields
from lead_jax.errors import ConfigError
from lead_jax.models import precision
from lead_jax.train import hash_rng
from lead_jax.train import mesh as mesh_lib
from lead_jax.train.optim import make_optimizer
from lead_jax.train.state import TrainState

LossFn = Callable[[Any, Mapping[str, jax.Array], Any, jax.Array],
                  tuple[jax.Array, Mapping[str, jax.Array]]]
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
DROPOUT_RNGS = ("counter_hash", "threefry", "rbg", "unsafe_rbg")
FIELDS = {"train": ("num_steps", "ema_decay", "compute_dtype"), "optimizer": ("grad_accum_steps",)}


def cast_floating(tree: Any, dtype) -> Any:
  """Floating leaves of `tree` cast to `dtype` (integer / bool / key leaves unchanged)."""
  def cast(x):
    if isinstance(x, jax.Array | np.ndarray) and jnp.issubdtype(x.dtype, jnp.floating):
      return x.astype(dtype)
    return x
  return jax.tree.map(cast, tree)


def ema_update(ema: Any, params: Any, decay: float | jax.Array) -> Any:
  """`decay * ema + (1 - decay) * params`, leafwise."""
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def dropout_rng_impl(config) -> str:
  """`config.train.dropout_rng`, checked against `DROPOUT_RNGS`."""
  require_fields(config, {"train": ("dropout_rng",)}, "lead_jax.train.step.dropout_rng_impl")
  impl = config.train.dropout_rng
  if impl not in DROPOUT_RNGS:
    raise ConfigError(f"config.train.dropout_rng={impl!r}; expected one of {DROPOUT_RNGS}")
  return impl


def dropout_rngs(key: jax.Array, impl: str) -> dict[str, jax.Array]:
  """Flax `rngs` of a module's dropout, a pure function of the step's threefry `key`:
  `{'dropout': key}` for 'threefry'; else a key of `impl` made from words drawn with `key`:
  'counter_hash' (`lead_jax.train.hash_rng`: two hash rounds per word, the cheapest on every
  backend), 'rbg' / 'unsafe_rbg' (XLA's RngBitGenerator: cheap on accelerators, expanded into a
  counter cipher on CPU)."""
  if impl == "threefry":
    return {"dropout": key}
  if impl == hash_rng.NAME:
    return {"dropout": hash_rng.key_from(key)}
  return {"dropout": jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl=impl)}


@jax.jit
def step_key(rng: jax.Array, step: jax.Array) -> jax.Array:
  """The key of step `step`: `fold_in(rng, step)` (independent of resumes)."""
  return jax.random.fold_in(rng, step)


@dataclasses.dataclass(frozen=True)
class TrainProgram:
  """The compiled pieces of a stage: `init(rng) -> TrainState` and the jitted `step`."""
  init: Callable[[jax.Array], TrainState]
  step: Callable[..., tuple[TrainState, dict[str, jax.Array]]]
  optimizer: optax.GradientTransformation
  lr_fn: optax.Schedule
  mesh: Mesh


def make_train_program(config, mesh: Mesh, init_params: Callable[[jax.Array], Any],
                       loss_fn: LossFn, ema_in_frozen: str | None = None) -> TrainProgram:
  """Builds `init` and the single jitted `step(state, batch, frozen, key) -> (state, metrics)`.

  `loss_fn(params, batch, frozen, key)` returns a scalar loss and a flat dict of scalar terms.
  `metrics` holds `loss`, the terms, `grad_norm`, `param_norm` and `lr`, all float32 scalars.
  With `ema_in_frozen` (needs `train.ema_decay > 0`), the loss also reads the EMA params, before
  this step's update and without gradient, as `frozen[ema_in_frozen]` (consistency distillation's
  target network, `lead_jax.train.lcm`).
  """
  require_fields(config, FIELDS, "lead_jax.train.step.make_train_program")
  train_cfg = config.train
  optimizer, lr_fn = make_optimizer(config.optimizer, int(train_cfg.num_steps))
  ema_decay = float(train_cfg.ema_decay)
  accum = int(config.optimizer.grad_accum_steps)
  dtype_name = train_cfg.compute_dtype
  if dtype_name not in COMPUTE_DTYPES:
    raise ConfigError(f"config.train.compute_dtype={dtype_name!r}; expected {list(COMPUTE_DTYPES)}")
  compute_dtype = COMPUTE_DTYPES[dtype_name]
  mixed = compute_dtype != jnp.float32
  if ema_in_frozen and ema_decay <= 0:
    raise ConfigError(f"the loss reads the EMA params as frozen[{ema_in_frozen!r}]: set "
                      "config.train.ema_decay > 0")

  def init(rng: jax.Array) -> TrainState:
    init_key, run_key = jax.random.split(rng)
    return TrainState.create(init_params(init_key), optimizer, rng=run_key, ema=ema_decay > 0)

  def step(state: TrainState, batch: dict[str, jax.Array], frozen: Any,
           key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    if ema_in_frozen:
      frozen = {**frozen, ema_in_frozen: jax.lax.stop_gradient(state.ema_params)}
    if mixed:
      batch, frozen = cast_floating(batch, compute_dtype), cast_floating(frozen, compute_dtype)

    def objective(params):
      if mixed:
        params = cast_floating(params, compute_dtype)
      loss, aux = loss_fn(params, batch, frozen, key)
      return loss.astype(jnp.float32), aux

    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema_params = state.ema_params
    if ema_params is not None:
      # With accumulation the params move once every `accum` calls: update the EMA only then.
      applied = (state.step + 1) % accum == 0
      ema_params = ema_update(ema_params, params, jnp.where(applied, ema_decay, 1.0))
    metrics = {"loss": loss, **{k: v.astype(jnp.float32) for k, v in aux.items()},
               "grad_norm": optax.global_norm(grads), "param_norm": optax.global_norm(params),
               "lr": jnp.asarray(lr_fn(state.step), jnp.float32)}
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              ema_params=ema_params)
    return new_state, metrics

  state_layout = mesh_lib.state_shardings(mesh, jax.eval_shape(init, jax.random.key(0)))
  rep, batched = mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)
  return TrainProgram(
      init=jax.jit(init, out_shardings=state_layout),
      step=jax.jit(step, in_shardings=(state_layout, batched, rep, rep),
                   out_shardings=(state_layout, rep), donate_argnums=(0,),
                   compiler_options=precision.compiler_options(dtype_name)),
      optimizer=optimizer, lr_fn=lr_fn, mesh=mesh)
