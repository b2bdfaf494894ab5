"""The device mesh of a training run and where each array lives on it.

Axes ("data", "fsdp"), sized by `config.mesh.data` (-1 = the devices `fsdp` leaves) and
`config.mesh.fsdp` (1 = pure data parallelism):
  batch                            leading axis split over both axes (B / devices rows each)
  params, optimiser state, EMA     split over `fsdp` along their largest dimension divisible by its
                                   size (the first such when tied); replicated when none divides
  frozen inputs, step, keys        replicated
XLA's SPMD partitioner gathers the split state where the step needs it and reduce-scatters the
gradients, so every layout computes the same step; `fsdp` divides the state's memory per device.

Several processes (`config.multihost`, `initialize_distributed`): the mesh spans every process's
devices; each process feeds its rows of the global batch (`to_global_batch`), puts host copies of
the frozen inputs on the mesh (`replicate`) and reads results with `to_host`, which gathers
arrays split over processes, so evaluation sums and counts are over the global batch.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lead_jax import data
from lead_jax.config_loader import require_fields
from lead_jax.errors import ConfigError

DATA_AXIS, FSDP_AXIS = "data", "fsdp"
AXES = (DATA_AXIS, FSDP_AXIS)

_distributed_initialized = False


# Set for each process by scripts/multiprocess.sh (beside JAX's own JAX_COORDINATOR_ADDRESS); a
# cluster's scheduler variables (SLURM, Open MPI, Kubernetes, ...) are read by JAX instead.
PROCESS_ENV = ("LEAD_JAX_NUM_PROCESSES", "LEAD_JAX_PROCESS_ID")


def _env_int(name: str) -> int | None:
  value = os.environ.get(name, "")
  return int(value) if value else None


def initialize_distributed(config) -> None:
  """Joins the multi-process run once, when `config.multihost` is set: CPU collectives through
  gloo, then `jax.distributed.initialize` with the coordinator in JAX_COORDINATOR_ADDRESS and the
  process count / index in LEAD_JAX_NUM_PROCESSES / LEAD_JAX_PROCESS_ID (scripts/multiprocess.sh),
  or what JAX detects of the cluster (SLURM, Open MPI, ...). A launcher's variables without
  `config.multihost` are a ConfigError (the processes would train alone on the same workdir)."""
  global _distributed_initialized
  require_fields(config, {"": ("multihost",)}, "lead_jax.train.mesh.initialize_distributed")
  count, index = (_env_int(name) for name in PROCESS_ENV)
  if not config.multihost:
    if count is not None and count > 1:
      raise ConfigError(f"{PROCESS_ENV[0]}={count} is set (a multi-process launch) but "
                        "config.multihost is False: pass --config.multihost=True (or --multihost)")
    return
  if _distributed_initialized:
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(num_processes=count, process_id=index)
  _distributed_initialized = True


def make_mesh(config, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """The ("data", "fsdp") mesh of `config.mesh.data` x `config.mesh.fsdp` over `devices` (default:
  every device of the run)."""
  require_fields(config, {"mesh": ("data", "fsdp")}, "lead_jax.train.mesh.make_mesh")
  n = len(devices) if devices is not None else jax.device_count()
  data_size, fsdp = int(config.mesh.data), int(config.mesh.fsdp)
  if fsdp < 1 or n % fsdp:
    raise ConfigError(f"config.mesh.fsdp={fsdp} must be >= 1 and divide the {n} devices")
  if data_size == -1:
    data_size = n // fsdp
  if data_size < 1 or data_size * fsdp != n:
    raise ConfigError(f"config.mesh.data={config.mesh.data} x config.mesh.fsdp={fsdp} uses "
                      f"{data_size * fsdp} devices; {n} are present (mesh.data=-1 takes the rest)")
  return jax.make_mesh((data_size, fsdp), AXES, axis_types=(jax.sharding.AxisType.Auto,) * 2,
                       devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over every mesh axis, the rest replicated."""
  return NamedSharding(mesh, P(mesh.axis_names))


def fsdp_spec(shape: tuple[int, ...], size: int) -> P:
  """`P` splitting the largest dimension of `shape` divisible by `size` (ties: the first) over
  'fsdp'; `P()` (replicated) when `size` is 1 or no dimension divides."""
  if size > 1:
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
      if shape[dim] >= size and shape[dim] % size == 0:
        return P(*(None,) * dim, FSDP_AXIS)
  return P()


def state_shardings(mesh: Mesh, tree: Any) -> Any:
  """`NamedSharding` of every array (or `ShapeDtypeStruct`) leaf of `tree` by `fsdp_spec`."""
  size = dict(mesh.shape).get(FSDP_AXIS, 1)
  return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), size)), tree)


def to_global_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """The step's input: `lead_jax.data.to_global_batch` of the array fields of a local batch."""
  return data.to_global_batch(data.numeric_fields(batch), mesh, batch_sharding(mesh))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """`tree` (the same values on every process) replicated on every device of `mesh`, through host
  copies: a committed single-device array cannot move to other processes' devices directly."""
  return jax.device_put(jax.tree.map(np.asarray, jax.device_get(tree)), replicated(mesh))


def to_host(tree: Any) -> Any:
  """NumPy copies of the arrays of `tree`, whole on every process: an array split over several
  processes' devices is all-gathered (`process_allgather`), the others are read directly. Every
  process must call it with the same arrays."""
  def fetch(x):
    if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
  return jax.tree.map(fetch, tree)
