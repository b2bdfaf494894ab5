"""Model config sections shared by the stage configs (ml_collections ConfigDicts).

Each function returns the section for one module; a stage config holds them under `vae`,
`denoiser` and `projector`, beside `dataset` and `text_encoder`. `lead_jax.models.build_models`
turns the sections present in a config into Flax modules. Training engineers: put optimiser and
data fields in their own sections, keep model fields here.
"""

from __future__ import annotations

import ml_collections

# name -> (nfeats, joints_num)
DATASETS = {"humanml3d": (263, 22), "kit": (251, 21)}
# text encoder kind -> pooled embedding width
TEXT_DIMS = {"clip": 768, "minilm": 384}


def dataset_config(name: str = "humanml3d") -> ml_collections.ConfigDict:
  """`name`, `nfeats`, `joints_num` of a motion dataset ('humanml3d' or 'kit')."""
  nfeats, joints_num = DATASETS[name]
  return ml_collections.ConfigDict({"name": name, "nfeats": nfeats, "joints_num": joints_num})


def text_encoder_config(kind: str = "clip") -> ml_collections.ConfigDict:
  """`kind` ('clip' = CLIP ViT-L/14 text tower, 'minilm' = all-MiniLM-L6-v2) and `dim`."""
  return ml_collections.ConfigDict({"kind": kind, "dim": TEXT_DIMS[kind]})


def vae_config(nfeats: int = 263) -> ml_collections.ConfigDict:
  """MLD motion VAE (reference §2): 9 layers, 4 heads, ff 1024, latent [1, 256], dropout 0.1."""
  return ml_collections.ConfigDict({
      "nfeats": nfeats, "latent_dim": 256, "latent_size": 1, "ff_size": 1024, "num_layers": 9,
      "num_heads": 4, "dropout": 0.1, "max_len": 500})


def denoiser_config(text_dim: int = 768) -> ml_collections.ConfigDict:
  """MLD denoiser (reference §3). `time_channels` 0 means "= text_dim" (as MLD); `cond_proj_dim`
  0 means no MotionLCM guidance embedding (256 turns it on)."""
  return ml_collections.ConfigDict({
      "text_dim": text_dim, "latent_dim": 256, "time_channels": 0, "ff_size": 1024,
      "num_layers": 9, "num_heads": 4, "dropout": 0.1, "max_len": 500, "flip_sin_to_cos": True,
      "freq_shift": 0.0, "cond_proj_dim": 0})


def projector_config(text_dim: int = 768, arch: str = "transformer") -> ml_collections.ConfigDict:
  """LEAD projector (see lead_jax/models/projector.py for what each field means)."""
  return ml_collections.ConfigDict({
      "text_dim": text_dim, "latent_dim": 256, "arch": arch, "num_tokens": 8, "width": 256,
      "ff_size": 1024, "num_layers": 9, "num_heads": 4, "dropout": 0.1, "pool": "token",
      "mlp_layers": 3})


def evaluator_config(nfeats: int = 263, text_dim: int = 384) -> ml_collections.ConfigDict:
  """Trainable evaluator (`lead_jax.metrics.trainable_evaluator`): sizes and the loss margin."""
  return ml_collections.ConfigDict({
      "nfeats": nfeats, "text_dim": text_dim, "drop_last": 4, "unit_length": 4,
      "movement_hidden": 512, "movement_out": 512, "motion_hidden": 1024, "text_hidden": 512,
      "output_dim": 512, "margin": 10.0})


def base_config(dataset: str = "humanml3d", text_encoder: str = "clip",
                modules: tuple[str, ...] = ("vae",)) -> ml_collections.ConfigDict:
  """A stage config with `dataset`, `text_encoder` and the model sections named in `modules`.

  `vae.nfeats` is linked to `dataset.nfeats` and `denoiser/projector.text_dim` to
  `text_encoder.dim` (ml_collections FieldReferences): override the source field, e.g.
  `--config.text_encoder.kind=minilm --config.text_encoder.dim=384`.
  """
  config = ml_collections.ConfigDict()
  config.dataset = dataset_config(dataset)
  config.text_encoder = text_encoder_config(text_encoder)
  sections = {"vae": vae_config, "denoiser": denoiser_config, "projector": projector_config}
  for name in modules:
    config[name] = sections[name]()
    # Linked fields: overriding --config.text_encoder.dim (or dataset.nfeats) updates the models.
    if name == "vae":
      config.vae.nfeats = config.dataset.get_ref("nfeats")
    else:
      config[name].text_dim = config.text_encoder.get_ref("dim")
  return config
