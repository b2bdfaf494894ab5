"""Config files and `--config.a.b=value` overrides: a thin adapter over `ml_collections.config_flags`.

  config = load_config("configs/vae_humanml3d.py", ["--config.vae.dropout=0.2"])
  config = load_config("configs/x.py:kit")            # calls get_config('kit')

`load_config` parses `--config=path[:arg]` with `config_flags.DEFINE_config_file` on a private
`absl.flags.FlagValues` (the repository root of the config file is on `sys.path` while it loads, so
`from configs import common` works from any working directory), then `apply_overrides` parses the
overrides with `config_flags.DEFINE_config_dict`: values are parsed by the field's type (bool:
true/false/1/0; tuples: a Python literal or the flag repeated), `--config.a.b value` works too.
Unknown fields, sections and values that do not parse raise a `ConfigError` naming the field.
`add_override_arguments(parser)` lets an argparse (sub)command collect the override strings.
`require_fields(config, fields, reader)` is how library code says which fields it reads: a missing
one is a `ConfigError` naming it (defaults live in the config files, never in the code).
`repo_config("demo_vae.py")` is the path of one of the repository's own config files (the ones
commands start from: the demo, the inversion defaults, imported checkpoints' stage configs).
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import re
import sys
from typing import Iterable, Mapping, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from lead_jax.errors import ConfigError, MissingFileError

_FLAG = "config"
_PROGRAM = "lead-jax"  # argv[0] of the private flag parsers
# The repository's configs/ folder, beside the package in a source checkout (not installed).
REPO_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def repo_config(name: str) -> pathlib.Path:
  """`configs/<name>` of the repository; `MissingFileError` when the checkout has none."""
  path = REPO_CONFIGS / name
  if not path.is_file():
    raise MissingFileError(f"config file {path} not found: the repository's configs/ folder "
                           "must sit beside lead_jax/ (a source checkout with `pip install -e .`)")
  return path


@contextlib.contextmanager
def _importable_root(file: pathlib.Path):
  """The folder holding the config file's `configs/` package on `sys.path` while it loads."""
  root = str(file.resolve().parent.parent)
  added = root not in sys.path
  if added:
    sys.path.insert(0, root)
  try:
    yield
  finally:
    if added:
      sys.path.remove(root)


def _override_keys(overrides: Sequence[str]) -> list[str]:
  """`['--config.a.b=1', '--config.c', 'x']` -> `['a.b', 'c']` (values given apart are skipped)."""
  return [arg.split("=", 1)[0][len(f"--{_FLAG}."):] for arg in overrides
          if arg.startswith(f"--{_FLAG}.")]


def _check_field(config: ml_collections.ConfigDict, key: str) -> None:
  """ConfigError unless `key` (dotted) names an existing leaf field of `config`."""
  parts = key.split(".")
  node = config
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = ".".join(parts[:depth]) or _FLAG
      known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      raise ConfigError(f"unknown config field --config.{key}: {where} has no field {part!r} "
                        f"(fields: {', '.join(known)})")
    node = node[part]
  if isinstance(node, ml_collections.ConfigDict):
    raise ConfigError(f"--config.{key} is a section, not a field; set one of its fields")


def _value_error(config: ml_collections.ConfigDict, error: flags.Error) -> ConfigError:
  """The ConfigError of a value absl could not parse (`flag --config.a.b=v: reason`)."""
  match = re.match(rf"flag --{_FLAG}\.([\w.]+)=(.*?): (.*)", str(error), re.S)
  if not match:
    return ConfigError(str(error))
  key, value, reason = match.groups()
  holder, _, field = key.rpartition(".")
  section = config[holder] if holder else config
  expected = section.get_type(field).__name__
  return ConfigError(f"--config.{key}={value!r}: expected a {expected} (current value "
                     f"{section[field]!r}; {reason})")


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[str]) -> ml_collections.ConfigDict:
  """Applies `--config.a.b=value` (or `--config.a.b value`) strings to `config` in place."""
  overrides = list(overrides)
  if not overrides:
    return config
  for key in _override_keys(overrides):
    _check_field(config, key)
  argv = [_PROGRAM, *overrides]
  flag_values = flags.FlagValues()
  try:
    config_flags.DEFINE_config_dict(_FLAG, config, flag_values=flag_values, lock_config=False,
                                    sys_argv=argv)
    rest = flag_values(argv, known_only=False)
  except flags.IllegalFlagValueError as e:
    raise _value_error(config, e) from None
  except flags.Error as e:
    raise ConfigError(f"config overrides {overrides}: {e}") from None
  if rest[1:]:
    raise ConfigError(f"unexpected argument(s) {rest[1:]} among the config overrides (a boolean "
                      "takes --config.a.b=false, not a separate value)")
  return config


def load_config(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """`get_config()` of the Python file `path` (optionally `path:arg`), then `overrides` applied."""
  file = pathlib.Path(str(path).partition(":")[0])
  if not file.is_file():
    raise MissingFileError(f"config file not found: {file}")
  argv = [_PROGRAM, f"--{_FLAG}={path}"]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file(_FLAG, None, "config file", flag_values=flag_values,
                                  lock_config=False, sys_argv=argv)
  with _importable_root(file):
    try:
      flag_values(argv)
    except AttributeError as e:  # no get_config(), or a config file touching a missing attribute
      raise ConfigError(f"config file {file}: {e}") from None
    except flags.Error as e:
      raise ConfigError(f"config file {path}: {e}") from None
  config = flag_values[_FLAG].value
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{file}: get_config() returned {type(config).__name__}, expected a ConfigDict")
  return apply_overrides(config, overrides)


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
  """Lets `parser` accept `--config.a.b=value` / `--config.a.b value` and collect them, in order,
  as `args.config_overrides` (the strings `load_config` takes).

  argparse has no wildcard options, so the parser's `parse_known_args` (which a subcommand's parser
  also goes through) takes these strings out before argparse sees the rest.
  """
  inner = parser.parse_known_args

  def parse_known_args(args=None, namespace=None):
    args = list(sys.argv[1:] if args is None else args)
    overrides, rest, i = [], [], 0
    while i < len(args):
      if args[i].startswith(f"--{_FLAG}."):
        overrides.append(args[i])
        if "=" not in args[i] and i + 1 < len(args) and not args[i + 1].startswith("--"):
          i += 1
          overrides.append(args[i])
      else:
        rest.append(args[i])
      i += 1
    parsed, unknown = inner(rest, namespace)
    parsed.config_overrides = list(getattr(parsed, "config_overrides", None) or []) + overrides
    return parsed, unknown

  parser.parse_known_args = parse_known_args


def require_fields(config: Mapping, fields: Mapping[str, Iterable[str]], reader: str) -> None:
  """ConfigError naming each `config.<section>.<field>` of `fields` that `config` lacks.

  `fields` maps a section (`''` = the top level) to the names `reader` (the code reading them,
  named in the message) reads as `config.<section>.<name>`; defaults live in `configs/`.
  """
  missing = []
  for section, names in fields.items():
    if not section:
      node, prefix = config, "config."
    else:
      node, prefix = (config[section] if section in config else {}), f"config.{section}."
    missing += [prefix + name for name in names if name not in node]
  if missing:
    raise ConfigError(f"{reader} reads {', '.join(missing)}, missing from the config (build the "
                      "sections with configs/train_common.py, which holds their defaults)")
