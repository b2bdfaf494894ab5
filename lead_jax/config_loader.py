"""Load a `get_config()` Python config file and apply `--config.a.b=value` overrides.

Follows ml_collections' `config_flags` conventions without absl flags: `path` may carry an argument
after a colon (`configs/x.py:kit` calls `get_config('kit')`); each override names an existing field
by its dotted path and its string value is coerced to that field's current type (bool accepts
true/false/1/0/yes/no; tuples and lists are Python literals; a None field takes a Python literal or
the raw string). Unknown fields and values that do not parse raise `ConfigError`.

  config = load_config("configs/vae_humanml3d.py", ["--config.vae.dropout=0.2"])
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import pathlib
import sys
from typing import Any, Sequence

import ml_collections

from lead_jax.errors import ConfigError, MissingFileError

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def _load_module(path: pathlib.Path):
  # Config files import `configs.common`: make the folder holding `configs/` importable.
  root = str(path.resolve().parent.parent)
  added = root not in sys.path
  if added:
    sys.path.insert(0, root)
  try:
    spec = importlib.util.spec_from_file_location(f"_lead_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
  finally:
    if added:
      sys.path.remove(root)
  return module


def _coerce(value: str, current: Any, key: str) -> Any:
  try:
    if isinstance(current, bool):
      low = value.strip().lower()
      if low in _TRUE | _FALSE:
        return low in _TRUE
      raise ValueError(value)
    if isinstance(current, int):
      return int(value)
    if isinstance(current, float):
      return float(value)
    if isinstance(current, str):
      return value
    if isinstance(current, (tuple, list)):
      parsed = ast.literal_eval(value)
      if not isinstance(parsed, (tuple, list)):
        parsed = (parsed,)
      return type(current)(parsed)
    if current is None:
      try:
        return ast.literal_eval(value)
      except (ValueError, SyntaxError):
        return value
  except (ValueError, SyntaxError):
    raise ConfigError(f"--config.{key}={value!r}: expected a {type(current).__name__} "
                      f"(current value {current!r})") from None
  raise ConfigError(f"--config.{key}: cannot override a field of type {type(current).__name__}")


def split_override(arg: str) -> tuple[str, str | None]:
  """`'--config.a.b=1'` -> `('a.b', '1')`; `'--config.a.b'` -> `('a.b', None)`."""
  body = arg[2:] if arg.startswith("--") else arg
  if body.startswith("config."):
    body = body[len("config."):]
  key, sep, value = body.partition("=")
  return key, (value if sep else None)


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
  """Apply `--config.a.b=value` (or `--config.a.b value`) strings to `config` in place."""
  args = list(overrides)
  i = 0
  while i < len(args):
    key, value = split_override(args[i])
    if value is None:
      if i + 1 >= len(args):
        raise ConfigError(f"--config.{key} has no value")
      value, i = args[i + 1], i + 1
    i += 1
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts):
      if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
        where = ".".join(parts[:depth]) or "config"
        known = sorted(node.keys()) if isinstance(node, (ml_collections.ConfigDict, dict)) else []
        raise ConfigError(f"unknown config field --config.{key}: {where} has no field {part!r} "
                          f"(fields: {', '.join(known)})")
      if depth < len(parts) - 1:
        node = node[part]
    current = node[parts[-1]]
    if isinstance(current, (ml_collections.ConfigDict, dict)):
      raise ConfigError(f"--config.{key} is a section, not a field; set one of its fields")
    new = _coerce(value, current, key)
    try:
      node[parts[-1]] = new
    except (TypeError, ValueError) as e:
      raise ConfigError(f"--config.{key}={value!r}: {e}") from None
  return config


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
  """Let `parser` accept `--config.a.b=value` / `--config.a.b value` and collect them, in order,
  as `args.config_overrides` (a list of strings for `load_config`).

  argparse has no wildcard options, so the parser's `parse_known_args` is wrapped to take these
  strings out before argparse sees them (this also works for a subcommand's parser).
  """
  inner = parser.parse_known_args

  def parse_known_args(args=None, namespace=None):
    args = list(sys.argv[1:] if args is None else args)
    overrides, rest, i = [], [], 0
    while i < len(args):
      arg = args[i]
      if arg.startswith("--config."):
        overrides.append(arg)
        if "=" not in arg and i + 1 < len(args):
          overrides.append(args[i + 1])
          i += 1
      else:
        rest.append(arg)
      i += 1
    parsed, unknown = inner(rest, namespace)
    parsed.config_overrides = list(getattr(parsed, "config_overrides", None) or []) + overrides
    return parsed, unknown

  parser.parse_known_args = parse_known_args


def load_config(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """Run `get_config()` of the Python file `path` (optionally `path:arg`) and apply `overrides`."""
  file, _, arg = str(path).partition(":")
  file_path = pathlib.Path(file)
  if not file_path.is_file():
    raise MissingFileError(f"config file not found: {file}")
  module = _load_module(file_path)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {file} defines no get_config()")
  config = module.get_config(arg) if arg else module.get_config()
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{file}: get_config() returned {type(config).__name__}, expected a ConfigDict")
  return apply_overrides(config, overrides)
