"""Build the Flax modules named in a config, and their parameter shapes without initialising.

`build_models(config)` reads the sections `vae`, `denoiser`, `projector` that are present (see
`configs/common.py`) and returns `{name: module}`. `abstract_params(name, module)` gives the
parameter tree as `jax.ShapeDtypeStruct`s via `jax.eval_shape` (no memory, no compute);
`init_params(name, module, key)` initialises it for real.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from lead_jax.errors import ConfigError
from lead_jax.models.denoiser import LatentDenoiser
from lead_jax.models.motion_vae import MotionVAE
from lead_jax.models.projector import Projector

MODULE_SECTIONS = ("vae", "denoiser", "projector")


def _kwargs(section: Mapping[str, Any], cls: type, name: str) -> dict[str, Any]:
  fields = set(cls.__dataclass_fields__) - {"parent", "name"}
  kwargs = dict(section)
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ConfigError(f"config.{name} has unknown fields {unknown}; {cls.__name__} takes {sorted(fields)}")
  return kwargs


def build_vae(section: Mapping[str, Any]) -> MotionVAE:
  return MotionVAE(**_kwargs(section, MotionVAE, "vae"))


def build_denoiser(section: Mapping[str, Any]) -> LatentDenoiser:
  kwargs = _kwargs(section, LatentDenoiser, "denoiser")
  # 0 stands for "unset" in configs (ml_collections fields keep their type).
  kwargs["time_channels"] = kwargs.get("time_channels") or None
  kwargs["cond_proj_dim"] = kwargs.get("cond_proj_dim") or None
  return LatentDenoiser(**kwargs)


def build_projector(section: Mapping[str, Any]) -> Projector:
  return Projector(**_kwargs(section, Projector, "projector"))


_BUILDERS = {"vae": build_vae, "denoiser": build_denoiser, "projector": build_projector}


def build_models(config: Mapping[str, Any]) -> dict[str, nn.Module]:
  """`{name: module}` for each of `vae`, `denoiser`, `projector` present in `config`."""
  return {name: _BUILDERS[name](config[name]) for name in MODULE_SECTIONS if name in config}


def example_inputs(name: str, module: nn.Module, batch: int = 1, frames: int = 4) -> tuple:
  """Dummy positional inputs that `module.init` accepts (zeros; shapes only matter)."""
  if name == "vae":
    return (jnp.zeros((batch, frames, module.nfeats)), jnp.ones((batch, frames), bool))
  if name == "denoiser":
    return (jnp.zeros((batch, 1, module.latent_dim)), jnp.zeros((batch,), jnp.int32),
            jnp.zeros((batch, module.text_dim)), True,
            jnp.zeros((batch,)) if module.cond_proj_dim else None)
  if name == "projector":
    return (jnp.zeros((batch, 1, module.latent_dim)),)
  raise ConfigError(f"unknown model section {name!r}; expected one of {MODULE_SECTIONS}")


def init_params(name: str, module: nn.Module, key: jax.Array) -> Any:
  """Freshly initialised `params` tree of `module` (the section `name` tells the inputs)."""
  return module.init({"params": key}, *example_inputs(name, module))["params"]


def abstract_params(name: str, module: nn.Module) -> Any:
  """`params` tree of `module` as `ShapeDtypeStruct`s, via `jax.eval_shape`."""
  return jax.eval_shape(lambda key: init_params(name, module, key), jax.random.key(0))
