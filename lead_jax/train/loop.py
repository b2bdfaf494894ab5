"""The training loop: resume, step, log, evaluate, checkpoint, stop cleanly.

`run_training(config, workdir, init_fn, step_fn, stream, frozen, eval_fn, mesh=)` runs the step to
`train.num_steps` with a progress bar (rate, ETA), scalars to `WORKDIR/metrics.jsonl` and
TensorBoard event files, checkpoints every `train.checkpoint_every` steps (and at the end and on
SIGTERM), an evaluation hook every `train.eval_every` steps, a stop with `NonFiniteLossError`
naming the step at the first non-finite loss, and resume from the workdir's latest checkpoint
(params, optimiser, EMA, step, base PRNG key and the stream's position), so a resumed run
reproduces an uninterrupted one step for step.

Config fields (defaults in `configs/train_common.py:train_loop_config`): seed;
  train.{num_steps, log_every, checkpoint_every (0 = only at the end), eval_every (0 = off),
  max_to_keep, best_metric ('' = none; e.g. 'eval/rec_loss'), best_mode ('min'|'max'), resume,
  progress, async_checkpoint}.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from lead_jax import checkpoints
from lead_jax.config_loader import require_fields
from lead_jax.errors import ConfigError, LeadJaxError
from lead_jax.train import mesh as mesh_lib
from lead_jax.train.metric_writers import MetricWriter
from lead_jax.train.state import TrainState
from lead_jax.train.step import step_key

FIELDS = {"": ("seed",),
          "train": ("num_steps", "log_every", "checkpoint_every", "eval_every", "max_to_keep",
                    "best_metric", "best_mode", "resume", "progress", "async_checkpoint")}


class NonFiniteLossError(LeadJaxError, FloatingPointError):
  """The training loss became NaN or infinite."""


class SigtermFlag:
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


def progress_bar(total: int, initial: int, enabled: bool) -> tqdm | None:
  """A step progress bar on stderr (rate, ETA, last loss), or None."""
  if not enabled:
    return None
  return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr,
              bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                         "{rate_fmt}]{postfix}")


def _restore_stream(stream: Any, position: Any, workdir: str) -> None:
  if position is None:
    return
  if not hasattr(stream, "restore"):
    raise ConfigError(f"cannot resume {workdir}: the data stream has no restore(state) method")
  stream.restore(position)


def restore_or_init(config, workdir: str, init_fn: Callable[[jax.Array], TrainState],
                    ckpt: checkpoints.Checkpointer) -> tuple[TrainState, Any]:
  """Initialises the state, then overwrites it from the workdir's latest checkpoint if there is one
  and `train.resume`. Returns `(state, data_position or None)`; restored arrays keep the layout of
  the initialised ones."""
  state = init_fn(jax.random.key(int(config.seed)))
  if not config.train.resume or ckpt.latest_step() is None:
    return state, None
  restored = ckpt.restore(state.array_items())
  rep = state.step.sharding
  rng_data = np.asarray(restored.meta["rng"], np.uint32)
  # Host values put on the mesh, then wrapped: a device array cannot move to other processes.
  rng = jax.random.wrap_key_data(jax.device_put(rng_data, rep), impl=restored.meta.get("rng_impl"))
  arrays = restored.arrays
  state = state.replace(step=jax.device_put(np.asarray(restored.step, np.int32), rep),
                        params=arrays["params"], opt_state=arrays["opt_state"],
                        ema_params=arrays.get("ema_params", state.ema_params), rng=rng)
  return state, restored.meta.get("data")


def save_checkpoint(ckpt: checkpoints.Checkpointer, state: TrainState, config, stream: Any,
                    metrics: Mapping[str, float] | None = None) -> None:
  """Saves the state's arrays with the base key, the stream's position and the config."""
  rng = jax.device_get(jax.random.key_data(state.rng))
  meta = {"rng": np.asarray(rng).tolist(), "rng_impl": str(jax.random.key_impl(state.rng)),
          "data": stream.state() if hasattr(stream, "state") else None}
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
  require_fields(config, FIELDS, "lead_jax.train.loop.run_training")
  train_cfg = config.train
  mesh = mesh or mesh_lib.make_mesh(config)
  num_steps = int(train_cfg.num_steps)
  log_every = max(int(train_cfg.log_every), 1)
  ckpt_every = int(train_cfg.checkpoint_every) or num_steps
  eval_every = int(train_cfg.eval_every)
  frozen = jax.device_put(frozen if frozen is not None else {}, mesh_lib.replicated(mesh))
  primary = jax.process_index() == 0

  ckpt = checkpoints.Checkpointer(
      workdir, max_to_keep=int(train_cfg.max_to_keep), best_metric=train_cfg.best_metric or None,
      best_mode=train_cfg.best_mode, async_save=bool(train_cfg.async_checkpoint))
  state, position = restore_or_init(config, workdir, init_fn, ckpt)
  _restore_stream(stream, position, workdir)
  start = int(state.step)
  writer = MetricWriter(workdir, active=primary)
  bar = progress_bar(num_steps, start, bool(train_cfg.progress) and primary)
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
    with SigtermFlag() as sigterm:
      for step in range(start, num_steps):
        if sigterm.raised:
          break
        try:
          batch = next(iterator)
        except StopIteration:
          raise ConfigError(f"the training stream ended after step {step}; training streams "
                            "must repeat (num_steps is set by config.train.num_steps)") from None
        batch = mesh_lib.to_global_batch(batch, mesh)
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
