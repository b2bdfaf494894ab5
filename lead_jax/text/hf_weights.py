"""Hugging Face weight files -> flat NumPy dicts -> our Flax parameter trees, strictly checked.

Readers accept a model directory holding `model.safetensors`, `model.safetensors.index.json`
(sharded), `pytorch_model.bin` or `pytorch_model.bin.index.json` (the `.bin` forms need torch and are
read with `torch.load(weights_only=True)`), or one such file. `assign_params` fills an abstract
parameter tree (from `jax.eval_shape`) from a flat dict through a per-model naming rule and raises
`WeightsError` listing every missing tensor, unexpected tensor and shape mismatch: no parameter is
ever left at its random initialisation. A missing directory or config.json raises
`MissingFileError`; a directory without a weight file raises `WeightsError`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lead_jax.convert.torch_files import flatten_tree, load_torch_file, short_list, unflatten_tree
from lead_jax.errors import MissingFileError, WeightsError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
TORCH_BIN_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILE_NAMES = (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN, TORCH_BIN_INDEX)

# An HF key for one of our leaves and whether the array is transposed (torch Linear [out, in] ->
# Flax kernel [in, out]).
HFKey = tuple[str, bool]


@dataclasses.dataclass
class StateDict:
  """Tensors read from weight files: `tensors` maps HF names to float32/int NumPy arrays."""
  tensors: dict[str, np.ndarray]
  files: list[pathlib.Path]

  @property
  def source(self) -> str:
    return ", ".join(str(f) for f in self.files)


def find_weight_file(path: str | pathlib.Path) -> pathlib.Path:
  """The weight file to read for `path` (a directory or a file); safetensors preferred."""
  path = pathlib.Path(path)
  if path.is_file():
    return path
  if not path.is_dir():
    raise MissingFileError(f"model directory {path} does not exist")
  for name in WEIGHT_FILE_NAMES:
    if (path / name).is_file():
      return path / name
  raise WeightsError(
      f"no weight file in {path}: expected one of {', '.join(WEIGHT_FILE_NAMES)}; found "
      f"{sorted(p.name for p in path.iterdir()) or 'an empty directory'}")


def _to_numpy(array: Any) -> np.ndarray:
  array = np.asarray(array)
  if np.issubdtype(array.dtype, np.floating) and array.dtype != np.float32:
    array = array.astype(np.float32)
  return array


def _read_safetensors(file: pathlib.Path, keep: Callable[[str], bool]) -> dict[str, np.ndarray]:
  from safetensors import safe_open  # pylint: disable=import-outside-toplevel
  out = {}
  try:
    with safe_open(str(file), framework="numpy") as f:
      for key in f.keys():
        if keep(key):
          out[key] = _to_numpy(f.get_tensor(key))
  except (TypeError, ValueError) as e:  # bfloat16 has no NumPy dtype: go through JAX.
    if "bf16" not in str(e).lower() and "bfloat16" not in str(e).lower():
      raise WeightsError(f"cannot read safetensors file {file}: {e}") from e
    from safetensors.flax import load_file  # pylint: disable=import-outside-toplevel
    out = {k: _to_numpy(v.astype(np.float32)) for k, v in load_file(str(file)).items() if keep(k)}
  except Exception as e:  # pylint: disable=broad-except
    raise WeightsError(f"cannot read safetensors file {file}: {e}") from e
  return out


def _read_torch_bin(file: pathlib.Path, keep: Callable[[str], bool]) -> dict[str, np.ndarray]:
  state = load_torch_file(file)
  import torch  # pylint: disable=import-outside-toplevel  (installed: load_torch_file read it)
  if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
    state = state["state_dict"]
  out = {}
  for key, value in state.items():
    if keep(key) and isinstance(value, torch.Tensor):
      value = value.detach()
      if value.is_floating_point():
        value = value.float()
      out[key] = _to_numpy(value.numpy())
  return out


def _read_one(file: pathlib.Path, keep: Callable[[str], bool]) -> dict[str, np.ndarray]:
  if file.suffix == ".safetensors":
    return _read_safetensors(file, keep)
  if file.suffix in (".bin", ".pt", ".pth", ".ckpt"):
    return _read_torch_bin(file, keep)
  raise WeightsError(f"unknown weight file type {file} (expected .safetensors, .bin or an index .json)")


def read_state_dict(path: str | pathlib.Path,
                    keep: Callable[[str], bool] | None = None) -> StateDict:
  """Reads all tensors (those whose name passes `keep`) from a directory or weight file."""
  keep = keep or (lambda key: True)
  file = find_weight_file(path)
  if file.name.endswith(".index.json"):
    try:
      weight_map = json.loads(file.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
      raise WeightsError(f"{file} is not a sharded-weights index (no 'weight_map'): {e}") from e
    shards = sorted({file.parent / name for name in weight_map.values()})
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
      raise MissingFileError(f"{file} names shard files that are absent: {', '.join(missing)}")
    tensors: dict[str, np.ndarray] = {}
    for shard in shards:
      tensors.update(_read_one(shard, keep))
    return StateDict(tensors, [file, *shards])
  return StateDict(_read_one(file, keep), [file])


def strip_prefix(state: StateDict, prefixes: tuple[str, ...]) -> StateDict:
  """Removes the first of `prefixes` that every non-ignored key starts with (e.g. `bert.`)."""
  for prefix in prefixes:
    if state.tensors and all(k.startswith(prefix) for k in state.tensors):
      state.tensors = {k[len(prefix):]: v for k, v in state.tensors.items()}
      return state
  return state


def assign_params(abstract_params: Mapping[str, Any], state: StateDict,
                  hf_key: Callable[[tuple[str, ...]], HFKey],
                  ignored: Callable[[str], bool] = lambda key: False,
                  model_name: str = "model") -> dict[str, Any]:
  """Fills `abstract_params` (leaves with `.shape`) from `state` through `hf_key(path)`.

  Args:
    abstract_params: our parameter tree, e.g. `jax.eval_shape(module.init, ...)["params"]`.
    state: the tensors read from the weight files.
    hf_key: maps one of our leaf paths to its HF tensor name and whether it is transposed.
    ignored: HF names that may be present and are not used (buffers, heads we do not need).
    model_name: used in error messages.

  Returns:
    The parameter tree of float32 NumPy arrays.

  Raises:
    WeightsError: naming the files and every missing, unexpected or mis-shaped tensor.
  """
  params = {}
  used = set()
  missing, mismatched = [], []
  for path, leaf in flatten_tree(abstract_params).items():
    key, transpose = hf_key(path)
    expected = tuple(leaf.shape[::-1]) if transpose else tuple(leaf.shape)
    if key not in state.tensors:
      missing.append(f"{key} {list(expected)}")
      continue
    used.add(key)
    array = state.tensors[key]
    if tuple(array.shape) != expected:
      mismatched.append(f"{key}: expected {list(expected)}, found {list(array.shape)}")
      continue
    params[path] = np.ascontiguousarray(array.T if transpose else array, dtype=np.float32)
  unexpected = sorted(k for k in state.tensors if k not in used and not ignored(k))
  problems = []
  if missing:
    problems.append(f"{len(missing)} missing tensor(s): {short_list(missing, sep='; ')}")
  if mismatched:
    problems.append(f"{len(mismatched)} shape mismatch(es): {short_list(mismatched, sep='; ')}")
  if unexpected:
    shapes = [f"{k} {list(state.tensors[k].shape)}" for k in unexpected]
    problems.append(f"{len(unexpected)} unexpected tensor(s): {short_list(shapes, sep='; ')}")
  if problems:
    raise WeightsError(
        f"weights in {state.source} do not fit the {model_name} built from its config: "
        + " | ".join(problems))
  return unflatten_tree(params)


def read_config(directory: str | pathlib.Path) -> Any:
  """The transformers config object of `directory` (defaults filled in), or MissingFileError."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise MissingFileError(f"model directory {directory} does not exist")
  config_file = directory / "config.json"
  if not config_file.is_file():
    raise MissingFileError(
        f"{config_file} is missing: a Hugging Face model directory needs config.json next to its "
        "weights (model.safetensors or pytorch_model.bin)")
  import transformers  # pylint: disable=import-outside-toplevel
  try:
    return transformers.AutoConfig.from_pretrained(str(directory), local_files_only=True)
  except (ValueError, KeyError, OSError, json.JSONDecodeError) as e:
    raise WeightsError(f"cannot parse {config_file}: {e}") from e


def count_params(params: Mapping[str, Any]) -> int:
  """Number of scalars in a parameter tree (works on abstract trees too)."""
  return int(sum(int(np.prod(leaf.shape)) for leaf in flatten_tree(params).values()))
