"""Read MotionLCM's (V1) published checkpoint: a VAE and a consistency-distilled denoiser.

MotionLCM saves its Lightning-style `{'state_dict': ...}` with MLD's key names (reference §6.1,
§10): `vae.*` exactly as MLD's, `denoiser.*` as MLD's plus the guidance embedding
`denoiser.time_embedding.cond_proj.weight` `[768, 256]` and without MLD's unused `mem_pos`, and the
T2M evaluator modules (dropped). `lead_jax.convert.mld_ckpt` maps them (the cond_proj Linear is a
bias-free kernel, its width read from the key); this module checks that the denoiser IS a
consistency model. `lead_jax.train.imported.import_checkpoint('motionlcm', ...)` (CLI `lead-jax
import motionlcm`) writes OUT/vae and OUT/lcm workdirs from it:

  sections, vae_params, den_params = read_motionlcm_checkpoint("motionlcm_humanml.ckpt")

Text: the published model was distilled on sentence-T5-large embeddings (768-d, reference §6.1);
lead_jax has no sentence-T5 encoder, so generating from it needs a `TextEncoder` of that model
passed to `Pipeline.from_workdir(text_encoder=...)`. A MotionLCM checkpoint distilled on CLIP is
imported with the CLIP text encoder.
"""

from __future__ import annotations

import pathlib
from typing import Any

from lead_jax.convert import mld_ckpt
from lead_jax.errors import WeightsError

# The text encoder MotionLCM V1 conditions on (recorded as the imported stages' text_encoder.kind).
MOTIONLCM_TEXT_ENCODER = "sentence-t5"


def read_motionlcm_checkpoint(path: str | pathlib.Path, num_heads: int = 4,
                              allow_pickle: bool = False
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
