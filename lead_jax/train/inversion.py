"""Motion textual inversion (MTI; LEAD paper Sec. 4.2, 5.5): learn one new token from example motions.

A placeholder token `<*>` (e.g. "<dance-x>") gets an input embedding v* initialised from a one-word
descriptor ("walk"); only v* is trained, with the shared jitted train step
(`lead_jax.train.step.make_train_program`: Adam is AdamW with weight decay 0), while the text encoder, VAE,
denoiser and projector stay frozen and are passed to the step as explicit `frozen` arguments.
Each step draws `batch_size` segments cut from the example motions and one template prompt per
segment ("the sim <*>.", "someone <*>.", ...); t ~ U{t_min..t_max-1}, eps ~ N(0, I),
z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps with z0 the segment's VAE latent,
eps_hat = denoiser(z_t, t, tau(y')), F = `predict_x0`, and the objective is

  lead:  || E_proj(F(eps)) - E_proj(F(eps_hat)) ||^2   (projector space; F(eps) = z0)
  mld:   || eps - eps_hat ||^2                         (the VAE latent space: plain eps MSE)
  feat:  || D_vae(F(eps)) - D_vae(F(eps_hat)) ||^2      (decoded, normalised features; valid frames)

(means over the batch and the dimensions). The placeholder is data: an `ExtraTokens` row the
prompts' token ids point at, swapped for v* inside the loss with `jnp.where`; nothing in the
pipeline or its text encoder changes, and every inversion of a given pipeline and batch shape runs
the same compiled step.

Choices the paper leaves open (configs/inversion.py): t uniform over the training range, segments
of 64 frames (whole motion when shorter), Adam lr 1e-2, z0 the VAE posterior mean, templates drawn
at random.

  pipe = Pipeline.from_workdir("runs/projector")
  settings = InversionSettings.from_config(configs.inversion.get_config(), space="lead")
  run = invert(pipe, [load_motion_features("dance.npy")], "<dance-x>", "walk", settings)
  run.concept.save("dance-x.npz")
  pipe.generate(["a person <dance-x>"], [120], jax.random.key(0), concepts=[run.concept])
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lead_jax.diffusion import make_scheduler, predict_x0
from lead_jax.diffusion.schedulers import add_noise
from lead_jax.errors import ConfigError, InputError
from lead_jax.generate import Pipeline
from lead_jax.io.arrays import load_npy
from lead_jax.models import MotionVAE, Projector
from lead_jax.motion.features import extract_features
from lead_jax.text.base import ExtraTokens, TextEncoder, TokenBatch
from lead_jax.text.concepts import Concept
from lead_jax.train import mesh as mesh_lib
from lead_jax.train.state import TrainState
from lead_jax.train.step import LossFn, make_train_program

SPACES = ("lead", "mld", "feat")
PLACEHOLDER = "<*>"
TEMPLATES = ("the sim <*>.", "the man <*>.", "someone <*>.", "a robot <*>.", "a person <*>.",
             "the person <*>.", "a human <*>.", "somebody <*>.", "a character <*>.", "a figure <*>.")


@dataclasses.dataclass(frozen=True)
class InversionSettings:
  """MTI settings: `configs/inversion.py` holds the values (`from_config`); see its comments."""
  space: str
  steps: int
  batch_size: int
  segment_frames: int
  t_min: int
  t_max: int
  latent: str            # z0 = VAE posterior mean ('mean') or a sample ('sample')
  templates: tuple[str, ...]
  seed: int
  optimizer: Mapping[str, Any]   # the shared optimiser section (`lead_jax.train.optim`)

  def __post_init__(self):
    if self.space not in SPACES:
      raise ConfigError(f"inversion space must be one of {SPACES}, found {self.space!r}")
    if self.latent not in ("mean", "sample"):
      raise ConfigError(f"inversion latent must be 'mean' or 'sample', found {self.latent!r}")
    for name in ("steps", "batch_size", "segment_frames"):
      if int(getattr(self, name)) < 1:
        raise ConfigError(f"inversion {name} must be >= 1, found {getattr(self, name)}")
    if not 0 <= self.t_min < self.t_max:
      raise ConfigError(f"inversion needs 0 <= t_min < t_max, found {self.t_min}, {self.t_max}")
    if not self.templates or any(PLACEHOLDER not in t for t in self.templates):
      raise ConfigError(f"every template must contain {PLACEHOLDER!r}, found {list(self.templates)}")

  @classmethod
  def from_config(cls, config: Mapping[str, Any], *, learning_rate: float | None = None,
                  **overrides: Any) -> "InversionSettings":
    """From an inversion config (`configs/inversion.py`); keyword overrides that are not None
    replace its fields (`learning_rate` sets `optimizer.learning_rate`)."""
    config = dict(config)
    fields = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(fields - set(config))
    if missing:
      raise ConfigError(f"the inversion config lacks {missing}")
    values = {k: config[k] for k in fields}
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(overrides) - fields)
    if unknown:
      raise ConfigError(f"unknown inversion settings {unknown}")
    values["templates"] = tuple(values["templates"])
    optimizer = dict(values["optimizer"])
    if learning_rate is not None:
      optimizer["learning_rate"] = float(learning_rate)
    values["optimizer"] = optimizer
    return cls(**values)

  def to_dict(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["templates"] = list(self.templates)
    out["optimizer"] = dict(self.optimizer)
    return out

  @property
  def learning_rate(self) -> float:
    return float(self.optimizer["learning_rate"])

  def train_config(self) -> ml_collections.ConfigDict:
    """The shared train step's config: this optimiser, `steps` updates, no EMA, float32, one
    device (the segments of one token are a small batch)."""
    return ml_collections.ConfigDict({
        "optimizer": dict(self.optimizer),
        "train": {"num_steps": int(self.steps), "ema_decay": 0.0, "compute_dtype": "float32"},
        "mesh": {"data": 1, "fsdp": 1}})


# ---- example motions -------------------------------------------------------------------------------
def load_motion_features(path: str | os.PathLike, nfeats: int = 263) -> np.ndarray:
  """De-normalised features `[T, nfeats]` from a `.npy` of features `[T, nfeats]` or of joints
  `[T, 22, 3]` (converted with `extract_features`, giving T-1 frames)."""
  data = np.asarray(load_npy(path), np.float32)
  if data.ndim == 3 and data.shape[1:] == (22, 3):
    if data.shape[0] < 2:
      raise InputError(f"{path}: joints need at least 2 frames, found {data.shape[0]}")
    data = np.asarray(extract_features(data, "t2m"), np.float32)
  if data.ndim != 2 or data.shape[1] != nfeats or data.shape[0] < 1:
    raise InputError(f"{path}: expected features [T, {nfeats}] (de-normalised) or joints "
                     f"[T, 22, 3], found shape {data.shape}")
  if not np.isfinite(data).all():
    raise InputError(f"{path}: the motion contains NaN or infinite values")
  return data


class SegmentSampler:
  """Host-side batches: random segments of the example motions and random template prompts."""

  def __init__(self, motions: Sequence[np.ndarray], frames: int, batch_size: int,
               num_templates: int, seed: int):
    if not motions:
      raise InputError("inversion needs at least one example motion")
    self.motions = [np.asarray(m, np.float32) for m in motions]
    self.frames = int(min(frames, max(m.shape[0] for m in self.motions)))
    self.batch_size = int(batch_size)
    self.num_templates = int(num_templates)
    self.rng = np.random.default_rng(seed)
    # Motions are picked in proportion to the number of segment starts they offer.
    starts = np.asarray([max(m.shape[0] - self.frames, 0) + 1 for m in self.motions], np.float64)
    self.weights = starts / starts.sum()

  def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features `[B, frames, D]` zero-padded, mask `[B, frames]`, template index `[B]`)."""
    dim = self.motions[0].shape[1]
    feats = np.zeros((self.batch_size, self.frames, dim), np.float32)
    mask = np.zeros((self.batch_size, self.frames), bool)
    picks = self.rng.choice(len(self.motions), self.batch_size, p=self.weights)
    for b, m in enumerate(picks):
      motion = self.motions[m]
      start = self.rng.integers(0, max(motion.shape[0] - self.frames, 0) + 1)
      seg = motion[start:start + self.frames]
      feats[b, :len(seg)], mask[b, :len(seg)] = seg, True
    return feats, mask, self.rng.integers(0, self.num_templates, self.batch_size)


def make_batch(features: np.ndarray, mask: np.ndarray, tokens: TokenBatch) -> dict[str, Any]:
  """The step's batch: normalised segments `[B, T, D]`, their mask and the template tokens."""
  return {"features": features, "mask": mask, "ids": tokens.ids,
          "attention_mask": tokens.attention_mask, "eos_index": tokens.eos_index}


# ---- the objective -----------------------------------------------------------------------------------
def make_loss_fn(pipeline: Pipeline, space: str, token_id: int, latent: str = "mean",
                 t_range: tuple[int, int] | None = None) -> LossFn:
  """`loss_fn(v [D], batch, frozen, key) -> (loss, {})`, the shared step's signature.

  `batch` from `make_batch`; `frozen = frozen_inputs(pipeline, extra)`: the text encoder's
  parameters and placeholder rows (the rows of `token_id` are replaced by v) and the models'
  parameters. t ~ U{t_range} (default: the whole training range).
  """
  if space not in SPACES:
    raise ConfigError(f"inversion space must be one of {SPACES}, found {space!r}")
  if space == "lead" and pipeline.projector is None:
    raise ConfigError("space='lead' needs the projector (give the projector's workdir); use "
                      "space='mld' or 'feat' in MLD mode")
  enc: TextEncoder = pipeline.text_encoder
  vae, denoiser, projector = pipeline.vae, pipeline.denoiser, pipeline.projector
  state = make_scheduler(pipeline.schedule, "ddpm")
  t_min, t_max = t_range or (0, state.num_train_timesteps)

  def loss_fn(v, batch, frozen, key):
    tokens = TokenBatch(batch["ids"], batch["attention_mask"], batch["eos_index"])
    emb = enc.embed_tokens(frozen["text"], tokens.ids, frozen["extra"])
    emb = jnp.where((tokens.ids == token_id)[..., None], v.astype(emb.dtype), emb)
    text = enc.encode_embeddings(frozen["text"], emb, tokens)[0].astype(jnp.float32)
    features, mask = batch["features"], batch["mask"]
    k_latent, k_t, k_noise = jax.random.split(key, 3)
    z0, mu, _ = vae.apply({"params": frozen["vae"]}, features, mask,
                          k_latent if latent == "sample" else None, method=MotionVAE.encode)
    z0 = z0 if latent == "sample" else mu
    t = jax.random.randint(k_t, (features.shape[0],), t_min, t_max, jnp.int32)
    eps = jax.random.normal(k_noise, z0.shape, z0.dtype)
    z_t = add_noise(state, z0, eps, t)
    eps_hat = denoiser.apply({"params": frozen["denoiser"]}, z_t, t, text)
    if space == "mld":
      return jnp.mean(jnp.square(eps_hat - eps)), {}
    x0_true = predict_x0(state, eps, t, z_t)
    x0_pred = predict_x0(state, eps_hat, t, z_t)
    if space == "lead":
      proj = {"params": frozen["projector"]}
      target = projector.apply(proj, x0_true, method=Projector.encode)
      pred = projector.apply(proj, x0_pred, method=Projector.encode)
      return jnp.mean(jnp.square(pred - target)), {}
    both = vae.apply({"params": frozen["vae"]}, jnp.concatenate([x0_true, x0_pred]),
                     jnp.concatenate([mask, mask]), method=MotionVAE.decode)
    target, pred = jnp.split(both, 2)
    sq = jnp.sum(jnp.square(pred - target), axis=-1)  # padded frames are zero in both
    return jnp.sum(sq) / (jnp.maximum(jnp.sum(mask), 1) * features.shape[-1]), {}

  return loss_fn


def frozen_inputs(pipeline: Pipeline, extra: ExtraTokens) -> dict[str, Any]:
  """The frozen arguments of the step: the text encoder's parameters, the placeholder rows of
  `extra` and the models' parameters (in the pipeline's matmul precision)."""
  params = pipeline.compute_params
  frozen = {"text": pipeline.text_encoder.params, "extra": jnp.asarray(extra.embeddings),
            "vae": params["vae"], "denoiser": params["denoiser"]}
  if "projector" in params:
    frozen["projector"] = params["projector"]
  return frozen


# ---- inversion ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class InversionRun:
  """What `invert` returns: the concept, per-step losses and timings."""
  concept: Concept
  losses: np.ndarray       # [steps] training loss of each step
  eval_losses: np.ndarray  # [2] loss on one fixed batch with v_init and with v_final
  seconds_per_step: float  # after the first (compiling) step
  compile_seconds: float


class Inverter:
  """Inversions against one frozen pipeline with one objective and optimiser: the shared train step
  and the jitted objective are built (and compiled) once and serve every `invert` call, whatever
  the token, its initial word or the example motions (the MTI protocol inverts 100 motions)."""

  def __init__(self, pipeline: Pipeline, settings: InversionSettings):
    if settings.space == "lead" and pipeline.projector is None:
      raise ConfigError("space='lead' needs the projector (give the projector's workdir); use "
                        "space='mld' or 'feat' in MLD mode")
    if settings.t_max > int(pipeline.schedule["num_train_timesteps"]):
      raise ConfigError(f"t_max={settings.t_max} exceeds num_train_timesteps="
                        f"{pipeline.schedule['num_train_timesteps']}")
    self.pipeline, self.settings = pipeline, settings
    self.token_id = pipeline.text_encoder.vocab_size  # the one placeholder: the first extra row
    config = settings.train_config()
    self.loss_fn = make_loss_fn(pipeline, settings.space, self.token_id, settings.latent,
                                (settings.t_min, settings.t_max))
    self.program = make_train_program(
        config, mesh_lib.make_mesh(config, jax.devices()[:1]),
        lambda _: jnp.zeros((pipeline.text_encoder.token_dim,), jnp.float32), self.loss_fn)
    self.objective = jax.jit(self.loss_fn)

  def invert(self, motions: Sequence[np.ndarray], token: str, init_word: str | None,
             seed: int | None = None, progress: bool = False) -> InversionRun:
    """Learns `token` from `motions` (de-normalised features `[T, D]` each); `seed` (default
    the settings') draws the segments, templates, timesteps and noise."""
    pipeline, settings = self.pipeline, self.settings
    seed = settings.seed if seed is None else int(seed)
    enc = pipeline.text_encoder
    motions = [np.asarray(m, np.float32) for m in motions]
    for i, m in enumerate(motions):
      if m.ndim != 2 or m.shape[1] != pipeline.vae.nfeats:
        raise InputError(f"example motion {i} has shape {m.shape}; expected "
                         f"[T, {pipeline.vae.nfeats}]")
    normed = [(m - pipeline.mean) / pipeline.std for m in motions]
    frames = min(settings.segment_frames, pipeline.max_frames)
    extra = enc.new_tokens([token], init_word or None)
    templates = [t.replace(PLACEHOLDER, token) for t in settings.templates]
    batch = enc.tokenize(templates, extra)
    if not np.all((batch.ids == self.token_id).any(axis=1)):
      raise InputError(f"the token {token!r} was cut from some template prompts by the "
                       f"tokenizer's {enc.max_length}-token limit")
    template_tokens = enc.trim(batch)
    pick = lambda index: jax.tree.map(lambda a: np.asarray(a)[index], template_tokens)

    frozen = frozen_inputs(pipeline, extra)
    v_init = jnp.asarray(extra.embeddings[0])
    state = TrainState.create(v_init, self.program.optimizer, rng=jax.random.key(seed))
    # Placed as the step returns it: one compiled step for every call.
    state = jax.device_put(state, mesh_lib.state_shardings(self.program.mesh, state))
    sampler = SegmentSampler(normed, frames, settings.batch_size, len(templates), seed)
    key = jax.random.key(seed)
    fixed = sampler.sample()
    fixed_batch = make_batch(fixed[0], fixed[1], pick(fixed[2]))
    fixed_key = jax.random.fold_in(key, 2**31 - 1)
    eval_before = float(self.objective(v_init, fixed_batch, frozen, fixed_key)[0])
    losses, times = [], []
    iterator = range(settings.steps)
    if progress:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      iterator = tqdm(iterator, desc=f"invert {token}", unit="step")
    for i in iterator:
      feats, mask, index = sampler.sample()
      start = time.perf_counter()
      state, metrics = self.program.step(state, make_batch(feats, mask, pick(index)), frozen,
                                         jax.random.fold_in(key, i))
      losses.append(float(metrics["loss"]))
      times.append(time.perf_counter() - start)
    v = np.asarray(state.params, np.float32)
    eval_after = float(self.objective(jnp.asarray(v), fixed_batch, frozen, fixed_key)[0])
    concept = Concept(token=token, embedding=v, encoder=enc.name, token_dim=enc.token_dim,
                      embed_dim=enc.embed_dim, vocab_size=enc.vocab_size,
                      init_word=init_word or "", settings={**settings.to_dict(), "seed": seed},
                      losses=np.asarray(losses, np.float32))
    return InversionRun(concept=concept, losses=np.asarray(losses, np.float32),
                        eval_losses=np.asarray([eval_before, eval_after], np.float32),
                        seconds_per_step=float(np.mean(times[1:])) if len(times) > 1
                        else float("nan"),
                        compile_seconds=float(times[0]) if times else float("nan"))

  def num_compiled(self) -> int:
    """Compiled variants of the train step (1 after any number of same-shape inversions)."""
    return int(self.program.step._cache_size())  # pylint: disable=protected-access


def invert(pipeline: Pipeline, motions: Sequence[np.ndarray], token: str, init_word: str | None,
           settings: InversionSettings, progress: bool = False) -> InversionRun:
  """`Inverter(pipeline, settings).invert(motions, token, init_word)`: learns `token` from
  `motions`. The pipeline is not changed: generate with `pipeline.generate(...,
  concepts=[run.concept])`."""
  return Inverter(pipeline, settings).invert(motions, token, init_word, progress=progress)
