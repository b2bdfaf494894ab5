"""Reading PyTorch weight files and nesting converted tensors: shared by every weight importer.

`load_torch_file(path)` is `torch.load(map_location="cpu", weights_only=True)` with a fallback to
`weights_only=False` only when `allow_pickle` (Lightning checkpoints that pickle hyper-parameter
objects; only for trusted files), raising `WeightsError` naming the file when torch is absent or
the file is not a readable checkpoint. `tensor_to_float32` turns a torch tensor or array-like into
a float32 NumPy array; `flatten_tree` / `unflatten_tree` convert between nested dicts and
`{path tuple: leaf}` dicts (Flax parameter trees).

  ckpt = load_torch_file("finest.tar")                       # {'text_encoder': {...}, ...}
  flat = {("dense", "kernel"): tensor_to_float32(ckpt["w"]).T}
  params = unflatten_tree(flat)                              # {'dense': {'kernel': ...}}
"""

from __future__ import annotations

import pathlib
import pickle
from typing import Any, Mapping

import numpy as np

from lead_jax.errors import WeightsError


def load_torch_file(path: str | pathlib.Path, allow_pickle: bool = False) -> Any:
  """The object `torch.save` wrote to `path` (CPU tensors).

  Raises:
    WeightsError: torch is not installed; the file needs pickle and `allow_pickle` is False; the
      file is not a PyTorch checkpoint.
  """
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise WeightsError(f"{path} is a PyTorch file and torch is not installed; install "
                       "lead-jax[torch] or convert the weights to safetensors") from e
  try:
    try:
      return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
      if not allow_pickle:
        raise WeightsError(f"{path}: not readable with torch.load(weights_only=True): the file "
                           "pickles Python objects (a Lightning checkpoint's hyper-parameters, "
                           "say). Read it only if you trust it: --allow-pickle "
                           f"(allow_pickle=True). ({str(e)[:160]})") from None
      return torch.load(path, map_location="cpu", weights_only=False)
  except WeightsError:
    raise
  except Exception as e:  # pylint: disable=broad-except  torch raises many types for non-checkpoints
    raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: "
                       f"{str(e)[:200]})") from None


def tensor_to_float32(value: Any) -> np.ndarray:
  """A torch tensor (any device / dtype) or array-like -> float32 NumPy array."""
  if hasattr(value, "detach"):
    value = value.detach().cpu().float().numpy()
  return np.asarray(value, dtype=np.float32)


def flatten_tree(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()
                 ) -> dict[tuple[str, ...], Any]:
  """Nested mappings -> `{(key, ..., leaf_key): leaf}` (a non-mapping value is a leaf)."""
  flat = {}
  for name, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(flatten_tree(value, prefix + (name,)))
    else:
      flat[prefix + (name,)] = value
  return flat


def unflatten_tree(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
  """`{(key, ..., leaf_key): leaf}` -> nested dicts (inverse of `flatten_tree`)."""
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = value
  return tree


def short_list(items: list[str], limit: int = 12, sep: str = ", ") -> str:
  """The first `limit` of `items` joined by `sep`, then `... (N more)` when some are left out."""
  shown = sep.join(items[:limit])
  return shown + (f"{sep}... ({len(items) - limit} more)" if len(items) > limit else "")
