"""A trained stage's workdir, loaded one way: config, module, weights and dataset statistics.

Every consumer of a trained stage goes through `load_stage`: generation (`Pipeline`), t-SNE,
evaluation, and the trainers that freeze an earlier stage (`load_dependency`). One weight rule
holds everywhere: **a stage's weights are its EMA (`ema_params`) when its checkpoint kept one,
else `params`**, so the denoiser trains on the latents of the same VAE weights that generation
decodes with.

  vae = load_stage("runs/vae")                      # Stage(kind='vae', module=MotionVAE, ...)
  vae.params, vae.item, vae.step, vae.config
  den = load_dependency(config, "vae")              # the frozen VAE a stage config names
  mean, std = dataset_stats(den.config)             # Mean/Std [D] of the data it trained on

A stage's kind is its config's last model section in `STAGE_ORDER` (`stage_kind`), or 'lcm' for
a consistency-distilled denoiser (a config with an `lcm` section: `lead_jax.train.lcm`), or
'evaluator'. An LCM workdir holds a denoiser (with MotionLCM's guidance embedding) and loads
wherever a denoiser stage is asked for (`load_stage(workdir, "denoiser")`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from lead_jax import checkpoints
from lead_jax.data import datasets, layout
from lead_jax.errors import ConfigError, MissingFileError, WeightsError
from lead_jax.metrics import trainable_evaluator
from lead_jax.models import abstract_params, build_denoiser, build_projector, build_vae

# Model sections in the order the stages are trained; a config's kind is the last one present.
STAGE_ORDER = ("vae", "denoiser", "projector")
LCM = "lcm"  # consistency distillation of a denoiser: its module is the `denoiser` section's
EVALUATOR = "evaluator"
KINDS = STAGE_ORDER + (LCM, EVALUATOR)
# The module section each kind's weights belong to.
MODULE_SECTION = {"vae": "vae", "denoiser": "denoiser", "projector": "projector",
                  LCM: "denoiser", EVALUATOR: EVALUATOR}


def stage_kind(config: Mapping[str, Any]) -> str:
  """'evaluator' for an evaluator config, 'lcm' for a consistency-distillation config (an `lcm`
  section), else the last of vae < denoiser < projector present."""
  if EVALUATOR in config:
    return EVALUATOR
  if LCM in config:
    return LCM
  present = [s for s in STAGE_ORDER if s in config]
  if not present:
    raise ConfigError(f"the config has none of the model sections {KINDS} (found "
                      f"{sorted(config)})")
  return present[-1]


def build_module(kind: str, config: Mapping[str, Any]) -> nn.Module:
  """The Flax module of stage `kind` from its config section."""
  if kind not in KINDS:
    raise ConfigError(f"unknown stage {kind!r}; expected one of {KINDS}")
  section = MODULE_SECTION[kind]
  if section not in config:
    raise ConfigError(f"the config has no '{section}' section (found {sorted(config)})")
  builders = {"vae": build_vae, "denoiser": build_denoiser, "projector": build_projector,
              EVALUATOR: trainable_evaluator.build}
  return builders[section](config[section])


def module_shapes(kind: str, module: nn.Module) -> Any:
  """The parameter tree of `module` as `ShapeDtypeStruct`s (no memory, no compute)."""
  if kind == EVALUATOR:
    return jax.eval_shape(lambda key: trainable_evaluator.init_params(module, key),
                          jax.random.key(0))
  return abstract_params(MODULE_SECTION[kind], module)


def is_kind(found: str, kind: str) -> bool:
  """Whether a stage of kind `found` serves where a `kind` stage is asked for (an LCM student
  serves as a denoiser)."""
  return found == kind or (kind == "denoiser" and found == LCM)


@dataclasses.dataclass(frozen=True)
class Stage:
  """A trained stage: what it is, where, its config, module and weights (the weight rule's item)."""
  kind: str
  workdir: str
  config: ml_collections.ConfigDict
  module: nn.Module
  params: Any
  item: str   # 'ema_params' or 'params'
  step: int


def weights_item(saved_items: set[str]) -> str:
  """The weight rule: `ema_params` when the checkpoint kept an EMA, else `params`."""
  return "ema_params" if "ema_params" in saved_items else "params"


def _resolve_step(ckpt: checkpoints.Checkpointer, workdir: str, step: int | str | None) -> int:
  """`None`/'latest' -> the latest step, 'best' -> the best one (by `train.best_metric`), or int."""
  if step is None or step == "latest":
    found = ckpt.latest_step()
  elif step == "best":
    found = ckpt.best_step()
    if found is None:
      raise MissingFileError(f"{workdir}: no best checkpoint (the stage kept no evaluation "
                             "metric; use the latest checkpoint or a step number)")
  else:
    try:
      found = int(step)
    except (TypeError, ValueError):
      raise ConfigError(f"checkpoint {step!r}: expected 'latest', 'best' or a step number") from None
    if found not in ckpt.all_steps():
      raise MissingFileError(f"{workdir}: no checkpoint at step {found} (found "
                             f"{ckpt.all_steps()})")
  if found is None:
    raise MissingFileError(f"{workdir}: no finished checkpoint in "
                           f"{checkpoints.checkpoint_dir(workdir)}")
  return int(found)


def load_stage(workdir: str | os.PathLike, kind: str | None = None, *,
               step: int | str | None = None, item: str | None = None) -> Stage:
  """Loads the stage trained in `workdir` at `step` (latest; 'best'; a number).

  `kind` (optional) is checked against the saved config ('denoiser' also accepts an LCM
  student, whose `Stage.kind` stays 'lcm'). `item` overrides the weight rule
  ('params' to study the raw weights of a stage that kept an EMA). Raises `MissingFileError` (no workdir or
  checkpoint), `ConfigError` (wrong kind) or `WeightsError` (weights that do not fit the module),
  each naming the workdir.
  """
  workdir = str(workdir)
  if not checkpoints.checkpoint_dir(workdir).is_dir():
    raise MissingFileError(f"{kind or 'stage'} workdir {workdir}: "
                           f"{checkpoints.checkpoint_dir(workdir)} does not exist (train that "
                           "stage first, or fix the workdir)")
  with checkpoints.Checkpointer(workdir, read_only=True) as ckpt:
    at = _resolve_step(ckpt, workdir, step)
    items = ckpt.saved_items(at)
  config = ml_collections.ConfigDict(checkpoints.load_config(workdir, at))
  found = stage_kind(config)
  if kind is not None and not is_kind(found, kind):
    raise ConfigError(f"{workdir} holds a {found} stage (config sections {sorted(config)}), not a "
                      f"{kind} stage")
  module = build_module(found, config)
  if item is None:
    item = weights_item(items)
  elif item not in items:
    raise WeightsError(f"{workdir}: checkpoint {at} has no '{item}' item (found {sorted(items)})")
  try:
    params = checkpoints.load_params(workdir, item, step=at, target=module_shapes(found, module))
  except WeightsError as e:
    raise WeightsError(f"{found} stage ({workdir}): {e}") from None
  return Stage(kind=found, workdir=workdir, config=config, module=module, params=params,
               item=item, step=at)


def dependency_workdir(config: Mapping[str, Any], kind: str) -> str:
  """`config.dependencies.<kind>_workdir`, or a `ConfigError` saying to set it."""
  deps = config["dependencies"] if "dependencies" in config else {}
  value = deps.get(f"{kind}_workdir", "") if hasattr(deps, "get") else ""
  if not value:
    raise ConfigError(f"config.dependencies.{kind}_workdir is empty: point it at the workdir of "
                      f"the trained {kind} stage")
  return str(value)


def load_dependency(config: Mapping[str, Any], kind: str) -> Stage:
  """The frozen `kind` stage a later stage's config names (`dependencies.<kind>_workdir`).

  When the config also describes that stage's model (e.g. a denoiser config's `vae` section), the
  dependency's weights must fit it: `WeightsError` naming the checkpoint item otherwise.
  """
  stage = load_stage(dependency_workdir(config, kind), kind)
  if kind in config:
    where = f"{checkpoints.checkpoint_dir(stage.workdir)}/{stage.step}/{stage.item}"
    checkpoints.check_matches(stage.params, module_shapes(kind, build_module(kind, config)), where)
  return stage


def dataset_stats(config: Mapping[str, Any], data_dir: str | os.PathLike | None = None,
                  dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(Mean, Std) `[D]` of the dataset a stage config trained on (`data.dir`; `data_dir` overrides;
  the embedded DeepMimic default when `data.builder` is 'deepmimic' and no folder is named)."""
  if "data" not in config:
    raise ConfigError("the stage config has no data section, so its dataset is unknown; pass the "
                      "dataset folder (data_dir=..., CLI --data-dir)")
  root = data_dir or config["data"]["dir"]
  if not root:
    root = datasets.dataset_root(config["data"]["builder"], None)
  return layout.load_stats(root, dim)


def load_trained_evaluator(workdir: str | os.PathLike) -> trainable_evaluator.TrainedEvaluator:
  """The evaluator trained in `workdir` (`lead-jax train --config=configs/evaluator_*.py`)."""
  stage = load_stage(workdir, EVALUATOR)
  return trainable_evaluator.TrainedEvaluator(stage.module, stage.params,
                                              stage.config.data.builder)
