"""What a stage trainer does around its loss: start the run, load the frozen inputs, make the data
streams, run the loop.

  mesh = start_stage(config)                            # distributed init, absolute paths, mesh
  vae = load_dependency(config, "vae")                  # frozen stage of dependencies.vae_workdir
  train_stream, eval_stream = stage_streams(config, text_encoder)
  state = run_stage(config, workdir, program, train_stream, frozen, eval_fn, mesh)

Provenance (`lead_jax.workdir`): `run_stage` records what the stage trains with (dataset
statistics, the frozen stages' step and fingerprint) in every checkpoint and, when it resumes,
checks the workdir's record against what the config points at now; `load_dependency` checks a
frozen stage's own record the same way (a VAE trained on other statistics, a teacher denoiser
trained on another VAE). A difference that matters is a `DependencyChangedError` unless
`dependencies.allow_changed`.

Config fields: dependencies.{vae_workdir, denoiser_workdir, text_encoder_path, allow_changed},
data.{dir, text_cache_dir} (made absolute), text_encoder.{kind, dim}, train.eval_every.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from jax.sharding import Mesh

from lead_jax import checkpoints, text
from lead_jax import workdir as stage_io
from lead_jax.config_loader import require_fields
from lead_jax.errors import ConfigError, LeadJaxError
from lead_jax.train import inputs
from lead_jax.train import mesh as mesh_lib
from lead_jax.train.loop import run_training
from lead_jax.train.state import TrainState
from lead_jax.train.step import TrainProgram

# Folder fields made absolute by `absolute_paths`.
PATH_FIELDS = {"dependencies": ("vae_workdir", "denoiser_workdir", "text_encoder_path"),
               "data": ("dir", "text_cache_dir")}


class CaptionsUnused:
  """Text "encoder" of width 0 for stages that ignore captions (the VAE): batches then carry
  `text_emb [B, 0]` and no real text model is loaded."""
  name = "unused"
  embed_dim = 0

  def encode(self, texts: list[str]) -> np.ndarray:
    return np.zeros((len(texts), 0), np.float32)


def load_text_encoder(config) -> Any:
  """The frozen text encoder of `config.text_encoder.kind` (path: `dependencies.text_encoder_path`)."""
  require_fields(config, {"text_encoder": ("kind", "dim"), "dependencies": ("text_encoder_path",)},
                 "lead_jax.train.stage.load_text_encoder")
  encoder = text.load_text_encoder(config.text_encoder.kind,
                                   config.dependencies.text_encoder_path or None)
  if int(encoder.embed_dim) != int(config.text_encoder.dim):
    raise ConfigError(f"config.text_encoder.dim={config.text_encoder.dim} but the "
                      f"{config.text_encoder.kind} encoder gives {encoder.embed_dim}-d embeddings")
  return encoder


def make_streams(config, text_encoder: Any, with_eval: bool = True) -> tuple[Any, Any]:
  """(training stream, evaluation stream or None) of `config.data`, process-local numpy batches
  (`lead_jax.train.inputs.make_streams`: the backend `config.data.backend` names)."""
  return inputs.make_streams(config, text_encoder, with_eval=with_eval)


def stage_streams(config, text_encoder: Any = None) -> tuple[Any, Any]:
  """`inputs.make_streams` of a training stage: `text_encoder` defaults to
  `load_text_encoder(config)`; the evaluation stream is None unless `train.eval_every`."""
  return inputs.make_streams(config, text_encoder or load_text_encoder(config),
                             with_eval=bool(config.train.eval_every))


def absolute_paths(config) -> None:
  """Makes the config's folder fields absolute (in place), so the config saved with the
  checkpoints still finds the data and the dependency stages from any working directory."""
  require_fields(config, PATH_FIELDS, "lead_jax.train.stage.absolute_paths")
  for section, fields in PATH_FIELDS.items():
    for field in fields:
      value = config[section][field]
      if isinstance(value, str) and value:
        config[section][field] = os.path.abspath(os.path.expanduser(value))


def start_stage(config) -> Mesh:
  """Joins the distributed run (when `config.multihost`), makes the config's folders absolute;
  returns the device mesh."""
  mesh_lib.initialize_distributed(config)
  absolute_paths(config)
  return mesh_lib.make_mesh(config)


def run_stage(config, workdir: str, program: TrainProgram, train_stream: Any, frozen: Any,
              eval_fn: Callable[[TrainState], Mapping[str, float]] | None, mesh: Mesh
              ) -> TrainState:
  """`run_training` of a stage's `program` on `train_stream`, closed however training ends; every
  checkpoint records the stage's provenance, and a resumed run is checked against its record."""
  try:
    provenance = stage_io.training_provenance(config)
    check_resume_provenance(config, workdir, provenance)
    return run_training(config, workdir, program.init, program.step, train_stream, frozen,
                        eval_fn, mesh=mesh, provenance=provenance)
  finally:
    train_stream.close()


def allow_changed(config) -> bool:
  """`config.dependencies.allow_changed`: accept changed dependencies with a warning."""
  require_fields(config, {"dependencies": ("allow_changed",)}, "lead_jax.train.stage")
  return bool(config.dependencies.allow_changed)


def check_resume_provenance(config, workdir: str, provenance: Mapping[str, Any]) -> None:
  """When `workdir` holds a checkpoint to resume from, compares its recorded provenance with
  `provenance` (`lead_jax.workdir.check_provenance`)."""
  allow = allow_changed(config)
  if not (config.train.resume and checkpoints.has_checkpoints(workdir)):
    return
  with checkpoints.Checkpointer(workdir, read_only=True) as ckpt:
    step = ckpt.latest_step()
  if step is None:
    return
  try:
    meta, _ = checkpoints.load_json_items(workdir, step)
  except LeadJaxError:
    return  # an unreadable latest step: the loop falls back to an older one and says so
  stage_io.check_provenance(f"resuming {pathlib.Path(workdir)} (step {step})",
                            meta.get("provenance"), provenance, allow)


def dataset_stats(config) -> tuple[np.ndarray, np.ndarray]:
  """(Mean, Std) `[D]` of the dataset `config.data` points at."""
  return stage_io.dataset_stats(config)


def load_dependency(config, kind: str) -> stage_io.Stage:
  """The frozen `kind` stage (module, weights, config) named by `dependencies.<kind>_workdir`
  (the weight rule of `lead_jax.workdir`: its EMA when it kept one), checked against the module
  `config.<kind>` builds (`lead_jax.workdir.load_dependency`) and its recorded provenance against the dataset
  statistics and dependency workdirs of `config` (`DependencyChangedError` unless
  `dependencies.allow_changed`)."""
  allow = allow_changed(config)
  dependency = stage_io.load_dependency(config, kind)
  recorded = dependency.provenance
  if recorded:
    kinds = tuple((recorded.get("dependencies") or {}))
    stage_io.check_provenance(f"the {kind} stage {dependency.workdir}", recorded,
                              stage_io.current_provenance(config, kinds), allow)
  return dependency


def eval_batches(stream: Any, limit: int) -> Iterable[dict]:
  """At most `limit` (0 = all) batches of an evaluation stream."""
  for i, batch in enumerate(stream):
    if limit and i >= limit:
      return
    yield batch
