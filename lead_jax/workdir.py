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

Provenance: each checkpoint's meta records what the stage was trained with
(`training_provenance`, saved by `lead_jax.train.loop`): the fingerprint of the dataset statistics
and, for the stages trained on a frozen one (`TRAINED_ON`), that stage's workdir, step, run id and
weight fingerprint. `check_provenance` compares a record with what is loaded now: another step of
the same run is a `DependencyWarning`; changed Mean/Std or a different run's weights are a
`DependencyChangedError` unless the change is accepted (`allow=True`; CLI
`--allow-dependency-change`, training `--config.dependencies.allow_changed=True`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import warnings
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from lead_jax import checkpoints
from lead_jax.config_loader import require_fields
from lead_jax.convert import t2m_ckpt
from lead_jax.data import datasets, layout
from lead_jax.errors import ConfigError, LeadJaxWarning, MissingFileError, WeightsError
from lead_jax.fingerprints import tree_fingerprint
from lead_jax.metrics import embedders, trainable_evaluator
from lead_jax.models import abstract_params, build_denoiser, build_projector, build_vae

# Model sections in the order the stages are trained; a config's kind is the last one present.
STAGE_ORDER = ("vae", "denoiser", "projector")
LCM = "lcm"  # consistency distillation of a denoiser: its module is the `denoiser` section's
EVALUATOR = "evaluator"
KINDS = STAGE_ORDER + (LCM, EVALUATOR)
# The module section each kind's weights belong to.
MODULE_SECTION = {"vae": "vae", "denoiser": "denoiser", "projector": "projector",
                  LCM: "denoiser", EVALUATOR: EVALUATOR}
# The frozen stages each stage trains on (whose exact weights its own weights assume). A kind not
# listed (e.g. a distilled student) records every dependency its config names.
TRAINED_ON = {"vae": (), "denoiser": ("vae",), "projector": ("vae",), EVALUATOR: ()}
ALLOW_FLAG = ("--allow-dependency-change (Python: allow_changed_dependencies=True; training: "
              "--config.dependencies.allow_changed=True)")


class DependencyChangedError(WeightsError):
  """A stage is loaded with other dataset statistics or another dependency stage than it was
  trained with."""


class DependencyWarning(LeadJaxWarning):
  """A stage is loaded with another step of the dependency run it was trained with."""


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
  meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the checkpoint's meta JSON

  @functools.cached_property
  def fingerprint(self) -> str:
    """`tree_fingerprint` of `params` (the one recorded at save time when it is of them)."""
    recorded = self.meta.get("fingerprint")
    if recorded and self.item == self.meta.get("weights_item", self.item):
      return str(recorded)
    return tree_fingerprint(self.params)

  @property
  def provenance(self) -> Mapping[str, Any] | None:
    """What the stage was trained with (`training_provenance`); None for stages saved without."""
    return self.meta.get("provenance")


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
  meta, saved_config = checkpoints.load_json_items(workdir, at)
  config = ml_collections.ConfigDict(saved_config)
  found = stage_kind(config)
  if kind is not None and not is_kind(found, kind):
    raise ConfigError(f"{workdir} holds a {found} stage (config sections {sorted(config)}), not a "
                      f"{kind} stage")
  module = build_module(found, config)
  meta = dict(meta, weights_item=weights_item(items))
  if item is None:
    item = weights_item(items)
  elif item not in items:
    raise WeightsError(f"{workdir}: checkpoint {at} has no '{item}' item (found {sorted(items)})")
  try:
    params = checkpoints.load_params(workdir, item, step=at, target=module_shapes(found, module))
  except WeightsError as e:
    raise WeightsError(f"{found} stage ({workdir}): {e}") from None
  return Stage(kind=found, workdir=workdir, config=config, module=module, params=params,
               item=item, step=at, meta=meta)


def dependency_workdir(config: Mapping[str, Any], kind: str) -> str:
  """`config.dependencies.<kind>_workdir`, or a `ConfigError` saying to set it."""
  deps = config["dependencies"] if "dependencies" in config else {}
  value = deps.get(f"{kind}_workdir", "") if hasattr(deps, "get") else ""
  if not value:
    raise ConfigError(f"config.dependencies.{kind}_workdir is empty: point it at the workdir of "
                      f"the trained {kind} stage")
  return str(value)


def load_dependency(config: Mapping[str, Any], kind: str) -> Stage:
  """The frozen `kind` stage a later stage's config names (`dependencies.<kind>_workdir`), at its
  `dependencies.checkpoint` ('latest', 'best' or a step).

  When the config also describes that stage's model (e.g. a denoiser config's `vae` section), the
  dependency's weights must fit it: `WeightsError` naming the checkpoint item otherwise.
  """
  require_fields(config, {"dependencies": ("checkpoint",)}, f"the frozen {kind} stage")
  stage = load_stage(dependency_workdir(config, kind), kind,
                     step=config["dependencies"]["checkpoint"])
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


def load_evaluator(path: str | os.PathLike, mean: np.ndarray, std: np.ndarray, *,
                   batching: str = "per_sequence", cache_dir: str | os.PathLike | None = None
                   ) -> tuple[embedders.Embedder, dict[str, str]]:
  """The evaluation embedder at `path` and a description of it: a folder written by
  `lead-jax import t2m-evaluator` (the published T2M evaluator; `batching` and `cache_dir` are
  its), or a trained-evaluator workdir (motions in the dataset statistics `mean`, `std`)."""
  path = pathlib.Path(path)
  if t2m_ckpt.is_t2m_evaluator_dir(path):
    evaluator, words = t2m_ckpt.load_t2m_evaluator_dir(path)
    return (embedders.T2MEmbedder(evaluator, words, batching,
                                  None if cache_dir is None else str(cache_dir)),
            {"kind": "t2m", "path": str(path.resolve()), "batching": batching})
  if checkpoints.checkpoint_dir(path).is_dir():
    return (embedders.TrainedEmbedder(load_trained_evaluator(path), mean, std),
            {"kind": "trained", "path": str(path.resolve())})
  raise ConfigError(f"evaluator {path}: neither an imported T2M evaluator (`lead-jax import "
                    "t2m-evaluator FINEST_TAR --glove DIR --mean M --std S --out DIR`) nor a "
                    f"trained-evaluator workdir. {t2m_ckpt.EVALUATOR_HINT}")


# ---- provenance ------------------------------------------------------------------------------------
def stats_record(mean: Any, std: Any, source: str) -> dict[str, str]:
  """{source, fingerprint}: `tree_fingerprint` of Mean and Std as float32 `[D]`."""
  arrays = {name: np.asarray(a, np.float32) for name, a in (("mean", mean), ("std", std))}
  return {"source": str(source), "fingerprint": tree_fingerprint(arrays)}


def stage_record(stage: Stage) -> dict[str, Any]:
  """{workdir, step, run_id, fingerprint} of a loaded stage."""
  return {"workdir": os.path.abspath(stage.workdir), "step": int(stage.step),
          "run_id": stage.meta.get("run_id"), "fingerprint": stage.fingerprint}


def dependency_record(workdir: str | os.PathLike, step: int | str | None = None
                      ) -> dict[str, Any]:
  """`stage_record` of the checkpoint `step` ('latest', 'best' or a number) of `workdir`, from
  its meta (the weights are loaded only for a checkpoint saved without a fingerprint)."""
  with checkpoints.Checkpointer(workdir, read_only=True) as ckpt:
    at = _resolve_step(ckpt, str(workdir), step)
  meta, _ = checkpoints.load_json_items(workdir, at)
  if meta.get("fingerprint"):
    return {"workdir": os.path.abspath(workdir), "step": int(meta["step"]),
            "run_id": meta.get("run_id"), "fingerprint": str(meta["fingerprint"])}
  return stage_record(load_stage(workdir, step=int(meta["step"])))


def current_provenance(config: Mapping[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
  """What a stage config points at now: its dataset statistics and the checkpoints
  (`dependencies.checkpoint`) of the `kinds` dependency workdirs it names (empty ones skipped)."""
  mean, std = dataset_stats(config)
  source = config["data"]["dir"] or f"the embedded {config['data']['builder']} dataset"
  deps = config["dependencies"]
  records = {kind: dependency_record(deps[f"{kind}_workdir"], deps["checkpoint"])
             for kind in kinds if f"{kind}_workdir" in deps and deps[f"{kind}_workdir"]}
  return {"stats": stats_record(mean, std, source), "dependencies": records}


def training_provenance(config: Mapping[str, Any]) -> dict[str, Any]:
  """The provenance a stage trained from `config` records (`TRAINED_ON` its kind)."""
  kind = stage_kind(config)
  if kind == EVALUATOR:
    return {"stats": None, "dependencies": {}}
  kinds = TRAINED_ON.get(kind, tuple(k for k in STAGE_ORDER if k != kind))
  return current_provenance(config, kinds)


def check_provenance(what: str, recorded: Mapping[str, Any] | None, current: Mapping[str, Any],
                     allow: bool = False) -> None:
  """Compares `recorded` (a stage's `training_provenance`) with `current` (same shape: what is
  loaded now). Another step of the same dependency run warns (`DependencyWarning`); changed
  statistics or another run's weights raise `DependencyChangedError` naming `what`, or only warn
  with `allow`. A stage saved without provenance is not checked."""
  if not recorded:
    return
  problems, notes = [], []
  old_stats, new_stats = recorded.get("stats"), current.get("stats")
  if old_stats and new_stats and old_stats["fingerprint"] != new_stats["fingerprint"]:
    problems.append(f"the dataset statistics (Mean/Std of {new_stats['source']}) differ from "
                    f"those it was trained with (of {old_stats['source']}), so its motions "
                    "would be normalised differently")
  for kind, old in (recorded.get("dependencies") or {}).items():
    new = (current.get("dependencies") or {}).get(kind)
    if new is None or old["fingerprint"] == new["fingerprint"]:
      continue
    old_run, new_run = old.get("run_id"), new.get("run_id")
    if (old_run and old_run == new_run) or (not (old_run and new_run) and old["step"] != new["step"]):
      notes.append(f"{what} was trained with the {kind} at step {old['step']} ({old['workdir']}), "
                   f"now its step {new['step']} ({new['workdir']}) is loaded")
    else:
      problems.append(f"the {kind} loaded ({new['workdir']}, step {new['step']}) is not the one "
                      f"it was trained with ({old['workdir']}, step {old['step']}; another run "
                      "or other weights), so its latents mean something else")
  for note in notes:
    warnings.warn(note, DependencyWarning, stacklevel=2)
  if problems and allow:
    for problem in problems:
      warnings.warn(f"{what}: {problem} (accepted)", DependencyWarning, stacklevel=2)
  elif problems:
    raise DependencyChangedError(f"{what}: " + "; ".join(problems) + ". Retrain it on what is "
                                 "there now, restore what it was trained with, or accept the "
                                 f"change with {ALLOW_FLAG}")
