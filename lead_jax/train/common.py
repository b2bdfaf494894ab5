"""What every stage trainer shares: mesh, optimiser, the jitted step, and the training loop.

A stage trainer supplies a pure loss `loss_fn(params, batch, frozen, key) -> (loss, aux)` and an
initialiser `init_params(key) -> params`; `make_train_program` turns them into

  init(rng) -> TrainState                                   jitted, replicated output
  step(state, batch, frozen, key) -> (state, metrics)      ONE jitted function: donates `state`,
                                                            batch sharded on the mesh's data axis,
                                                            params / frozen / key replicated

and `run_training(config, workdir, init_fn, step_fn, stream, frozen, eval_fn)` runs the loop:
progress bar (rate, ETA), scalars to `WORKDIR/metrics.jsonl` and TensorBoard event files,
checkpoints every `train.checkpoint_every` steps (and at the end and on SIGTERM), an evaluation
hook every `train.eval_every` steps, a stop with `NonFiniteLossError` naming the step at the first
non-finite loss, and resume from the workdir's latest checkpoint (params, optimiser, EMA, step, base
PRNG key and the stream's position), so a resumed run reproduces an uninterrupted one step for step.

Config fields read here (see `configs/train_common.py` for defaults):
  seed; multihost; mesh.shape, mesh.axis_names;
  optimizer.{learning_rate, b1, b2, eps, weight_decay, schedule ('constant'|'cosine'|'linear'),
    warmup_steps, decay_steps (0 -> train.num_steps), end_lr_factor, grad_clip_norm (0 = off),
    grad_accum_steps};
  train.{num_steps, log_every, checkpoint_every, eval_every, max_to_keep, best_metric, best_mode,
    ema_decay (0 = off), compute_dtype ('float32'|'bfloat16'), resume, progress, async_checkpoint}.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lead_jax import checkpoints, data
from lead_jax import workdir as stage_io
from lead_jax.errors import ConfigError, LeadJaxError
from lead_jax.models import precision
from lead_jax.train import inputs
from lead_jax.train.metric_writers import MetricWriter
from lead_jax.train.state import TrainState

LossFn = Callable[[Any, Mapping[str, jax.Array], Any, jax.Array],
                  tuple[jax.Array, Mapping[str, jax.Array]]]
DATA_AXIS = "data"


class NonFiniteLossError(LeadJaxError, FloatingPointError):
  """The training loss became NaN or infinite."""


# ---- devices ------------------------------------------------------------------------------------
_distributed_initialized = False


def maybe_initialize_distributed(config) -> None:
  """`jax.distributed.initialize()` once, when `config.multihost` is set (cluster auto-detection)."""
  global _distributed_initialized
  if config.get("multihost", False) and not _distributed_initialized:
    jax.distributed.initialize()
    _distributed_initialized = True


def make_mesh(config) -> Mesh:
  """The device mesh of `config.mesh` (`shape` with at most one -1 = "the remaining devices",
  `axis_names` with a 'data' axis); default: data-parallel over all devices."""
  mesh_cfg = config.get("mesh", None) or {}
  shape = tuple(int(s) for s in mesh_cfg.get("shape", (-1,)))
  names = tuple(mesh_cfg.get("axis_names", (DATA_AXIS,)))
  if len(shape) != len(names) or DATA_AXIS not in names:
    raise ConfigError(f"config.mesh: shape {shape} and axis_names {names} must have equal length "
                      f"and name a '{DATA_AXIS}' axis")
  n = jax.device_count()
  known = math.prod(s for s in shape if s != -1)
  if shape.count(-1) > 1 or known <= 0 or n % known:
    raise ConfigError(f"config.mesh.shape {shape} does not divide the {n} devices")
  shape = tuple(n // known if s == -1 else s for s in shape)
  if math.prod(shape) != n:
    raise ConfigError(f"config.mesh.shape {shape} uses {math.prod(shape)} devices; {n} are present")
  return jax.make_mesh(shape, names, axis_types=(jax.sharding.AxisType.Auto,) * len(names))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over every mesh axis, the rest replicated (`data.to_global_batch`'s
  default)."""
  return NamedSharding(mesh, P(mesh.axis_names))


def to_global_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """The step's input: `lead_jax.data.to_global_batch` of the array fields of a local batch."""
  return data.to_global_batch(data.numeric_fields(batch), mesh, batch_sharding(mesh))


# ---- optimiser ----------------------------------------------------------------------------------
def make_lr_schedule(opt_cfg, num_steps: int) -> optax.Schedule:
  """Learning rate per optimiser update: warmup (linear from 0) then constant / cosine / linear."""
  lr = float(opt_cfg.learning_rate)
  warmup = int(opt_cfg.get("warmup_steps", 0))
  decay_steps = int(opt_cfg.get("decay_steps", 0)) or max(num_steps - warmup, 1)
  end = lr * float(opt_cfg.get("end_lr_factor", 0.0))
  kind = opt_cfg.get("schedule", "constant")
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
  """AdamW as MLD (torch defaults: b1 .9, b2 .999, eps 1e-8, weight decay .01 on every parameter;
  reference §2.6), optional global-norm clipping, gradient accumulation with `optax.MultiSteps`.

  Returns the transformation and `lr_fn(micro_step)`, the rate applied at a given call of `step`.
  """
  accum = int(opt_cfg.get("grad_accum_steps", 1))
  if accum < 1:
    raise ConfigError(f"config.optimizer.grad_accum_steps must be >= 1, got {accum}")
  schedule = make_lr_schedule(opt_cfg, max(num_steps // accum, 1))
  parts = []
  clip = float(opt_cfg.get("grad_clip_norm", 0.0))
  if clip > 0:
    parts.append(optax.clip_by_global_norm(clip))
  parts.append(optax.adamw(schedule, b1=float(opt_cfg.get("b1", 0.9)),
                           b2=float(opt_cfg.get("b2", 0.999)), eps=float(opt_cfg.get("eps", 1e-8)),
                           weight_decay=float(opt_cfg.get("weight_decay", 0.01))))
  tx = optax.chain(*parts) if len(parts) > 1 else parts[0]
  if accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accum).gradient_transformation()
  return tx, (lambda step: schedule(step // accum))


# ---- the step -----------------------------------------------------------------------------------
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


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


@dataclasses.dataclass(frozen=True)
class TrainProgram:
  """The compiled pieces of a stage: `init(rng) -> TrainState` and the jitted `step`."""
  init: Callable[[jax.Array], TrainState]
  step: Callable[..., tuple[TrainState, dict[str, jax.Array]]]
  optimizer: optax.GradientTransformation
  lr_fn: optax.Schedule
  mesh: Mesh


def make_train_program(config, mesh: Mesh, init_params: Callable[[jax.Array], Any],
                       loss_fn: LossFn) -> TrainProgram:
  """Builds `init` and the single jitted `step(state, batch, frozen, key) -> (state, metrics)`.

  `loss_fn(params, batch, frozen, key)` returns a scalar loss and a flat dict of scalar terms;
  with `train.compute_dtype='bfloat16'` it receives params, frozen params and floating batch
  entries cast to bfloat16 (the master params, gradients and optimiser stay float32). `metrics`
  holds `loss`, the terms, `grad_norm`, `param_norm` and `lr`, all float32 scalars.
  """
  train_cfg = config.train
  optimizer, lr_fn = make_optimizer(config.optimizer, int(train_cfg.num_steps))
  ema_decay = float(train_cfg.get("ema_decay", 0.0))
  accum = int(config.optimizer.get("grad_accum_steps", 1))
  dtype_name = train_cfg.get("compute_dtype", "float32")
  if dtype_name not in COMPUTE_DTYPES:
    raise ConfigError(f"config.train.compute_dtype={dtype_name!r}; expected {list(COMPUTE_DTYPES)}")
  compute_dtype = COMPUTE_DTYPES[dtype_name]
  mixed = compute_dtype != jnp.float32

  def init(rng: jax.Array) -> TrainState:
    init_key, run_key = jax.random.split(rng)
    return TrainState.create(init_params(init_key), optimizer, rng=run_key, ema=ema_decay > 0)

  def step(state: TrainState, batch: dict[str, jax.Array], frozen: Any,
           key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
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

  rep, batched = replicated(mesh), batch_sharding(mesh)
  return TrainProgram(
      init=jax.jit(init, out_shardings=rep),
      step=jax.jit(step, in_shardings=(rep, batched, rep, rep), out_shardings=(rep, rep),
                   donate_argnums=(0,), compiler_options=precision.compiler_options(dtype_name)),
      optimizer=optimizer, lr_fn=lr_fn, mesh=mesh)


@jax.jit
def step_key(rng: jax.Array, step: jax.Array) -> jax.Array:
  """The key of step `step`: `fold_in(rng, step)` (independent of resumes)."""
  return jax.random.fold_in(rng, step)


# ---- stage plumbing -----------------------------------------------------------------------------
class CaptionsUnused:
  """Text "encoder" of width 0 for stages that ignore captions (the VAE): batches then carry
  `text_emb [B, 0]` and no real text model is loaded."""
  name = "unused"
  embed_dim = 0

  def encode(self, texts: list[str]) -> np.ndarray:
    return np.zeros((len(texts), 0), np.float32)


def load_text_encoder(config) -> Any:
  """The frozen text encoder of `config.text_encoder.kind` (path: `dependencies.text_encoder_path`)."""
  from lead_jax.text import load_text_encoder as load  # pylint: disable=import-outside-toplevel
  path = config.get("dependencies", {}).get("text_encoder_path", "") or None
  encoder = load(config.text_encoder.kind, path)
  if int(encoder.embed_dim) != int(config.text_encoder.dim):
    raise ConfigError(f"config.text_encoder.dim={config.text_encoder.dim} but the "
                      f"{config.text_encoder.kind} encoder gives {encoder.embed_dim}-d embeddings")
  return encoder


def make_streams(config, text_encoder: Any, with_eval: bool = True) -> tuple[Any, Any]:
  """(training stream, evaluation stream or None) of `config.data`, process-local numpy batches
  (`lead_jax.train.inputs.make_streams`: the backend `config.data.backend` names)."""
  return inputs.make_streams(config, text_encoder, with_eval=with_eval)


def absolute_paths(config) -> None:
  """Makes the config's folder fields absolute (in place), so the config saved with the
  checkpoints still finds the data and the dependency stages from any working directory."""
  sections = {"dependencies": ("vae_workdir", "denoiser_workdir", "text_encoder_path"),
              "data": ("dir", "text_cache_dir")}
  for section, fields in sections.items():
    if section not in config:
      continue
    for field in fields:
      value = config[section].get(field)
      if isinstance(value, str) and value:
        config[section][field] = os.path.abspath(os.path.expanduser(value))


def start_stage(config) -> Mesh:
  """Joins the distributed run (when `config` asks for one), makes the config's folders absolute;
  returns the device mesh."""
  maybe_initialize_distributed(config)
  absolute_paths(config)
  return make_mesh(config)


def stage_streams(config, text_encoder: Any = None) -> tuple[Any, Any]:
  """`inputs.make_streams` of a training stage: `text_encoder` defaults to
  `load_text_encoder(config)`; the evaluation stream is None unless `train.eval_every`."""
  return inputs.make_streams(config, text_encoder or load_text_encoder(config),
                             with_eval=bool(config.train.eval_every))


def run_stage(config, workdir: str, program: TrainProgram, train_stream: Any, frozen: Any,
              eval_fn: Callable[[TrainState], Mapping[str, float]] | None, mesh: Mesh
              ) -> TrainState:
  """`run_training` of a stage's `program` on `train_stream`, closed however training ends."""
  try:
    return run_training(config, workdir, program.init, program.step, train_stream, frozen,
                        eval_fn, mesh=mesh)
  finally:
    train_stream.close()


def dataset_stats(config) -> tuple[np.ndarray, np.ndarray]:
  """(Mean, Std) `[D]` of the dataset `config.data` points at."""
  return stage_io.dataset_stats(config)


def load_dependency(config, stage: str) -> Any:
  """Weights of the frozen `stage` named by `dependencies.<stage>_workdir` (the weight rule of
  `lead_jax.workdir`: its EMA when it kept one), checked against the stage's module."""
  return stage_io.load_dependency(config, stage).params


def eval_batches(stream: Any, limit: int) -> Iterable[dict]:
  """At most `limit` (0 = all) batches of an evaluation stream."""
  for i, batch in enumerate(stream):
    if limit and i >= limit:
      return
    yield batch


# ---- the loop -----------------------------------------------------------------------------------
class _SigtermFlag:
  """Sets `.raised` on SIGTERM while active (main thread only); restores the old handler on exit."""

  def __init__(self):
    self.raised = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _stream_state(stream: Any) -> Any:
  return stream.state() if hasattr(stream, "state") else None


def _restore_stream(stream: Any, position: Any, workdir: str) -> None:
  if position is None:
    return
  if not hasattr(stream, "restore"):
    raise ConfigError(f"cannot resume {workdir}: the data stream has no restore(state) method")
  stream.restore(position)


def _progress(total: int, initial: int, enabled: bool):
  if not enabled:
    return None
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr,
              bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                         "{rate_fmt}]{postfix}")


def restore_or_init(config, workdir: str, init_fn: Callable[[jax.Array], TrainState],
                    ckpt: checkpoints.Checkpointer) -> tuple[TrainState, Any]:
  """Initialises the state, then overwrites it from the workdir's latest checkpoint if there is one
  and `train.resume` (default True). Returns `(state, data_position or None)`."""
  state = init_fn(jax.random.key(int(config.get("seed", 0))))
  if not config.train.get("resume", True) or ckpt.latest_step() is None:
    return state, None
  restored = ckpt.restore(state.array_items())
  rep = jax.tree.leaves(state.params)[0].sharding
  rng_data = np.asarray(restored.meta["rng"], np.uint32)
  rng = jax.device_put(jax.random.wrap_key_data(rng_data, impl=restored.meta.get("rng_impl")),
                       rep)
  arrays = restored.arrays
  state = state.replace(step=jax.device_put(jnp.asarray(restored.step, jnp.int32), rep),
                        params=arrays["params"], opt_state=arrays["opt_state"],
                        ema_params=arrays.get("ema_params", state.ema_params), rng=rng)
  return state, restored.meta.get("data")


def save_checkpoint(ckpt: checkpoints.Checkpointer, state: TrainState, config, stream: Any,
                    metrics: Mapping[str, float] | None = None) -> None:
  rng = jax.device_get(jax.random.key_data(state.rng))
  meta = {"rng": np.asarray(rng).tolist(), "rng_impl": str(jax.random.key_impl(state.rng)),
          "data": _stream_state(stream)}
  ckpt.save(int(state.step), state.array_items(), meta=meta,
            config=config.to_dict() if hasattr(config, "to_dict") else dict(config),
            metrics=metrics)


def run_training(config, workdir: str, init_fn: Callable[[jax.Array], TrainState],
                 step_fn: Callable[..., tuple[TrainState, dict]], stream: Iterable,
                 frozen: Any = None, eval_fn: Callable[[TrainState], Mapping[str, float]] | None
                 = None, *, mesh: Mesh | None = None) -> TrainState:
  """Trains until `config.train.num_steps` (see module docstring); returns the final state.

  `stream` yields process-local numpy batches and, to resume exactly, has `state()` / `restore()`.
  `eval_fn(state) -> {name: value}` is logged as `eval/<name>`; `train.best_metric` names one of
  these keys (e.g. 'eval/rec_loss') to keep the best checkpoint.
  """
  train_cfg = config.train
  mesh = mesh or make_mesh(config)
  num_steps = int(train_cfg.num_steps)
  log_every = max(int(train_cfg.get("log_every", 50)), 1)
  ckpt_every = int(train_cfg.get("checkpoint_every", 1000)) or num_steps
  eval_every = int(train_cfg.get("eval_every", 0))
  frozen = jax.device_put(frozen if frozen is not None else {}, replicated(mesh))
  primary = jax.process_index() == 0

  ckpt = checkpoints.Checkpointer(
      workdir, max_to_keep=int(train_cfg.get("max_to_keep", 3)),
      best_metric=train_cfg.get("best_metric", "") or None,
      best_mode=train_cfg.get("best_mode", "min"),
      async_save=bool(train_cfg.get("async_checkpoint", False)))
  state, position = restore_or_init(config, workdir, init_fn, ckpt)
  _restore_stream(stream, position, workdir)
  start = int(state.step)
  writer = MetricWriter(workdir, active=primary)
  bar = _progress(num_steps, start, bool(train_cfg.get("progress", True)) and primary)
  iterator = iter(stream)
  pending: tuple[int, dict] | None = None  # (step number, metrics on device): checked one step late
  last_saved = start if position is not None or start > 0 else -1
  tick, tick_step = time.perf_counter(), start

  def check(step_number: int, metrics: dict) -> dict[str, float]:
    host = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not math.isfinite(host["loss"]):
      raise NonFiniteLossError(
          f"non-finite loss {host['loss']} at step {step_number} (terms: "
          + ", ".join(f"{k}={v:.4g}" for k, v in host.items() if k != "loss")
          + f"); last checkpoint in {ckpt.directory} is step {ckpt.latest_step()}. "
          "Lower optimizer.learning_rate, set optimizer.grad_clip_norm, or check the data.")
    return host

  try:
    with _SigtermFlag() as sigterm:
      for step in range(start, num_steps):
        if sigterm.raised:
          break
        try:
          batch = next(iterator)
        except StopIteration:
          raise ConfigError(f"the training stream ended after step {step}; training streams "
                            "must repeat (num_steps is set by config.train.num_steps)") from None
        batch = to_global_batch(batch, mesh)
        key = step_key(state.rng, jnp.asarray(step, jnp.int32))
        state, metrics = step_fn(state, batch, frozen, key)
        if pending is not None:
          check(*pending)
        pending = (step + 1, metrics)
        done = step + 1
        is_last = done == num_steps
        if done % log_every == 0 or is_last:
          host = check(*pending)
          now = time.perf_counter()
          host["steps_per_sec"] = (done - tick_step) / max(now - tick, 1e-9)
          tick, tick_step = now, done
          writer.write(done, host)
          if bar is not None:
            bar.set_postfix(loss=f"{host['loss']:.4g}", refresh=False)
        eval_metrics = None
        if eval_fn is not None and eval_every and (done % eval_every == 0 or is_last):
          eval_metrics = {f"eval/{k}": float(v) for k, v in eval_fn(state).items()}
          writer.write(done, eval_metrics)
        if done % ckpt_every == 0 or is_last:
          check(*pending)
          save_checkpoint(ckpt, state, config, stream, eval_metrics)
          last_saved = done
        if bar is not None:
          bar.update(1)
      if pending is not None:
        check(*pending)
      if sigterm.raised and int(state.step) != last_saved:
        save_checkpoint(ckpt, state, config, stream)
        print(f"SIGTERM: saved checkpoint at step {int(state.step)} in {ckpt.directory}",
              file=sys.stderr)
  finally:
    if bar is not None:
      bar.close()
    writer.close()
    ckpt.wait()
    ckpt.close()
  return state
