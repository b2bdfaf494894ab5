"""Checkpoints of a training workdir: a thin wrapper over `orbax.checkpoint.CheckpointManager`.

This is the only module that imports orbax. A workdir holds `WORKDIR/checkpoints/<step>/` with the
items

  params, opt_state, ema_params   array pytrees (`StandardSave`; `ema_params` only when EMA is on)
  meta                            JSON: step, PRNG key data, data-iterator position, extra fields
  config                          JSON: the run's config (`ConfigDict.to_dict()`)

Retention: the last `max_to_keep` steps plus the best step by `best_metric` (when set; `best_mode`
'min' or 'max'). Saves are atomic: orbax writes into `<step>.orbax-checkpoint-tmp-*` and renames it
to `<step>` only after every item and the commit marker are written, and step discovery ignores tmp
directories, so a crash mid-save leaves the previous step as the latest (tested).

Array items are always restored into a target (concrete arrays or `jax.ShapeDtypeStruct`s with
shardings) so that optax states keep their NamedTuple structure. Downstream stages read a
dependency's weights with `load_params(workdir, item)`, which raises `MissingFileError` /
`WeightsError` naming the path and what is missing or mismatched.

  ckpt = Checkpointer(workdir, max_to_keep=3, best_metric="eval/rec_loss")
  ckpt.save(step, {"params": p, "opt_state": o}, meta={"data": pos}, config=cfg, metrics={...})
  restored = restore_latest(workdir, {"params": p, "opt_state": o})   # None on a fresh workdir
  vae_params = load_params("runs/vae", "ema_params")

Faults: an unreadable step raises a short `WeightsError` naming the step directory (the first line
of orbax's message, not its TensorStore dump); `set_aside(step)` renames a corrupt step to
`<step>.corrupt` so the manager no longer sees it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as ocp_managers

from lead_jax.errors import MissingFileError, WeightsError

ARRAY_ITEMS = ("params", "opt_state", "ema_params")
JSON_ITEMS = ("meta", "config")
CHECKPOINT_SUBDIR = "checkpoints"
CORRUPT_SUFFIX = ".corrupt"

# orbax logs every save/restore at INFO through absl; keep the console for the progress bar.
logging.getLogger("absl").setLevel(logging.WARNING)


class _NoThreadTracebacks(logging.Filter):
  """Drops orbax's log of a failed writer thread (a traceback, printed after the save returns):
  the same failure is raised by the save, and `lead_jax.train.loop` reports it in one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "_SignalingThread.run() raised an exception" not in record.getMessage()


logging.getLogger("absl").addFilter(_NoThreadTracebacks())


@dataclasses.dataclass
class Restored:
  """What a restore returns: the step, the array items restored into their targets, the JSON items."""
  step: int
  arrays: dict[str, Any]
  meta: dict[str, Any]
  config: dict[str, Any] | None


def checkpoint_dir(workdir: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(workdir).expanduser().resolve() / CHECKPOINT_SUBDIR


def _metric_getter(name: str):
  def get(metrics: Mapping[str, Any]) -> float:
    return float(metrics[name])
  return get


class Checkpointer:
  """Saves and restores the checkpoints of one workdir (see module docstring)."""

  def __init__(self, workdir: str | pathlib.Path, *, max_to_keep: int = 3,
               best_metric: str | None = None, best_mode: str = "min",
               async_save: bool = False, read_only: bool = False):
    if best_mode not in ("min", "max"):
      raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
    self.directory = checkpoint_dir(workdir)
    self.best_metric = best_metric
    policies: list[Any] = [ocp_managers.LatestN(n=max(int(max_to_keep), 1))]
    best_fn = None
    if best_metric:
      best_fn = _metric_getter(best_metric)
      policies.append(ocp_managers.BestN(get_metric_fn=best_fn, reverse=(best_mode == "min"), n=1,
                                         keep_checkpoints_without_metrics=False))
    handlers = {name: ocp.StandardCheckpointHandler() for name in ARRAY_ITEMS}
    handlers.update({name: ocp.JsonCheckpointHandler() for name in JSON_ITEMS})
    with _quiet_orbax():  # a read-only manager warns that it will not save: expected here
      options = ocp.CheckpointManagerOptions(
          best_fn=best_fn, best_mode=best_mode,
          preservation_policy=ocp_managers.AnyPreservationPolicy(policies),
          enable_async_checkpointing=async_save, create=not read_only, read_only=read_only,
          cleanup_tmp_directories=not read_only)
      self._manager = ocp.CheckpointManager(self.directory, item_handlers=handlers,
                                            options=options)

  # ---- queries ---------------------------------------------------------------------------------
  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    return self._manager.best_step()

  def saved_items(self, step: int) -> set[str]:
    """Names of the items present in step `step`'s directory."""
    step_dir = self.directory / str(step)
    return {p.name for p in step_dir.iterdir() if p.is_dir()} if step_dir.is_dir() else set()

  # ---- save / restore --------------------------------------------------------------------------
  def save(self, step: int, arrays: Mapping[str, Any], *, meta: Mapping[str, Any] | None = None,
           config: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
           ) -> bool:
    """Saves `arrays` (a subset of ARRAY_ITEMS, None values skipped) and the JSON items at `step`."""
    unknown = set(arrays) - set(ARRAY_ITEMS)
    if unknown:
      raise ValueError(f"unknown checkpoint items {sorted(unknown)}; expected {ARRAY_ITEMS}")
    args = {name: ocp.args.StandardSave(tree) for name, tree in arrays.items() if tree is not None}
    args["meta"] = ocp.args.JsonSave({"step": int(step), **dict(meta or {})})
    if config is not None:
      args["config"] = ocp.args.JsonSave(dict(config))
    if metrics is not None:
      metrics = {k: float(v) for k, v in metrics.items()}
    if self.best_metric and (metrics is None or self.best_metric not in metrics):
      metrics = None  # ranked below every step that has the metric; LatestN still keeps it
    # A step without the best metric is expected (no eval at that step); a failed write (full
    # disk) is raised to the caller, so orbax's own log of it (a traceback) is not shown.
    with _quiet_orbax(logging.CRITICAL):
      return self._manager.save(int(step), args=ocp.args.Composite(**args), metrics=metrics,
                                force=True)

  def restore(self, targets: Mapping[str, Any], step: int | None = None) -> Restored:
    """Restores step `step` (default latest) with each array item restored into `targets[name]`.

    Raises `MissingFileError` when there is no checkpoint and `WeightsError` when an item is missing
    or does not match its target.
    """
    step = self.latest_step() if step is None else int(step)
    if step is None:
      raise MissingFileError(f"no checkpoint in {self.directory}")
    present = self.saved_items(step)
    step_dir = self.directory / str(step)
    missing = [n for n in list(targets) + ["meta"] if n not in present]
    if missing:
      raise WeightsError(f"checkpoint {step_dir} lacks item(s) {missing} (found {sorted(present)})")
    args = {name: ocp.args.StandardRestore(_abstract(target)) for name, target in targets.items()}
    args["meta"] = ocp.args.JsonRestore()
    if "config" in present:
      args["config"] = ocp.args.JsonRestore()
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as e:  # orbax/tensorstore raise many types for unreadable or mismatched data
      raise WeightsError(f"cannot restore checkpoint {step_dir}: {short_message(e)}") from e
    arrays = {name: out[name] for name in targets}
    return Restored(step=step, arrays=arrays, meta=dict(out["meta"]),
                    config=dict(out["config"]) if "config" in present else None)

  def item_shapes(self, step: int, item: str) -> Any:
    """The saved tree of `item` with `jax.ShapeDtypeStruct` leaves (from the metadata)."""
    meta = self._manager.item_metadata(step)[item]
    tree = getattr(meta, "tree", meta)
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), tree)

  def set_aside(self, step: int) -> pathlib.Path:
    """Renames step `step`'s directory to `<step>.corrupt` (`.corrupt-2`, ... when taken), out of
    the manager's sight, and returns the new path. For a step that cannot be restored."""
    source = self.directory / str(step)
    target = self.directory / f"{step}{CORRUPT_SUFFIX}"
    n = 1
    while target.exists():
      n += 1
      target = self.directory / f"{step}{CORRUPT_SUFFIX}-{n}"
    source.rename(target)
    self._manager.reload()
    return target

  def wait(self) -> None:
    with _quiet_orbax(logging.CRITICAL):  # failures are raised, not only logged
      self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


@contextlib.contextmanager
def _quiet_orbax(level: int = logging.ERROR):
  """Silences orbax's absl messages below `level` inside the block (they describe expected
  situations, or failures that are raised as exceptions anyway)."""
  logger = logging.getLogger("absl")
  previous = logger.level
  logger.setLevel(max(level, previous))
  try:
    yield
  finally:
    logger.setLevel(previous)


def short_message(error: BaseException, limit: int = 200) -> str:
  """`Type: first line of the message`, cut to `limit` characters (orbax and TensorStore errors
  carry kilobytes of driver specs after the reason)."""
  text = str(error).strip().splitlines()
  first = text[0] if text else ""
  if len(first) > limit:
    first = first[:limit] + " ..."
  return f"{type(error).__name__}: {first}"


def _abstract(target: Any) -> Any:
  """Arrays -> ShapeDtypeStruct keeping their sharding (so restores land where the target lives)."""
  def leaf(x):
    if isinstance(x, jax.ShapeDtypeStruct):
      if x.sharding is None:
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=_local_replicated())
      return x
    if isinstance(x, jax.Array):
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    x = np.asarray(x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=_local_replicated())
  return jax.tree.map(leaf, target)


def _local_replicated() -> jax.sharding.Sharding:
  return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def has_checkpoints(workdir: str | pathlib.Path) -> bool:
  """Whether `workdir` has a checkpoint folder, the same answer on every process: with several
  processes it is process 0's, broadcast. A process that saw the folder another process had just
  created would open a manager (and enter its barriers) that the others do not. Every process
  must call it (it is a collective then)."""
  present = checkpoint_dir(workdir).is_dir()
  if jax.process_count() > 1:
    present = bool(multihost_utils.broadcast_one_to_all(np.int32(present)))
  return present


def restore_latest(workdir: str | pathlib.Path, targets: Mapping[str, Any]) -> Restored | None:
  """Restores the latest checkpoint of `workdir` into `targets`; None when there is none yet
  (`has_checkpoints`: one answer on every process)."""
  if not has_checkpoints(workdir):
    return None
  ckpt = Checkpointer(workdir, read_only=True)
  try:
    if ckpt.latest_step() is None:
      return None
    return ckpt.restore(targets)
  finally:
    ckpt.close()


def load_params(workdir: str | pathlib.Path, item: str = "params", *, target: Any = None,
                step: int | None = None) -> Any:
  """The `item` ('params' or 'ema_params') of a dependency stage's checkpoint in `workdir`.

  Without `target` the tree is restored from the saved metadata onto the first local device; with
  `target` (e.g. `jax.eval_shape` of the model's init) its structure and shapes are checked first.
  Raises `MissingFileError` (no workdir / no checkpoint) or `WeightsError` (item missing, unreadable
  or not matching `target`), each naming the path.
  """
  if item not in ARRAY_ITEMS:
    raise ValueError(f"item must be one of {ARRAY_ITEMS}, got {item!r}")
  directory = checkpoint_dir(workdir)
  if not directory.is_dir():
    raise MissingFileError(f"dependency stage checkpoint not found: {directory} does not exist "
                           f"(train that stage first or fix the workdir in the config)")
  ckpt = Checkpointer(workdir, read_only=True)
  try:
    step = ckpt.latest_step() if step is None else step
    if step is None:
      raise MissingFileError(f"dependency stage checkpoint not found: {directory} holds no "
                             f"finished checkpoint")
    step_dir = directory / str(step)
    if item not in ckpt.saved_items(step):
      raise WeightsError(f"checkpoint {step_dir} has no '{item}' item "
                         f"(found {sorted(ckpt.saved_items(step))})")
    try:
      saved = ckpt.item_shapes(step, item)
    except Exception as e:
      raise WeightsError(f"checkpoint {step_dir}/{item} is unreadable (metadata): "
                         f"{short_message(e)}") from e
    if target is not None:
      check_matches(saved, target, f"{step_dir}/{item}")
    else:
      target = saved
    return ckpt.restore({item: target}, step=step).arrays[item]
  finally:
    ckpt.close()


def check_matches(saved: Any, target: Any, where: str) -> None:
  """Raises `WeightsError` (missing / unexpected / mis-shaped leaves) unless `saved` has
  `target`'s tree and shapes; `where` names the checkpoint item in the message."""
  flat_saved = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(saved)}
  flat_target = {jax.tree_util.keystr(k): v
                 for k, v in jax.tree_util.tree_leaves_with_path(target)}
  missing = sorted(set(flat_target) - set(flat_saved))
  unexpected = sorted(set(flat_saved) - set(flat_target))
  mismatched = [f"{k}: expected {tuple(np.shape(flat_target[k]))}, found {flat_saved[k].shape}"
                for k in sorted(set(flat_saved) & set(flat_target))
                if tuple(np.shape(flat_target[k])) != tuple(flat_saved[k].shape)]
  if missing or unexpected or mismatched:
    parts = []
    if missing:
      parts.append(f"missing {missing[:10]}" + (" ..." if len(missing) > 10 else ""))
    if unexpected:
      parts.append(f"unexpected {unexpected[:10]}" + (" ..." if len(unexpected) > 10 else ""))
    if mismatched:
      parts.append(f"shape mismatch {mismatched[:10]}")
    raise WeightsError(f"checkpoint {where} does not match the model: " + "; ".join(parts))


def load_config(workdir: str | pathlib.Path, step: int | None = None) -> dict[str, Any]:
  """The config JSON saved with a workdir's latest (or given) checkpoint."""
  return load_json_items(workdir, step)[1]


def load_json_items(workdir: str | pathlib.Path, step: int | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
  """(meta, config) JSON saved with a workdir's latest (or given) checkpoint."""
  directory = checkpoint_dir(workdir)
  if not directory.is_dir():
    raise MissingFileError(f"no checkpoints in {directory}")
  ckpt = Checkpointer(workdir, read_only=True)
  try:
    step = ckpt.latest_step() if step is None else step
    if step is None or "config" not in ckpt.saved_items(step):
      raise MissingFileError(f"no saved config in {directory}")
    restored = ckpt.restore({}, step=step)
    return restored.meta, restored.config
  finally:
    ckpt.close()
