"""The training loop: resume, step, log, evaluate, checkpoint, stop cleanly.

`run_training(config, workdir, init_fn, step_fn, stream, frozen, eval_fn, mesh=, provenance=)`
runs the step to `train.num_steps` with a progress bar (rate, ETA), scalars to
`WORKDIR/metrics.jsonl` and TensorBoard event files, checkpoints every `train.checkpoint_every`
steps (and at the end and on SIGTERM), an evaluation hook every `train.eval_every` steps, a stop
with `NonFiniteLossError` naming the step at the first non-finite loss, and resume from the
workdir's latest checkpoint (params, optimiser, EMA, step, base PRNG key and the stream's
position), so a resumed run reproduces an uninterrupted one step for step.

What it guards against (docs/reliability.md):
  * two runs on one workdir: `WORKDIR/train.lock` (PID, host) held with `flock` while training;
    a second run stops with `WorkdirLockedError` naming the holder; the lock of a process that
    is gone (kill -9) is taken over with a warning.
  * SIGTERM (preemption): the state is saved, then `TrainingPreempted` is raised (the CLI exits
    with status 143), so `train vae && train denoiser` does not go on with a half-trained stage.
  * non-finite state: parameters, EMA and optimiser state are checked before every save and a
    non-finite one is never saved (`NonFiniteStateError`); resuming from a non-finite checkpoint
    (written before this check existed) names the last finite step.
  * a corrupt checkpoint: resume falls back to the newest step that restores, with a warning
    naming the corrupt step, which is renamed `<step>.corrupt`.
  * rows of `metrics.jsonl` past the restored step (logged before a crash) are dropped on resume.
  * a read-only workdir or a full disk: `OutputError` naming the path and the last saved step.
Each checkpoint's meta records `run_id` (one id per run, kept over resumes), `fingerprint`
(`lead_jax.fingerprints.tree_fingerprint` of the weights later stages use: EMA when kept) and the
caller's
`provenance` (what the stage was trained with; `lead_jax.workdir.training_provenance`).

Config fields (defaults in `configs/train_common.py:train_loop_config`): seed;
  train.{num_steps, log_every, checkpoint_every (0 = only at the end), eval_every (0 = off),
  max_to_keep, best_metric ('' = none; e.g. 'eval/rec_loss'), best_mode ('min'|'max'), resume,
  progress, async_checkpoint}.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import pathlib
import signal
import socket
import sys
import threading
import time
import uuid
import warnings
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from tqdm.auto import tqdm

from lead_jax import checkpoints
from lead_jax.config_loader import require_fields
from lead_jax.errors import (ConfigError, LeadJaxError, LeadJaxWarning, OutputError, WeightsError,
                             output_error)
from lead_jax.fingerprints import tree_fingerprint
from lead_jax.train import mesh as mesh_lib
from lead_jax.train.metric_writers import MetricWriter
from lead_jax.train.state import TrainState
from lead_jax.train.step import step_key

FIELDS = {"": ("seed",),
          "train": ("num_steps", "log_every", "checkpoint_every", "eval_every", "max_to_keep",
                    "best_metric", "best_mode", "resume", "progress", "async_checkpoint")}


LOCK_FILE = "train.lock"
METRICS_FILE = "metrics.jsonl"


class NonFiniteLossError(LeadJaxError, FloatingPointError):
  """The training loss became NaN or infinite."""


class NonFiniteStateError(NonFiniteLossError):
  """Parameters, EMA or optimiser state became NaN or infinite (never saved), or a checkpoint
  to resume from holds such values."""


class WorkdirLockedError(LeadJaxError):
  """Another live training process holds the workdir's lock."""


class TrainingPreempted(Exception):
  """SIGTERM stopped training after its state was saved: `state`, `step` (saved), `num_steps`.
  Not a `LeadJaxError`: the CLI exits with status 143 (128 + SIGTERM), as a terminated job does."""

  def __init__(self, message: str, state: TrainState, step: int, num_steps: int):
    super().__init__(message)
    self.state, self.step, self.num_steps = state, step, num_steps


class TrainingLockWarning(LeadJaxWarning):
  """A stale lock (its process is gone) was taken over."""


class CheckpointWarning(LeadJaxWarning):
  """A checkpoint could not be restored and an older one was used."""


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


def _process_start(pid: int) -> str | None:
  """The kernel's start time of process `pid` (Linux /proc; None elsewhere or when gone): tells a
  live holder from a new process that reused its PID."""
  try:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _process_alive(pid: int, start: str | None) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  found = _process_start(pid)
  return start is None or found is None or found == start


class WorkdirLock:
  """`WORKDIR/train.lock`: an exclusive `flock` plus a JSON record {pid, host, start, since}.

  `acquire()` raises `WorkdirLockedError` naming the holder when a live process holds it; the
  record of a process that is gone (killed, crashed: the kernel dropped its flock) is taken over
  with a `TrainingLockWarning`. `release()` empties the record and unlocks (the file stays, so a
  waiting process never locks an unlinked file)."""

  def __init__(self, workdir: str | os.PathLike):
    self.path = pathlib.Path(workdir) / LOCK_FILE
    self._fd: int | None = None

  def _read(self, fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
      record = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
      record = {"unreadable": raw[:80].decode("utf-8", "replace")}
    return record if isinstance(record, dict) else {}

  def acquire(self) -> "WorkdirLock":
    try:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise output_error(e, f"the lock file of workdir {self.path.parent}") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        os.close(fd)
        raise output_error(e, f"the lock file {self.path}") from None
      holder = self._read(fd)
      os.close(fd)
      raise WorkdirLockedError(
          f"workdir {self.path.parent} is in use by another training process "
          f"({_describe(holder)}); wait for it to finish or stop it. Two runs on one workdir "
          "would overwrite each other's checkpoints") from None
    holder = self._read(fd)
    host = socket.gethostname()
    pid = holder.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and holder.get("host") == host and \
        _process_alive(pid, holder.get("start")):
      # A file system without flock: the record is the only evidence, and it names a live process.
      os.close(fd)
      raise WorkdirLockedError(f"workdir {self.path.parent} is in use by PID {pid} on {host} "
                               f"(lock file {self.path}); wait for it to finish or stop it")
    if holder:
      warnings.warn(f"taking over the lock {self.path} of {_describe(holder)}: that process is "
                    "no longer running (killed or crashed)",
                    TrainingLockWarning, stacklevel=3)
    record = {"pid": os.getpid(), "host": host, "start": _process_start(os.getpid()),
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
      os.ftruncate(fd, 0)
      os.lseek(fd, 0, os.SEEK_SET)
      os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
      os.fsync(fd)
    except OSError as e:
      os.close(fd)
      raise output_error(e, f"the lock file {self.path}") from None
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      os.ftruncate(self._fd, 0)
    except OSError:
      pass  # a full or read-only disk: the flock is what counts, and closing drops it
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _describe(holder: Mapping[str, Any]) -> str:
  if "pid" in holder:
    return (f"PID {holder['pid']} on host {holder.get('host', '?')}, since "
            f"{holder.get('since', '?')}")
  return "a process that left no record"


def truncate_metrics(path: str | os.PathLike, step: int) -> int:
  """Drops the rows of a metrics.jsonl with `step` > `step` (logged after the checkpoint a run
  resumes from); returns how many were dropped. The file is replaced atomically."""
  path = pathlib.Path(path)
  if not path.is_file():
    return 0
  lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
  kept = []
  for line in lines:
    try:
      row_step = int(json.loads(line)["step"]) if line.strip() else None
    except (ValueError, KeyError, TypeError):
      row_step = None  # a torn last line (killed mid-write) or garbage: dropped
    if row_step is not None and row_step <= step:
      kept.append(line if line.endswith("\n") else line + "\n")
  if len(kept) == len(lines):
    return 0
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text("".join(kept), encoding="utf-8")
  os.replace(tmp, path)
  return len(lines) - len(kept)


@jax.jit
def _finite_items(items: Mapping[str, Any]) -> dict[str, jax.Array]:
  """{item: whether every floating leaf is finite} of a state's array items."""
  def finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
  return {name: finite(tree) for name, tree in items.items()}


def non_finite_items(state: TrainState) -> list[str]:
  """Names of the state's array items ('params', 'opt_state', 'ema_params') holding NaN/inf."""
  items = state.array_items()
  flags = jax.device_get(_finite_items(items))
  return [name for name in items if not bool(flags[name])]


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


class _Unreadable(Exception):
  """A checkpoint step whose files cannot be read (as opposed to one of another model)."""


def _restore_step(ckpt: checkpoints.Checkpointer, state: TrainState, step: int
                  ) -> checkpoints.Restored:
  """Restores `step` into `state`'s layout. Raises `_Unreadable` when the step's files cannot be
  read, `WeightsError` when its parameters do not fit the model (a config change)."""
  targets = state.array_items()
  try:
    saved = ckpt.item_shapes(step, "params")
  except Exception as e:  # unreadable metadata
    raise _Unreadable(checkpoints.short_message(e)) from None
  checkpoints.check_matches(saved, targets["params"], f"{ckpt.directory / str(step)}/params")
  try:
    return ckpt.restore(targets, step=step)
  except WeightsError as e:
    raise _Unreadable(str(e)) from None


def restore_or_init(config, workdir: str, init_fn: Callable[[jax.Array], TrainState],
                    ckpt: checkpoints.Checkpointer) -> tuple[TrainState, Any, dict]:
  """Initialises the state, then overwrites it from the workdir's newest restorable checkpoint if
  there is one and `train.resume`. Returns `(state, data_position or None, meta)`; restored arrays
  keep the layout of the initialised ones.

  Steps that cannot be read are renamed `<step>.corrupt` with a `CheckpointWarning` naming them,
  and the next older step is tried; a checkpoint of another model (shapes) is a `WeightsError`.
  Non-finite restored state is a `NonFiniteStateError` naming the last finite step.
  """
  state = init_fn(jax.random.key(int(config.seed)))
  if not config.train.resume or ckpt.latest_step() is None:
    return state, None, {}
  restored, corrupt = None, []
  for step in sorted(ckpt.all_steps(), reverse=True):
    try:
      restored = _restore_step(ckpt, state, step)
      break
    except _Unreadable as e:
      corrupt.append((step, str(e)))
  if corrupt:
    if restored is None:
      raise WeightsError(f"no checkpoint in {ckpt.directory} can be restored ("
                         + "; ".join(f"step {s}: {m}" for s, m in corrupt[:3])
                         + "). If the config changed (optimizer, model), train in a new workdir; "
                         "otherwise move this one aside to start afresh")
    moved = [str(ckpt.set_aside(s)) for s, _ in corrupt]
    warnings.warn(f"checkpoint step(s) {[s for s, _ in corrupt]} in {ckpt.directory} cannot be "
                  f"read ({corrupt[0][1]}); resuming from step {restored.step} instead. The "
                  f"unreadable step(s) were moved to {', '.join(moved)}",
                  CheckpointWarning, stacklevel=2)
  rep = state.step.sharding
  rng_data = np.asarray(restored.meta["rng"], np.uint32)
  # Host values put on the mesh, then wrapped: a device array cannot move to other processes.
  rng = jax.random.wrap_key_data(jax.device_put(rng_data, rep), impl=restored.meta.get("rng_impl"))
  arrays = restored.arrays
  state = state.replace(step=jax.device_put(np.asarray(restored.step, np.int32), rep),
                        params=arrays["params"], opt_state=arrays["opt_state"],
                        ema_params=arrays.get("ema_params", state.ema_params), rng=rng)
  bad = non_finite_items(state)
  if bad:
    raise NonFiniteStateError(
        f"checkpoint step {restored.step} in {ckpt.directory} holds non-finite {', '.join(bad)} "
        f"(NaN/inf), so resuming from it cannot work; "
        + _last_finite_advice(ckpt, state, restored.step))
  return state, restored.meta.get("data"), restored.meta


def _last_finite_advice(ckpt: checkpoints.Checkpointer, state: TrainState, bad_step: int) -> str:
  """Which older step is finite, and what to remove to resume from it."""
  for step in sorted((s for s in ckpt.all_steps() if s < bad_step), reverse=True):
    try:
      older = ckpt.restore({"params": state.params}, step=step)
    except WeightsError:
      continue
    if all(bool(ok) for ok in jax.device_get(_finite_items({"params": older.arrays["params"]})
                                              ).values()):
      later = [s for s in ckpt.all_steps() if s > step]
      return (f"the last finite checkpoint is step {step}: remove "
              + " ".join(str(ckpt.directory / str(s)) for s in later)
              + " to resume from it (with a lower learning rate or clipping)")
  return (f"no earlier finite checkpoint is kept in {ckpt.directory}: move the workdir aside and "
          "train afresh (with a lower learning rate or clipping)")


def save_checkpoint(ckpt: checkpoints.Checkpointer, state: TrainState, config, stream: Any,
                    metrics: Mapping[str, float] | None = None, *, run_id: str | None = None,
                    provenance: Mapping[str, Any] | None = None) -> None:
  """Saves the state's arrays with the base key, the stream's position, the run id, the weights'
  fingerprint, the provenance and the config. Raises `NonFiniteStateError` (nothing saved) when
  the state holds NaN/inf, and `OutputError` when the disk is full or read-only."""
  step = int(state.step)
  bad = non_finite_items(state)
  if bad:
    raise NonFiniteStateError(
        f"non-finite {', '.join(bad)} (NaN/inf) at step {step}: not saved; "
        + _last_checkpoint(ckpt) + ". Lower optimizer.learning_rate, set "
        "optimizer.grad_clip_norm, or check the data")
  rng = jax.device_get(jax.random.key_data(state.rng))
  weights = state.ema_params if state.ema_params is not None else state.params
  meta = {"rng": np.asarray(rng).tolist(), "rng_impl": str(jax.random.key_impl(state.rng)),
          "data": stream.state() if hasattr(stream, "state") else None,
          "run_id": run_id, "fingerprint": tree_fingerprint(_on_host(weights)),
          "provenance": dict(provenance) if provenance is not None else None}
  with write_errors(ckpt, f"checkpoint step {step}"):
    ckpt.save(step, state.array_items(), meta=meta,
              config=config.to_dict() if hasattr(config, "to_dict") else dict(config),
              metrics=metrics)


def _on_host(tree: Any) -> Any:
  """`tree` with the leaves split over several processes gathered (every process calls this)."""
  return jax.tree.map(lambda x: multihost_utils.process_allgather(x, tiled=True)
                      if isinstance(x, jax.Array) and not x.is_fully_addressable else x, tree)


@contextlib.contextmanager
def write_errors(ckpt: checkpoints.Checkpointer, what: str):
  """Turns an OS write failure inside the block (raised as such, or wrapped by orbax/TensorStore:
  a full or read-only disk) into one `OutputError` naming `what`, the reason and the last saved
  step. (An asynchronous save's failure surfaces at the next save or at the final wait.)"""
  previous = ckpt.latest_step()
  try:
    yield
  except OSError as e:
    raise _save_error(output_error(e, f"{what} in {ckpt.directory}"), previous) from None
  except Exception as e:  # orbax / TensorStore wrap the OS error in their own types
    reason = _os_reason(e)
    if reason is None:
      raise
    raise _save_error(OutputError(f"cannot write {what} in {ckpt.directory}: {reason}"),
                      previous) from None


def _last_checkpoint(ckpt: checkpoints.Checkpointer) -> str:
  latest = ckpt.latest_step()
  return (f"no checkpoint in {ckpt.directory} yet" if latest is None else
          f"the last checkpoint in {ckpt.directory} is step {latest}")


def _os_reason(error: BaseException) -> str | None:
  """'No space left on device' (or another OS write failure) named in a wrapped error."""
  text = str(error)
  for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
    reason = os.strerror(code)
    if reason in text:
      return reason
  return None


def _save_error(error: OutputError, previous: int | None) -> OutputError:
  return OutputError(f"{error}. The last saved checkpoint is step {previous}; rerun the same "
                     "command to resume from it once the disk is writable"
                     if previous is not None else f"{error}. No checkpoint was saved")


def run_training(config, workdir: str, init_fn: Callable[[jax.Array], TrainState],
                 step_fn: Callable[..., tuple[TrainState, dict]], stream: Iterable,
                 frozen: Any = None, eval_fn: Callable[[TrainState], Mapping[str, float]] | None
                 = None, *, mesh: Mesh | None = None,
                 provenance: Mapping[str, Any] | None = None) -> TrainState:
  """Trains until `config.train.num_steps` (see module docstring); returns the final state.

  `stream` yields process-local numpy batches and, to resume exactly, has `state()` / `restore()`.
  `eval_fn(state) -> {name: value}` is logged as `eval/<name>`; `train.best_metric` names one of
  these keys (e.g. 'eval/rec_loss') to keep the best checkpoint. `provenance` (JSON) is saved in
  every checkpoint's meta. Raises `TrainingPreempted` after the save a SIGTERM asks for,
  `NonFiniteLossError` / `NonFiniteStateError`, `WorkdirLockedError`, `OutputError`.
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

  lock = WorkdirLock(workdir).acquire() if primary else None
  ckpt = writer = None
  try:
    try:
      ckpt = checkpoints.Checkpointer(
          workdir, max_to_keep=int(train_cfg.max_to_keep),
          best_metric=train_cfg.best_metric or None, best_mode=train_cfg.best_mode,
          async_save=bool(train_cfg.async_checkpoint))
    except OSError as e:
      raise output_error(e, f"the checkpoints of workdir {workdir}") from None
    state, position, meta = restore_or_init(config, workdir, init_fn, ckpt)
    _restore_stream(stream, position, workdir)
    start = int(state.step)
    run_id = meta.get("run_id") or uuid.uuid4().hex
    try:
      if primary:
        truncate_metrics(pathlib.Path(workdir) / METRICS_FILE, start)
      writer = MetricWriter(workdir, active=primary)
    except OSError as e:
      raise output_error(e, f"the metrics of workdir {workdir}") from None
    state = _train(config, state, start, num_steps, step_fn, stream, frozen, eval_fn, mesh,
                   ckpt, writer, run_id, provenance, primary, log_every, ckpt_every, eval_every,
                   position)
  except BaseException:
    _close(writer, ckpt, lock, quiet=True)
    raise
  _close(writer, ckpt, lock, quiet=False)
  return state


def _close(writer: MetricWriter | None, ckpt: checkpoints.Checkpointer | None,
           lock: WorkdirLock | None, quiet: bool) -> None:
  """Closes what `run_training` opened, in order; `quiet` (an error is already on its way) keeps
  a second failure (e.g. a full disk again) from replacing the first."""
  def finish_saves():
    with write_errors(ckpt, "the last checkpoint"):
      ckpt.wait()

  steps = [writer.close] if writer is not None else []
  steps += [finish_saves, ckpt.close] if ckpt is not None else []
  steps += [lock.release] if lock is not None else []
  for close in steps:
    try:
      close()
    except Exception:  # pylint: disable=broad-except
      if not quiet:
        raise


def _train(config, state, start, num_steps, step_fn, stream, frozen, eval_fn, mesh, ckpt, writer,
           run_id, provenance, primary, log_every, ckpt_every, eval_every, position):
  """The step loop of `run_training` (its state is set up and closed there)."""
  bar = progress_bar(num_steps, start, bool(config.train.progress) and primary)
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
          + f"); {_last_checkpoint(ckpt)}. "
          "Lower optimizer.learning_rate, set optimizer.grad_clip_norm, or check the data.")
    return host

  def write(step_number: int, scalars: Mapping[str, float]) -> None:
    try:
      writer.write(step_number, scalars)
    except OSError as e:
      raise output_error(e, f"{writer.jsonl_path}") from None

  def save(metrics=None) -> None:
    save_checkpoint(ckpt, state, config, stream, metrics, run_id=run_id, provenance=provenance)

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
          write(done, host)
          if bar is not None:
            bar.set_postfix(loss=f"{host['loss']:.4g}", refresh=False)
        eval_metrics = None
        if eval_fn is not None and eval_every and (done % eval_every == 0 or is_last):
          eval_metrics = {f"eval/{k}": float(v) for k, v in eval_fn(state).items()}
          write(done, eval_metrics)
        if done % ckpt_every == 0 or is_last:
          check(*pending)
          save(eval_metrics)
          last_saved = done
        if bar is not None:
          bar.update(1)
      if pending is not None:
        check(*pending)
      stopped = int(state.step)
      if sigterm.raised and stopped < num_steps:
        if stopped != last_saved:
          save()
        raise TrainingPreempted(
            f"SIGTERM: saved checkpoint at step {stopped} of {num_steps} in {ckpt.directory}; "
            "training stopped before the end (run the same command again to resume)",
            state, stopped, num_steps)
  finally:
    if bar is not None:
      bar.close()
  return state
