"""Motion textual inversion (MTI; LEAD paper Sec. 4.2, 5.5): learn one new token from example motions.

A placeholder token `<*>` (e.g. "<dance-x>") is added to the text encoder, its input embedding v*
initialised from a one-word descriptor ("walk"), and only v* is optimised with Adam while the text
encoder, VAE, denoiser and projector stay frozen. Each step draws a batch of `batch_size` segments
cut from the example motions, one template prompt per segment ("the sim <*>.", "someone <*>.", ...),
t ~ U{t_min..t_max-1}, eps ~ N(0, I), z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps with z0 the VAE
latent of the segment, eps_hat = denoiser(z_t, t, tau(y')), F = `predict_x0`, and minimises

  lead:  || E_proj(F(eps)) - E_proj(F(eps_hat)) ||^2   (projector space; F(eps) = z0)
  mld:   || eps - eps_hat ||^2                         (the VAE latent space: plain eps MSE)
  feat:  || D_vae(F(eps)) - D_vae(F(eps_hat)) ||^2      (decoded, normalised features; valid frames)

(means over the batch and the dimensions). The step is ONE jitted function whose only trainable
input is v* `[D]`: the text encoder's `embed_tokens` output has the placeholder's rows replaced by v*
with `jnp.where`; every other argument is frozen and passed explicitly.

Choices the paper leaves open (configs/inversion.py): t uniform over the training range, segments
of 64 frames (whole motion when shorter), Adam lr 1e-2, z0 the VAE posterior mean, templates cycled
at random.

  pipe = Pipeline.from_workdir("runs/projector")
  concept = invert(pipe, [load_motion_features("dance.npy")], "<dance-x>", "walk", space="lead")
  concept.save("dance-x.npz")
  pipe2 = Pipeline.from_workdir("runs/projector"); pipe2.add_concept("dance-x.npz")
  pipe2.generate(["a person <dance-x>"], [120], jax.random.key(0))
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lead_jax.diffusion import schedulers
from lead_jax.errors import ConfigError, InputError, MissingFileError, WeightsError
from lead_jax.models import MotionVAE, Projector
from lead_jax.text.base import TextEncoder, TokenBatch

SPACES = ("lead", "mld", "feat")
PLACEHOLDER = "<*>"
TEMPLATES = ("the sim <*>.", "the man <*>.", "someone <*>.", "a robot <*>.", "a person <*>.",
             "the person <*>.", "a human <*>.", "somebody <*>.", "a character <*>.", "a figure <*>.")


@dataclasses.dataclass(frozen=True)
class InversionSettings:
  """MTI hyper-parameters (defaults: configs/inversion.py)."""
  space: str = "lead"
  steps: int = 20
  batch_size: int = 4
  learning_rate: float = 1e-2
  segment_frames: int = 64
  t_min: int = 0
  t_max: int = 1000
  latent: str = "mean"  # z0 = VAE posterior mean ('mean') or a sample ('sample')
  templates: tuple[str, ...] = TEMPLATES
  seed: int = 0

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
  def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> "InversionSettings":
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in dict(config).items() if k in fields}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "templates" in values:
      values["templates"] = tuple(values["templates"])
    return cls(**values)

  def to_dict(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["templates"] = list(self.templates)
    return out


# ---- concept files ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Concept:
  """A learnt token: its input embedding and the text encoder it belongs to."""
  token: str
  embedding: np.ndarray  # [token_dim] float32
  encoder: str           # text encoder name ("clip", "minilm")
  token_dim: int         # width of the encoder's input token embeddings
  embed_dim: int         # width of its pooled output
  vocab_size: int        # rows of its pretrained token table
  init_word: str = ""
  settings: dict[str, Any] = dataclasses.field(default_factory=dict)
  losses: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.float32))

  def check_encoder(self, encoder: TextEncoder) -> None:
    """Raises `WeightsError` unless `encoder` is the one this concept was learnt with."""
    found = (encoder.name, int(encoder.token_dim), int(encoder.embed_dim), int(encoder.vocab_size))
    wanted = (self.encoder, self.token_dim, self.embed_dim, self.vocab_size)
    if found != wanted:
      raise WeightsError(f"concept {self.token!r} was learnt with text encoder (name, token width, "
                         f"embedding width, vocabulary) = {wanted}, but this pipeline's is {found}")
    if np.shape(self.embedding) != (self.token_dim,):
      raise WeightsError(f"concept {self.token!r}: embedding has shape {np.shape(self.embedding)}, "
                         f"expected ({self.token_dim},)")

  def save(self, path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    if path.suffix != ".npz":
      raise InputError(f"concept file must end in .npz, found {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, token=np.asarray(self.token), embedding=np.asarray(self.embedding, np.float32),
             encoder=np.asarray(self.encoder), token_dim=np.asarray(self.token_dim),
             embed_dim=np.asarray(self.embed_dim), vocab_size=np.asarray(self.vocab_size),
             init_word=np.asarray(self.init_word), settings=np.asarray(json.dumps(self.settings)),
             losses=np.asarray(self.losses, np.float32))
    return path


CONCEPT_FIELDS = ("token", "embedding", "encoder", "token_dim", "embed_dim", "vocab_size")


def load_concept(path: str | pathlib.Path) -> Concept:
  """Reads a concept `.npz` written by `Concept.save` (`lead-jax invert`)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"concept file not found: {path}")
  try:
    with np.load(path, allow_pickle=False) as archive:
      data = dict(archive)
  except (ValueError, OSError, TypeError, AttributeError) as e:
    raise InputError(f"{path}: not a concept .npz file ({e})") from e
  missing = [k for k in CONCEPT_FIELDS if k not in data]
  if missing:
    raise InputError(f"{path}: concept file lacks {missing} (found {sorted(data)})")
  return Concept(token=str(data["token"]), embedding=np.asarray(data["embedding"], np.float32),
                 encoder=str(data["encoder"]), token_dim=int(data["token_dim"]),
                 embed_dim=int(data["embed_dim"]), vocab_size=int(data["vocab_size"]),
                 init_word=str(data.get("init_word", "")),
                 settings=json.loads(str(data["settings"])) if "settings" in data else {},
                 losses=np.asarray(data.get("losses", np.zeros(0)), np.float32))


# ---- example motions -------------------------------------------------------------------------------
def load_motion_features(path: str | pathlib.Path, nfeats: int = 263) -> np.ndarray:
  """De-normalised features `[T, nfeats]` from a `.npy` of features `[T, nfeats]` or of joints
  `[T, 22, 3]` (converted with `extract_features`, giving T-1 frames)."""
  from lead_jax.io.arrays import load_npy  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  data = np.asarray(load_npy(path), np.float32)
  if data.ndim == 3 and data.shape[1:] == (22, 3):
    if data.shape[0] < 2:
      raise InputError(f"{path}: joints need at least 2 frames, found {data.shape[0]}")
    from lead_jax.motion import extract_features  # pylint: disable=import-outside-toplevel
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


# ---- the objective and the jitted step -------------------------------------------------------------
def make_loss_fn(pipeline: Any, space: str, token_id: int, latent: str = "mean"):
  """`loss_fn(v [D], frozen, tokens, features [B, T, D_f] normalised, mask [B, T], key) -> loss`.

  `frozen = {'text', 'extra', 'vae', 'denoiser', 'projector'?}`: the text encoder's parameters and
  placeholder rows (v* replaces the rows of `token_id`), and the model parameters.
  """
  if space not in SPACES:
    raise ConfigError(f"inversion space must be one of {SPACES}, found {space!r}")
  if space == "lead" and pipeline.projector is None:
    raise ConfigError("space='lead' needs the projector (give the projector's workdir); use "
                      "space='mld' or 'feat' in MLD mode")
  enc: TextEncoder = pipeline.text_encoder
  vae, denoiser, projector = pipeline.vae, pipeline.denoiser, pipeline.projector
  state = pipeline.scheduler.make("ddpm", pipeline.scheduler.num_train_timesteps)

  def loss_fn(v, frozen, tokens: TokenBatch, features, mask, key, t_range):
    emb = enc.embed_tokens(frozen["text"], tokens.ids, frozen["extra"])
    emb = jnp.where((tokens.ids == token_id)[..., None], v.astype(emb.dtype), emb)
    text = enc.encode_embeddings(frozen["text"], emb, tokens)[0].astype(jnp.float32)
    k_latent, k_t, k_noise = jax.random.split(key, 3)
    z0, mu, _ = vae.apply({"params": frozen["vae"]}, features, mask,
                          k_latent if latent == "sample" else None, method=MotionVAE.encode)
    z0 = z0 if latent == "sample" else mu
    t = jax.random.randint(k_t, (features.shape[0],), t_range[0], t_range[1], jnp.int32)
    eps = jax.random.normal(k_noise, z0.shape, z0.dtype)
    z_t = schedulers.add_noise(state, z0, eps, t)
    eps_hat = denoiser.apply({"params": frozen["denoiser"]}, z_t, t, text)
    if space == "mld":
      return jnp.mean(jnp.square(eps_hat - eps))
    x0_true = schedulers.predict_x0(state, eps, t, z_t)
    x0_pred = schedulers.predict_x0(state, eps_hat, t, z_t)
    if space == "lead":
      proj = {"params": frozen["projector"]}
      target = projector.apply(proj, x0_true, method=Projector.encode)
      pred = projector.apply(proj, x0_pred, method=Projector.encode)
      return jnp.mean(jnp.square(pred - target))
    both = vae.apply({"params": frozen["vae"]}, jnp.concatenate([x0_true, x0_pred]),
                     jnp.concatenate([mask, mask]), method=MotionVAE.decode)
    target, pred = jnp.split(both, 2)
    sq = jnp.sum(jnp.square(pred - target), axis=-1)  # padded frames are zero in both
    return jnp.sum(sq) / (jnp.maximum(jnp.sum(mask), 1) * features.shape[-1])

  return loss_fn


def make_step(loss_fn, optimizer: optax.GradientTransformation):
  """The jitted MTI step `(v, opt_state, frozen, tokens, features, mask, key, t_range) ->
  (v, opt_state, loss)`; v `[D]` is the only input that gets a gradient."""

  def step(v, opt_state, frozen, tokens, features, mask, key, t_range):
    loss, grad = jax.value_and_grad(loss_fn)(v, frozen, tokens, features, mask, key, t_range)
    updates, opt_state = optimizer.update(grad, opt_state, v)
    return optax.apply_updates(v, updates), opt_state, loss

  return jax.jit(step)


def frozen_inputs(pipeline: Any) -> dict[str, Any]:
  """The frozen arguments of the step: text encoder params + placeholder rows, model params (in
  the pipeline's matmul precision)."""
  params = pipeline.compute_params
  frozen = {"text": pipeline.text_encoder.params,
            "extra": jnp.asarray(pipeline.text_encoder.extra_embeddings),
            "vae": params["vae"], "denoiser": params["denoiser"]}
  if "projector" in params:
    frozen["projector"] = params["projector"]
  return frozen


@dataclasses.dataclass
class InversionRun:
  """What `invert` leaves behind: the concept, per-step losses and timings."""
  concept: Concept
  losses: np.ndarray       # [steps] training loss of each step
  eval_losses: np.ndarray  # [2] loss on one fixed batch with v_init and with v_final
  seconds_per_step: float  # after the first (compiling) step
  compile_seconds: float


def invert(pipeline: Any, motions: Sequence[np.ndarray], token: str, init_word: str | None,
           settings: InversionSettings | None = None, progress: bool = False) -> InversionRun:
  """Learns `token` from `motions` (de-normalised features `[T, D]` each).

  Adds `token` to `pipeline.text_encoder` (initialised from `init_word`'s embedding) and leaves it
  there with the learnt embedding; nothing else in the pipeline changes.
  """
  settings = settings or InversionSettings()
  enc = pipeline.text_encoder
  motions = [np.asarray(m, np.float32) for m in motions]
  for i, m in enumerate(motions):
    if m.ndim != 2 or m.shape[1] != pipeline.vae.nfeats:
      raise InputError(f"example motion {i} has shape {m.shape}; expected [T, {pipeline.vae.nfeats}]")
  if settings.space == "lead" and pipeline.projector is None:
    raise ConfigError("space='lead' needs the projector (give the projector's workdir); use "
                      "space='mld' or 'feat' in MLD mode")
  normed = [(m - pipeline.mean) / pipeline.std for m in motions]
  frames = min(settings.segment_frames, pipeline.max_frames)
  if settings.t_max > pipeline.scheduler.num_train_timesteps:
    raise ConfigError(f"t_max={settings.t_max} exceeds num_train_timesteps="
                      f"{pipeline.scheduler.num_train_timesteps}")
  (token_id,) = enc.add_tokens([token], init_word or None)
  prompts = [t.replace(PLACEHOLDER, token) for t in settings.templates]
  batch = enc.tokenize(prompts)
  if not np.all((batch.ids == token_id).any(axis=1)):
    raise InputError(f"the token {token!r} was cut from some template prompts by the tokenizer's "
                     f"{enc.max_length}-token limit")
  templates = enc.trim(jax.tree.map(np.asarray, batch))

  loss_fn = make_loss_fn(pipeline, settings.space, token_id, settings.latent)
  optimizer = optax.adam(settings.learning_rate)
  step = make_step(loss_fn, optimizer)
  frozen = frozen_inputs(pipeline)
  row = token_id - enc.vocab_size
  v = jnp.asarray(enc.extra_embeddings[row])
  v_init = v
  opt_state = optimizer.init(v)
  sampler = SegmentSampler(normed, frames, settings.batch_size, len(prompts), settings.seed)
  key = jax.random.key(settings.seed)
  t_range = jnp.asarray([settings.t_min, settings.t_max], jnp.int32)

  def tokens_for(index):
    return jax.tree.map(lambda a: jnp.asarray(a[index]), templates)

  fixed = sampler.sample()
  fixed_key = jax.random.fold_in(key, 2**31 - 1)
  eval_fn = jax.jit(loss_fn)
  eval_before = float(eval_fn(v_init, frozen, tokens_for(fixed[2]), fixed[0], fixed[1], fixed_key,
                              t_range))
  losses, times = [], []
  iterator = range(settings.steps)
  if progress:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    iterator = tqdm(iterator, desc=f"invert {token}", unit="step")
  for i in iterator:
    feats, mask, index = sampler.sample()
    start = time.perf_counter()
    v, opt_state, loss = step(v, opt_state, frozen, tokens_for(index), feats, mask,
                              jax.random.fold_in(key, i), t_range)
    losses.append(float(loss))
    times.append(time.perf_counter() - start)
  eval_after = float(eval_fn(v, frozen, tokens_for(fixed[2]), fixed[0], fixed[1], fixed_key,
                             t_range))
  embedding = np.asarray(v, np.float32)
  enc.set_token_embedding(token, embedding)
  concept = Concept(token=token, embedding=embedding, encoder=enc.name, token_dim=enc.token_dim,
                    embed_dim=enc.embed_dim, vocab_size=enc.vocab_size, init_word=init_word or "",
                    settings=settings.to_dict(), losses=np.asarray(losses, np.float32))
  return InversionRun(concept=concept, losses=np.asarray(losses, np.float32),
                      eval_losses=np.asarray([eval_before, eval_after], np.float32),
                      seconds_per_step=float(np.mean(times[1:])) if len(times) > 1 else float("nan"),
                      compile_seconds=float(times[0]) if times else float("nan"))
