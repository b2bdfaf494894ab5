"""Training sections shared by the stage configs (the model sections live in `configs/common.py`).

`add_training(config, ...)` adds `seed`, `multihost`, `mesh`, `optimizer`, `train`, `data` and
`dependencies` to a stage config. These functions hold the defaults: the training code reads every
field as `config.section.field` and a missing one is a ConfigError naming it. Fields are documented
in `lead_jax/train/__init__.py` (mesh), `optim.py`, `step.py`, `loop.py` and `lead_jax/data` (data).
The defaults are MLD's recipe (reference §2.6, §3.3): AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-8,
weight decay 0.01, constant rate, no clipping, fp32, no EMA, data parallel over every device.
"""

from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder


def mesh_config(data: int = -1, fsdp: int = 1) -> ml_collections.ConfigDict:
  """The device mesh, axes ("data", "fsdp"): `data` devices (-1 = all that `fsdp` leaves) x `fsdp`
  devices. The batch is split over both axes; params, optimiser state and EMA are split over `fsdp`
  along their largest dimension divisible by it (replicated when none is). `fsdp` 1 = pure data
  parallelism; a larger `fsdp` divides the state's memory per device by it (same numbers)."""
  return ml_collections.ConfigDict({"data": data, "fsdp": fsdp})


def optimizer_config(learning_rate: float = 1e-4) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "learning_rate": learning_rate, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.01,
      "schedule": "constant", "warmup_steps": 0, "decay_steps": 0, "end_lr_factor": 0.0,
      "grad_clip_norm": 0.0, "grad_accum_steps": 1})


def train_loop_config(num_steps: int) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "num_steps": num_steps, "log_every": 50, "checkpoint_every": 2000, "eval_every": 0,
      "eval_batches": 8, "max_to_keep": 3, "best_metric": "", "best_mode": "min", "ema_decay": 0.0,
      "compute_dtype": "float32", "dropout_rng": "counter_hash", "resume": True, "progress": True,
      "async_checkpoint": False})


def data_config(data_dir: str = "", builder: str = "humanml3d", batch_size: int = 64,
                max_len: int = 196) -> ml_collections.ConfigDict:
  """Every field `lead_jax.data.data_options` reads (their meaning: `lead_jax/data/options.py`).

  None values (typed placeholders, so `--config.data.fps=20` parses): `seed` -> the run's
  `config.seed`, `fps` -> the dataset kind's frame rate (20; KIT-ML 12.5), `tfds_dir` -> TFDS's
  default folder, `max_clip_len` -> no clip dropped, `text_cache_dir` -> embeddings kept in memory.
  """
  return ml_collections.ConfigDict({
      "dir": data_dir, "builder": builder, "backend": "numpy", "tfds_dir": placeholder(str),
      "batch_size": batch_size, "shards": 0, "split": "train", "eval_split": "test", "min_len": 40,
      "max_len": max_len, "unit_length": 4, "fps": placeholder(float),
      "max_clip_len": placeholder(int), "shuffle_buffer": 0, "prefetch": 2,
      "seed": placeholder(int), "eval_seed": 0, "text_cache_dir": placeholder(str)})


def latent_cache_config(crops_per_clip: int = 0) -> ml_collections.ConfigDict:
  """Where the latent stages' latents come from (`lead_jax.train.latents`): `crops_per_clip` K = 0
  encodes a fresh crop through the frozen VAE every step (MLD, exact); K > 0 encodes K crops per
  clip once and samples z from their cached posteriors, redrawn every `refresh_epochs` epochs
  (0 = never); `dir` stores them ('' = WORKDIR/latent_cache); `encode_batch`: crops per encode
  call."""
  return ml_collections.ConfigDict({"crops_per_clip": crops_per_clip, "refresh_epochs": 0,
                                    "dir": "", "encode_batch": 256})


def dependencies_config() -> ml_collections.ConfigDict:
  """Workdirs of the stages a stage depends on (their EMA weights when they kept one, else their
  params: `lead_jax.workdir`'s rule), which of their checkpoints ('latest', 'best' by their
  `train.best_metric`, or a step number) and the text encoder's model directory.
  `allow_changed` accepts dependencies (or dataset statistics) other than those a resumed run or
  a frozen stage recorded (`lead_jax.workdir.check_provenance`), with a warning instead of an
  error."""
  return ml_collections.ConfigDict({
      "vae_workdir": "", "denoiser_workdir": "", "checkpoint": "latest",
      "text_encoder_path": "",  # CLIP model directory (MiniLM needs none)
      "allow_changed": False})


def add_training(config: ml_collections.ConfigDict, *, num_steps: int, batch_size: int,
                 data_dir: str = "", builder: str = "humanml3d", max_len: int = 196,
                 learning_rate: float = 1e-4) -> ml_collections.ConfigDict:
  """Adds the training sections to a stage config built by `configs.common.base_config`."""
  config.seed = 0
  config.multihost = False
  config.mesh = mesh_config()
  config.optimizer = optimizer_config(learning_rate)
  config.train = train_loop_config(num_steps)
  config.data = data_config(data_dir, builder, batch_size, max_len)
  config.dependencies = dependencies_config()
  return config


def evaluation_config() -> ml_collections.ConfigDict:
  """Generation metrics during training (`lead_jax.train.evaluation`): with `evaluator` set (an
  imported T2M evaluator folder or a trained-evaluator workdir), FID, R-precision and MM-Dist of
  motions generated for the first `num_items` evaluation rows, every `train.eval_every` steps (then
  e.g. `--config.train.best_metric=eval/fid`). `steps`/`guidance_scale`: the sampler's;
  `batching`: the T2M evaluator's ('per_sequence' as MLD, or 'padded'); `cache_dir`: its
  caption-embedding cache ('' = memory only)."""
  return ml_collections.ConfigDict({
      "evaluator": "", "num_items": 256, "steps": 50, "guidance_scale": 7.5,
      "batching": "per_sequence", "cache_dir": ""})


def vae_training(config: ml_collections.ConfigDict, **kwargs) -> ml_collections.ConfigDict:
  """Stage 1 fields: MLD's VAE losses (reference §2.5) and training recipe (§2.6)."""
  add_training(config, **kwargs)
  config.loss = ml_collections.ConfigDict({
      "lambda_rec": 1.0, "lambda_joint": 1.0, "lambda_kl": 1e-4, "masked_mean": False})
  config.train.best_metric = "eval/rec_loss"
  config.train.eval_every = config.train.checkpoint_every  # best_metric needs an evaluation
  return config


def denoiser_training(config: ml_collections.ConfigDict, **kwargs) -> ml_collections.ConfigDict:
  """Stage 2 fields: epsilon MSE on sampled VAE latents, CFG caption dropout 0.1 (§3.3, §5)."""
  add_training(config, **kwargs)
  config.latent_cache = latent_cache_config()
  config.loss = ml_collections.ConfigDict({
      "cfg_drop_prob": 0.1, "latent": "sample", "vae_dropout": False})
  config.scheduler = ml_collections.ConfigDict({
      "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
      "beta_schedule": "scaled_linear"})
  config.train.best_metric = "eval/eps_mse"
  config.train.eval_every = config.train.checkpoint_every
  config.evaluation = evaluation_config()
  return config


def projector_training(config: ml_collections.ConfigDict, **kwargs) -> ml_collections.ConfigDict:
  """Stage 3 fields: LEAD's loss weights (rec, align, kl; 0 switches a term off, as the paper's
  noREC / noALIGN / noKL ablations) and the VAE latent it trains on ('sample' or 'mean')."""
  add_training(config, **kwargs)
  config.latent_cache = latent_cache_config()
  config.loss = ml_collections.ConfigDict({
      "w_rec": 4.7036, "w_align": 2.1591, "w_kl": 0.0596, "kl_eps": 1e-6, "latent": "sample"})
  config.train.best_metric = "eval/loss"
  config.train.eval_every = config.train.checkpoint_every
  config.evaluation = evaluation_config()
  return config
