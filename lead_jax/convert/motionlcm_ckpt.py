"""Import MotionLCM's (V1) published checkpoint into a VAE workdir and an LCM workdir.

MotionLCM saves its Lightning-style `{'state_dict': ...}` with MLD's key names (reference §6.1,
§10): `vae.*` exactly as MLD's, `denoiser.*` as MLD's plus the guidance embedding
`denoiser.time_embedding.cond_proj.weight` `[768, 256]` and without MLD's unused `mem_pos`, and the
T2M evaluator modules (dropped). `lead_jax.convert.mld_ckpt` maps them (the cond_proj Linear is a
bias-free kernel, its width read from the key); this module checks that the denoiser IS a
consistency model and writes the workdirs:

  OUT/vae   the VAE stage (config: dataset, text_encoder, vae, data, dependencies)
  OUT/lcm   the consistency-distilled denoiser, an 'lcm' stage (config: + denoiser with
            cond_proj_dim, scheduler, lcm (MotionLCM V1's recipe), dependencies.vae_workdir)

  dirs = import_motionlcm("motionlcm_humanml.ckpt", "deps/motionlcm", data_dir="datasets/HumanML3D")
  pipe = Pipeline.from_workdir(dirs["lcm"], text_encoder=...)          # scheduler "lcm", 1-4 steps

Text: the published model was distilled on sentence-T5-large embeddings (768-d, reference §6.1),
recorded as `text_encoder.kind = 'sentence-t5'`; lead_jax has no sentence-T5 encoder, so generating
from it needs a `TextEncoder` of that model passed to `Pipeline.from_workdir(text_encoder=...)`.
A MotionLCM checkpoint distilled on CLIP is imported with `text_encoder_kind='clip'`.
"""

from __future__ import annotations

import pathlib
from typing import Any, Mapping

import jax
import ml_collections
import numpy as np

from lead_jax import checkpoints
from lead_jax.convert import mld_ckpt
from lead_jax.errors import ConfigError, WeightsError

# The text encoder MotionLCM V1 conditions on, and the kinds a workdir may record.
MOTIONLCM_TEXT_ENCODER = "sentence-t5"
TEXT_ENCODER_KINDS = ("sentence-t5", "clip", "minilm")
# MLD's noise schedule (reference §5), which MotionLCM keeps.
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear"}
# MotionLCM V1's distillation recipe (configs/motionlcm_t2m.yaml), recorded in the LCM workdir.
LCM_RECIPE = {"num_ddim_timesteps": 50, "w_min": 5.0, "w_max": 15.0, "teacher_dropout": True,
              "target_dropout": True}
DATASETS = {263: ("humanml3d", 22), 251: ("kit", 21)}
IMPORT_STEP = 0


def read_motionlcm_checkpoint(path: str | pathlib.Path, num_heads: int = 4,
                              allow_pickle: bool = True
                              ) -> tuple[dict[str, dict], dict[str, Any], dict[str, Any]]:
  """MotionLCM `.ckpt` -> (model config sections, vae params, denoiser params) (NumPy leaves).

  Raises `WeightsError` naming the file when keys are missing / unexpected / mis-shaped, when the
  checkpoint has no denoiser, or when its denoiser has no guidance embedding (an MLD checkpoint:
  import it as MLD's).
  """
  sections, (vae_params, den_params) = mld_ckpt.read_mld_checkpoint(path, num_heads, allow_pickle)
  if den_params is None:
    raise WeightsError(f"{path}: no denoiser.* keys (a VAE-only checkpoint); MotionLCM's "
                       "checkpoint holds the VAE and the distilled denoiser")
  if not sections["denoiser"]["cond_proj_dim"]:
    raise WeightsError(f"{path}: the denoiser has no denoiser.time_embedding.cond_proj.weight (the "
                       "guidance embedding of a consistency model): this is an MLD checkpoint, "
                       "import it as MLD's")
  return sections, vae_params, den_params


def stage_configs(sections: Mapping[str, dict], *, text_encoder_kind: str, text_encoder_path: str,
                  data_dir: str, vae_workdir: str, max_len: int = 196
                  ) -> dict[str, ml_collections.ConfigDict]:
  """The configs of the two imported stages ('vae', 'lcm'): the model sections read from the
  checkpoint and what loading and generating read (dataset, text encoder, data, dependencies,
  scheduler, lcm)."""
  if text_encoder_kind not in TEXT_ENCODER_KINDS:
    raise ConfigError(f"text encoder kind {text_encoder_kind!r}; expected one of "
                      f"{TEXT_ENCODER_KINDS}")
  nfeats = int(sections["vae"]["nfeats"])
  if nfeats not in DATASETS:
    raise WeightsError(f"the VAE has {nfeats} features: neither HumanML3D (263) nor KIT-ML (251)")
  dataset, joints = DATASETS[nfeats]
  text_dim = int(sections["denoiser"]["text_dim"])  # the encoder must give this width (checked
                                                    # when a pipeline loads it)

  def base(modules: tuple[str, ...]) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict({
        "dataset": {"name": dataset, "nfeats": nfeats, "joints_num": joints},
        "text_encoder": {"kind": text_encoder_kind, "dim": text_dim},
        "data": {"dir": data_dir, "builder": "humanml3d" if dataset == "humanml3d" else "kit_ml",
                 "max_len": int(max_len)},
        "dependencies": {"vae_workdir": "", "denoiser_workdir": "",
                         "text_encoder_path": text_encoder_path},
        "source": {"kind": "motionlcm", "checkpoint": ""}})
    for name in modules:
      config[name] = dict(sections[name])
    return config

  vae = base(("vae",))
  lcm = base(("vae", "denoiser"))
  lcm.scheduler = dict(SCHEDULE)
  lcm.lcm = dict(LCM_RECIPE)
  lcm.dependencies.vae_workdir = vae_workdir
  return {"vae": vae, "lcm": lcm}


def write_workdir(workdir: str | pathlib.Path, config: ml_collections.ConfigDict, params: Any,
                  step: int = IMPORT_STEP) -> pathlib.Path:
  """Saves `params` and `config` as checkpoint `step` of `workdir` (as a trainer saves a stage), so
  `lead_jax.workdir.load_stage` loads it. Refuses a workdir that already holds checkpoints."""
  workdir = pathlib.Path(workdir).expanduser().resolve()
  existing = checkpoints.checkpoint_dir(workdir)
  if existing.is_dir() and any(existing.iterdir()):
    raise ConfigError(f"{workdir} already holds checkpoints ({existing}); choose another --out")
  arrays = {"params": jax.tree.map(lambda x: np.asarray(x, np.float32), params)}
  with checkpoints.Checkpointer(workdir) as ckpt:
    ckpt.save(step, arrays, meta={"imported": True}, config=config.to_dict())
  return workdir


def import_motionlcm(ckpt: str | pathlib.Path, out_dir: str | pathlib.Path, *,
                     text_encoder_path: str = "", text_encoder_kind: str = MOTIONLCM_TEXT_ENCODER,
                     data_dir: str = "", num_heads: int = 4, allow_pickle: bool = True,
                     max_len: int = 196) -> dict[str, pathlib.Path]:
  """MotionLCM's checkpoint -> `{'vae': OUT/vae, 'lcm': OUT/lcm}` workdirs (see module docstring).

  Args:
    ckpt: MotionLCM's `.ckpt` (e.g. `experiments_t2m/motionlcm_humanml/motionlcm_humanml.ckpt`).
    out_dir: folder that receives `vae/` and `lcm/`.
    text_encoder_path, text_encoder_kind: the text model the denoiser conditions on (recorded).
    data_dir: the dataset folder whose Mean.npy / Std.npy de-normalise the motions (recorded).
    num_heads: attention heads (not readable from the weights; MotionLCM's 4).
    allow_pickle: read a checkpoint that needs pickle (trusted files only).
    max_len: the longest motion (frames) the stages generate (HumanML3D's 196).
  """
  sections, vae_params, den_params = read_motionlcm_checkpoint(ckpt, num_heads, allow_pickle)
  out = pathlib.Path(out_dir).expanduser().resolve()
  dirs = {"vae": out / "vae", "lcm": out / "lcm"}
  configs = stage_configs(sections, text_encoder_kind=text_encoder_kind,
                          text_encoder_path=str(text_encoder_path or ""),
                          data_dir=str(pathlib.Path(data_dir).resolve()) if data_dir else "",
                          vae_workdir=str(dirs["vae"]), max_len=max_len)
  for config in configs.values():
    config.source.checkpoint = str(pathlib.Path(ckpt).resolve())
  write_workdir(dirs["vae"], configs["vae"], vae_params)
  write_workdir(dirs["lcm"], configs["lcm"], den_params)
  return dirs
