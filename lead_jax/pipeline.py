"""Text-to-motion generation: load the trained stages, then one jitted program per batch shape.

  pipe = Pipeline.from_workdir("runs/projector")          # LEAD (projector's workdir)
  pipe = Pipeline.from_workdir("runs/denoiser")           # MLD mode (no projector)
  pipe = Pipeline.from_mld_checkpoint("mld.ckpt", "deps/clip-vit-large-patch14",
                                      "data/Mean.npy", "data/Std.npy")
  out = pipe.generate(["a person walks forward."], [120], jax.random.key(0))
  out["features"]  # [N, Tmax, 263] de-normalised, zero past each length
  out["joints"]    # [N, Tmax, 22, 3]

`generate` runs ONE jitted program (`Pipeline.program`) over explicit arguments (frozen parameters
included, never closed over):

  token embeddings (`embed_tokens`, so placeholder rows from concepts enter here)
    -> text encoder on [""; prompts]           pooled [P, E]; row 0 is the unconditional CLIP("")
    -> guided sampler, one lax.scan            z0 [N, 1, d] (eps_u + s (eps_c - eps_u), uncond first)
    -> projector round trip (LEAD)             z0 <- D_proj(E_proj(z0))
    -> VAE decode with frame masks             [N, T_max, D], de-normalised, zero past each length
    -> recover_from_ric                        joints [N, T_max, J, 3]

Shapes are static and bucketed so lengths never recompile: frames are padded to `max_frames`
(the stage's `data.max_len`, 196 for HumanML3D) and masked; the motion batch N = prompts x samples,
the prompt batch and the token length are rounded up to powers of two. Each motion's noise comes
from `fold_in(fold_in(key, prompt_position), sample)`, so a motion does not depend on the rest of the
batch, on the padding or on `num_samples`.

Input rules: prompts must be non-empty strings (an empty prompt is the unconditional embedding:
`InputError`); lengths are integers in [1, max_frames] (`InputError` otherwise); prompts longer than
the text encoder's context (77 CLIP tokens) are truncated as MLD does (first L-2 word pieces + end
token) and flagged in `out["truncated"]`.

Precision: `matmul_dtype='float32'` (default) keeps MLD's numerics; `'bfloat16'` runs the VAE,
denoiser and projector matmuls in bfloat16 with float32 accumulation (about 2x faster on AMX CPUs,
the native mode of GPU tensor cores and TPUs; `lead_jax.models.precision`).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax import workdir as stage_io
from lead_jax.diffusion import schedulers
from lead_jax.diffusion.sampling import guided_eps
from lead_jax.errors import ConfigError, InputError, WeightsError
from lead_jax.io.arrays import load_npy
from lead_jax.models import LatentDenoiser, MotionVAE, Projector, precision
from lead_jax.motion.features import features_dim, recover_from_ric
from lead_jax.text.base import TextEncoder, TokenBatch, next_pow2

SCHEDULERS = ("ddim", "ddpm")
DEFAULT_MAX_FRAMES = 196


def lengths_mask(lengths: jax.Array, max_frames: int) -> jax.Array:
  """`[N]` int lengths -> `[N, max_frames]` bool, True on valid frames."""
  return jnp.arange(max_frames)[None, :] < lengths[:, None]


def motion_keys(key: jax.Array, prompt_positions: np.ndarray, samples: np.ndarray) -> jax.Array:
  """Per-motion keys `[N]`: `fold_in(fold_in(key, prompt_position), sample)`."""
  fold = jax.vmap(jax.random.fold_in)
  base = jnp.broadcast_to(key, (len(prompt_positions),))
  return fold(fold(base, jnp.asarray(prompt_positions, jnp.uint32)), jnp.asarray(samples, jnp.uint32))


@dataclasses.dataclass(frozen=True)
class SchedulerSettings:
  """The diffusion schedule the denoiser was trained with (configs' `scheduler` section)."""
  num_train_timesteps: int = 1000
  beta_start: float = 0.00085
  beta_end: float = 0.012
  beta_schedule: str = "scaled_linear"

  @classmethod
  def from_config(cls, section: Mapping[str, Any] | None) -> "SchedulerSettings":
    section = dict(section or {})
    return cls(**{f.name: type(f.default)(section[f.name]) for f in dataclasses.fields(cls)
                  if f.name in section})

  def make(self, kind: str, steps: int) -> schedulers.SchedulerState:
    common = dict(num_train_timesteps=self.num_train_timesteps, beta_start=self.beta_start,
                  beta_end=self.beta_end, beta_schedule=self.beta_schedule,
                  num_inference_steps=steps)
    if kind == "ddim":
      return schedulers.make_ddim(**common)  # MLD: leading spacing, offset 1, eta 0
    if kind == "ddpm":
      return schedulers.make_ddpm(**common)
    raise ConfigError(f"scheduler must be one of {SCHEDULERS}, found {kind!r}")


def sample_latents_per_motion(denoiser: LatentDenoiser, params: Any, keys: jax.Array,
                              cond_emb: jax.Array, uncond_emb: jax.Array,
                              state: schedulers.SchedulerState, guidance_scale: jax.Array
                              ) -> jax.Array:
  """Guided DDIM / DDPM sampling (one `lax.scan`) with per-motion noise streams.

  Args:
    denoiser: the module (static). params: its parameters.
    keys: `[N]` typed keys; z_T of motion i is `normal(keys[i])`, a stochastic step s (DDPM,
      DDIM with eta > 0) draws `normal(fold_in(keys[i], s + 1))`.
    cond_emb: `[N, E]`; uncond_emb: `[E]` (CLIP("")); guidance_scale: scalar s.
  Returns:
    z0 `[N, 1, latent_dim]`.
  """
  shape = (1, denoiser.latent_dim)
  normal = jax.vmap(lambda k: jax.random.normal(k, shape, jnp.float32))
  z_init = state.init_noise_sigma * normal(keys)
  stochastic = state.kind in ("ddpm", "lcm") or (state.kind == "ddim" and state.eta > 0)

  def denoise_fn(p, z, t, c):
    return denoiser.apply({"params": p}, z, t, c)

  def body(z, xs):
    t, prev_t, index = xs
    eps = guided_eps(denoise_fn, params, z, t, cond_emb, uncond_emb, guidance_scale)
    noise = normal(jax.vmap(jax.random.fold_in, (0, None))(keys, index + 1)) if stochastic else None
    return schedulers.scheduler_step(state, eps, t, prev_t, z, noise=noise), None

  steps = jnp.arange(state.num_inference_steps, dtype=jnp.uint32)
  z0, _ = jax.lax.scan(body, z_init, (state.timesteps, state.prev_timesteps, steps))
  return z0


def synthesize(vae: MotionVAE, denoiser: LatentDenoiser, projector: Projector | None,
               params: Mapping[str, Any], cond_emb: jax.Array, uncond_emb: jax.Array,
               lengths: jax.Array, keys: jax.Array, guidance_scale: jax.Array,
               state: schedulers.SchedulerState, mean: jax.Array, std: jax.Array,
               max_frames: int, joints_num: int) -> tuple[jax.Array, jax.Array]:
  """Text embeddings -> motions: guided sampling, the projector round trip (when `projector` is
  given), VAE decoding of `[N, max_frames]` masked frames, de-normalisation, joints.

  Returns features `[N, max_frames, D]` and joints `[N, max_frames, J, 3]`, zero past each length.
  Jittable with the modules and sizes static (`Pipeline.program` wraps it with text encoding).
  """
  z0 = sample_latents_per_motion(denoiser, params["denoiser"], keys, cond_emb, uncond_emb, state,
                                 guidance_scale)
  if projector is not None:
    proj = {"params": params["projector"]}
    z_proj = projector.apply(proj, z0, method=Projector.encode)
    z0 = projector.apply(proj, z_proj, method=Projector.decode)
  mask = lengths_mask(lengths, max_frames)
  normed = vae.apply({"params": params["vae"]}, z0, mask, method=MotionVAE.decode)
  features = jnp.where(mask[..., None], normed * std + mean, 0.0)
  joints = recover_from_ric(features, joints_num)
  return features, jnp.where(mask[..., None, None], joints, 0.0)


class Pipeline:
  """Frozen VAE + denoiser (+ projector) + text encoder + dataset statistics, ready to generate."""

  def __init__(self, *, vae: MotionVAE, denoiser: LatentDenoiser, projector: Projector | None,
               params: Mapping[str, Any], text_encoder: TextEncoder, mean: Any, std: Any,
               max_frames: int | None = None, scheduler: SchedulerSettings | None = None,
               source: str = "", matmul_dtype: str = "float32"):
    """See `from_workdir` / `from_mld_checkpoint`. `params` has `vae`, `denoiser` (+`projector`).

    `matmul_dtype`: 'float32' (MLD's numerics) or 'bfloat16' (the VAE, denoiser and projector run
    bfloat16 matmuls with float32 accumulation, everything else float32; see
    `lead_jax.models.precision`). The text encoder always runs float32.
    """
    if denoiser.cond_proj_dim:
      raise ConfigError("this denoiser has a MotionLCM guidance embedding (cond_proj_dim); the "
                        "pipeline samples MLD/LEAD denoisers with classifier-free guidance only")
    if int(denoiser.text_dim) != int(text_encoder.embed_dim):
      raise ConfigError(f"denoiser.text_dim={denoiser.text_dim} but the {text_encoder.name} text "
                        f"encoder gives {text_encoder.embed_dim}-d embeddings")
    if projector is not None and int(projector.text_dim) != int(text_encoder.embed_dim):
      raise ConfigError(f"projector.text_dim={projector.text_dim} but the {text_encoder.name} text "
                        f"encoder gives {text_encoder.embed_dim}-d embeddings")
    if projector is not None and projector.latent_dim != vae.latent_dim:
      raise ConfigError(f"projector.latent_dim={projector.latent_dim} != vae.latent_dim={vae.latent_dim}")
    if denoiser.latent_dim != vae.latent_dim:
      raise ConfigError(f"denoiser.latent_dim={denoiser.latent_dim} != vae.latent_dim={vae.latent_dim}")
    for name in ("vae", "denoiser") + (("projector",) if projector is not None else ()):
      if name not in params:
        raise WeightsError(f"pipeline params lack the '{name}' tree (found {sorted(params)})")
    self.vae, self.denoiser, self.projector = vae, denoiser, projector
    self.params = {k: jax.tree.map(jnp.asarray, v) for k, v in params.items()}
    self.text_encoder = text_encoder
    self.mean = _stat(mean, vae.nfeats, "Mean")
    self.std = _stat(std, vae.nfeats, "Std")
    if not np.all(self.std > 0):
      raise InputError(f"Std has {int(np.sum(self.std <= 0))} entries <= 0")
    self.joints_num = {features_dim(22): 22, features_dim(21): 21}.get(vae.nfeats)
    if self.joints_num is None:
      raise ConfigError(f"vae.nfeats={vae.nfeats} is neither HumanML3D (263) nor KIT (251)")
    self.max_frames = int(max_frames or min(DEFAULT_MAX_FRAMES, vae.max_len))
    if not 1 <= self.max_frames <= vae.max_len:
      raise ConfigError(f"max_frames={self.max_frames} must be in [1, vae.max_len={vae.max_len}]")
    self.scheduler = scheduler or SchedulerSettings()
    self.source = source
    self.concepts: list[Any] = []
    self._states: dict[tuple[str, int], schedulers.SchedulerState] = {}
    self.matmul_dtype = precision.check_matmul_dtype(matmul_dtype)
    self._cast: tuple[Any, Any] | None = None
    self.program = jax.jit(self._program, static_argnames=("use_projector",),
                           compiler_options=precision.compiler_options(self.matmul_dtype))

  # ---- construction ------------------------------------------------------------------------------
  @classmethod
  def from_workdir(cls, workdir: str | pathlib.Path, *, denoiser_workdir: str | None = None,
                   vae_workdir: str | None = None, text_encoder: TextEncoder | None = None,
                   text_encoder_path: str | None = None, data_dir: str | None = None,
                   mean: Any = None, std: Any = None, params_item: str | None = None,
                   max_frames: int | None = None, matmul_dtype: str = "float32") -> "Pipeline":
    """Loads the projector's workdir (LEAD) or the denoiser's (MLD mode) and the stages it names.

    Each stage's latest checkpoint gives its config and weights (`lead_jax.workdir.load_stage`:
    `ema_params` when saved, else `params`; `params_item` overrides that rule). The projector's config names `dependencies.
    denoiser_workdir` and `vae_workdir` (a denoiser's config names `vae_workdir`); keyword arguments
    override them. The text encoder is the config's `text_encoder.kind` at
    `dependencies.text_encoder_path`; Mean/Std come from `data.dir` (or `data_dir`, or arrays/paths
    `mean`, `std`). Raises `MissingFileError` / `WeightsError` / `ConfigError` naming the workdir.
    """
    workdir = str(workdir)
    top = stage_io.load_stage(workdir, item=params_item)
    stages = {top.kind: top}
    if top.kind == "projector":
      den_dir = denoiser_workdir or top.config.dependencies.denoiser_workdir
      if not den_dir:
        raise ConfigError(f"{workdir}: the projector's config has an empty "
                          "dependencies.denoiser_workdir; pass the denoiser's workdir "
                          "(denoiser_workdir=..., CLI --denoiser-workdir)")
      stages["denoiser"] = stage_io.load_stage(den_dir, "denoiser", item=params_item)
    elif top.kind != "denoiser":
      raise ConfigError(f"{workdir}: a {top.kind} stage; give the workdir of the projector stage "
                        "(LEAD) or of the denoiser stage (MLD mode)")
    den = stages["denoiser"]
    vae_dir = (vae_workdir or top.config.dependencies.vae_workdir
               or den.config.dependencies.vae_workdir)
    if not vae_dir:
      raise ConfigError(f"{den.workdir}: dependencies.vae_workdir is empty; pass vae_workdir=... "
                        "(CLI --vae-workdir)")
    stages["vae"] = stage_io.load_stage(vae_dir, "vae", item=params_item)
    if text_encoder is None:
      from lead_jax.text import load_text_encoder  # pylint: disable=import-outside-toplevel
      path = text_encoder_path or den.config.dependencies.text_encoder_path or None
      text_encoder = load_text_encoder(den.config.text_encoder.kind, path)
    if mean is None or std is None:
      mean, std = stage_io.dataset_stats(den.config, data_dir, stages["vae"].module.nfeats)
    return cls(vae=stages["vae"].module, denoiser=den.module,
               projector=stages["projector"].module if "projector" in stages else None,
               params={name: stage.params for name, stage in stages.items()},
               text_encoder=text_encoder, mean=mean, std=std,
               max_frames=max_frames or den.config.data.max_len,
               scheduler=SchedulerSettings.from_config(den.config.scheduler),
               source=workdir, matmul_dtype=matmul_dtype)

  @classmethod
  def from_mld_checkpoint(cls, ckpt: str | pathlib.Path, clip_dir: str | pathlib.Path | None,
                          mean: Any, std: Any, *, text_encoder: TextEncoder | None = None,
                          num_heads: int = 4, max_frames: int | None = None,
                          matmul_dtype: str = "float32") -> "Pipeline":
    """MLD's published `.ckpt` (VAE + denoiser) with CLIP from `clip_dir`; no projector.

    Module sizes (width, feed-forward, layers, text width, position table) are read from the
    checkpoint's shapes; `num_heads` is MLD's 4. `mean`, `std`: arrays or `.npy` paths.
    """
    from lead_jax.convert.mld_ckpt import load_mld_checkpoint  # pylint: disable=import-outside-toplevel
    vae_params, den_params = load_mld_checkpoint(ckpt, num_heads=num_heads)
    if den_params is None:
      raise WeightsError(f"{ckpt}: the checkpoint holds a VAE only (no denoiser.* keys)")
    vae = MotionVAE(**_vae_sizes(vae_params), num_heads=num_heads)
    denoiser = LatentDenoiser(**_denoiser_sizes(den_params), num_heads=num_heads)
    if text_encoder is None:
      from lead_jax.text import load_text_encoder  # pylint: disable=import-outside-toplevel
      text_encoder = load_text_encoder("clip", clip_dir)
    return cls(vae=vae, denoiser=denoiser, projector=None,
               params={"vae": vae_params, "denoiser": den_params}, text_encoder=text_encoder,
               mean=mean, std=std, max_frames=max_frames, source=str(ckpt),
               matmul_dtype=matmul_dtype)

  # ---- concepts (motion textual inversion) -------------------------------------------------------
  def add_concept(self, concept: Any) -> int:
    """Teaches the text encoder a learnt token (`lead_jax.inversion.Concept` or a `.npz` path);
    returns its id. Prompts without the token are unaffected (their embeddings are looked up from
    the unchanged pretrained rows)."""
    from lead_jax import inversion  # pylint: disable=import-outside-toplevel
    if not isinstance(concept, inversion.Concept):
      concept = inversion.load_concept(concept)
    concept.check_encoder(self.text_encoder)
    (token_id,) = self.text_encoder.add_tokens([concept.token])
    self.text_encoder.set_token_embedding(concept.token, concept.embedding)
    self.concepts.append(concept)
    return token_id

  # ---- generation --------------------------------------------------------------------------------
  @property
  def has_projector(self) -> bool:
    return self.projector is not None

  @property
  def compute_params(self) -> Mapping[str, Any]:
    """`params` with the matmul kernels in `matmul_dtype` (cast once, redone if `params` is replaced)."""
    if self._cast is None or self._cast[0] is not self.params:
      self._cast = (self.params, precision.cast_matmul_weights(self.params, self.matmul_dtype))
    return self._cast[1]

  def scheduler_state(self, kind: str = "ddim", steps: int = 50) -> schedulers.SchedulerState:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not (
        1 <= steps <= self.scheduler.num_train_timesteps):
      raise InputError(f"steps must be an integer in [1, {self.scheduler.num_train_timesteps}], "
                       f"found {steps!r}")
    if kind not in SCHEDULERS:
      raise InputError(f"scheduler must be one of {SCHEDULERS}, found {kind!r}")
    if (kind, int(steps)) not in self._states:
      self._states[(kind, int(steps))] = self.scheduler.make(kind, int(steps))
    return self._states[(kind, int(steps))]

  def _program(self, params: Mapping[str, Any], text_params: Any, extra_embeddings: jax.Array,
               tokens: TokenBatch, prompt_index: jax.Array, lengths: jax.Array, keys: jax.Array,
               guidance_scale: jax.Array, state: schedulers.SchedulerState, mean: jax.Array,
               std: jax.Array, *, use_projector: bool) -> tuple[jax.Array, jax.Array]:
    """The jitted generation program.

    Args:
      params: {'vae', 'denoiser', 'projector'?} parameter trees.
      text_params, extra_embeddings: the text encoder's parameters and placeholder rows `[K, D]`.
      tokens: `[P, L]` prompts, row 0 the empty prompt (unconditional).
      prompt_index: `[N]` row of `tokens` of each motion. lengths: `[N]` frames. keys: `[N]` keys.
      guidance_scale: scalar. state: scheduler. mean, std: `[D]`.
    Returns:
      features `[N, max_frames, D]` de-normalised and joints `[N, max_frames, J, 3]`, both zero
      past each motion's length.
    """
    enc = self.text_encoder
    embeddings = enc.embed_tokens(text_params, tokens.ids, extra_embeddings)
    pooled = enc.encode_embeddings(text_params, embeddings, tokens)[0].astype(jnp.float32)
    return synthesize(self.vae, self.denoiser, self.projector if use_projector else None, params,
                      pooled[prompt_index], pooled[0], lengths, keys, guidance_scale, state, mean,
                      std, self.max_frames, self.joints_num)

  def generate(self, texts: Sequence[str], lengths: int | Sequence[int], key: jax.Array,
               guidance_scale: float = 7.5, steps: int = 50, use_projector: bool | None = None,
               scheduler: str = "ddim", num_samples: int = 1,
               prompt_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """Motions for `texts` (each `num_samples` times) of the given `lengths` (frames).

    Args:
      texts: P prompts. lengths: one int for all, or P ints in [1, max_frames].
      key: PRNG key. guidance_scale: s of classifier-free guidance.
      steps: sampler steps. scheduler: "ddim" (MLD) or "ddpm".
      use_projector: LEAD's D_proj(E_proj(z0)) before decoding; None = when the pipeline has one.
      num_samples: motions per prompt.
      prompt_ids: P non-negative ints folded into the key instead of the prompts' positions (so a
        caller batching a long prompt list gets the same motions as one big call).
    Returns:
      dict with `features [N, Tmax, D]` (de-normalised), `joints [N, Tmax, J, 3]` (NumPy, zero past
      each length; Tmax = max(lengths)), `mask [N, Tmax]`, `lengths [N]`, `texts` (N strings),
      `prompt_index [N]`, `sample_index [N]`, `truncated [P]` and `projector` (bool); N = P x
      num_samples ordered prompt-major.
    """
    texts = check_texts(texts)
    lengths = self.check_lengths(lengths, len(texts))
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
      raise InputError(f"num_samples must be a positive integer, found {num_samples!r}")
    if not math.isfinite(float(guidance_scale)):
      raise InputError(f"guidance_scale must be finite, found {guidance_scale!r}")
    if use_projector is None:
      use_projector = self.has_projector
    if use_projector and not self.has_projector:
      raise ConfigError(f"{self.source or 'this pipeline'} has no projector (MLD mode): generate "
                        "with use_projector=False (CLI --no-projector)")
    state = self.scheduler_state(scheduler, steps)

    prompts = len(texts)
    ids = np.arange(prompts) if prompt_ids is None else np.asarray(prompt_ids, np.int64)
    if ids.shape != (prompts,) or (ids < 0).any():
      raise InputError(f"prompt_ids must be {prompts} non-negative integers, found {prompt_ids!r}")
    prompt_pos = np.repeat(np.arange(prompts), num_samples)
    sample_idx = np.tile(np.arange(num_samples), prompts)
    count = prompts * num_samples
    tokens, truncated = self._tokenize(texts)
    bucket = next_pow2(count)
    pad = bucket - count
    prompt_index = np.concatenate([prompt_pos + 1, np.zeros(pad, np.int64)]).astype(np.int32)
    frame_counts = np.concatenate([np.repeat(lengths, num_samples), np.ones(pad, np.int64)])
    keys = motion_keys(key, np.concatenate([ids[prompt_pos], np.zeros(pad, np.int64)]),
                       np.concatenate([sample_idx, np.arange(pad) + num_samples]))
    features, joints = self.program(
        self.compute_params, self.text_encoder.params, jnp.asarray(self.text_encoder.extra_embeddings),
        tokens, jnp.asarray(prompt_index), jnp.asarray(frame_counts, jnp.int32), keys,
        jnp.asarray(guidance_scale, jnp.float32), state, jnp.asarray(self.mean),
        jnp.asarray(self.std), use_projector=bool(use_projector))
    t_max = int(lengths.max())
    out_lengths = frame_counts[:count].astype(np.int64)
    return {
        "features": np.asarray(features[:count, :t_max]),
        "joints": np.asarray(joints[:count, :t_max]),
        "mask": np.arange(t_max)[None] < out_lengths[:, None],
        "lengths": out_lengths,
        "texts": [texts[p] for p in prompt_pos],
        "prompt_index": prompt_pos,
        "sample_index": sample_idx,
        "truncated": truncated,
        "projector": bool(use_projector),
    }

  def num_compiled(self) -> int:
    """How many shapes/variants the generation program has been compiled for."""
    return int(self.program._cache_size())  # pylint: disable=protected-access

  # ---- helpers -----------------------------------------------------------------------------------
  def check_lengths(self, lengths: int | Sequence[int], prompts: int) -> np.ndarray:
    if isinstance(lengths, (int, np.integer)) and not isinstance(lengths, bool):
      lengths = [int(lengths)] * prompts
    values = list(lengths) if not isinstance(lengths, (str, bytes)) else None
    if values is None or len(values) != prompts:
      raise InputError(f"lengths must be one integer or {prompts} integers (one per prompt), found "
                       f"{lengths!r}")
    for i, v in enumerate(values):
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not (
          1 <= int(v) <= self.max_frames):
        raise InputError(f"length of prompt {i} is {v!r}; lengths must be integers in "
                         f"[1, {self.max_frames}] frames (max_frames of this pipeline)")
    return np.asarray(values, np.int64)

  def _tokenize(self, texts: list[str]) -> tuple[TokenBatch, np.ndarray]:
    """Tokens of `["", *texts]` padded to a power-of-two batch (and token length, when the encoder
    allows trimming padding); flags the prompts the tokenizer truncated."""
    enc = self.text_encoder
    rows = ["", *texts]
    batch = enc.tokenize(rows)
    full = enc.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    truncated = np.asarray([len(ids) > enc.max_length for ids in full], bool)
    limit = enc.vocab_size + enc.num_extra_tokens
    if batch.ids.max() >= limit:
      raise InputError(f"token id {int(batch.ids.max())} outside the text encoder's table of "
                       f"{limit} rows")
    batch = enc.trim(batch)
    ids, mask, eos = batch.ids, batch.attention_mask, batch.eos_index
    pad = next_pow2(len(rows), 2) - len(rows)
    rep = lambda a: np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
    return TokenBatch(ids=jnp.asarray(rep(ids)), attention_mask=jnp.asarray(rep(mask)),
                      eos_index=jnp.asarray(rep(eos))), truncated


def check_texts(texts: Sequence[str]) -> list[str]:
  if isinstance(texts, str):
    raise InputError(f"texts must be a list of prompts, found the string {texts!r}")
  texts = list(texts)
  if not texts:
    raise InputError("texts is empty: give at least one prompt")
  for i, t in enumerate(texts):
    if not isinstance(t, str) or not t.strip():
      raise InputError(f"prompt {i} is {t!r}: prompts must be non-empty strings (the empty prompt "
                       "is the unconditional embedding)")
  return texts


def _stat(value: Any, dim: int, name: str) -> np.ndarray:
  if isinstance(value, (str, pathlib.Path)):
    value = load_npy(value, f"{name} statistics file")
  array = np.asarray(value, np.float32)
  if array.shape != (dim,):
    raise InputError(f"{name} must have shape ({dim},) to match vae.nfeats, found {array.shape}")
  return array


def _stack_sizes(encoder: Mapping[str, Any]) -> dict[str, int]:
  """`num_layers` and `ff_size` of a skip stack, read from its parameters."""
  half = sum(1 for k in encoder if k.startswith("input_blocks_"))
  return dict(num_layers=2 * half + 1,
              ff_size=int(np.shape(encoder["middle_block"]["linear1"]["kernel"])[1]))


def _vae_sizes(params: Mapping[str, Any]) -> dict[str, int]:
  nfeats, width = np.shape(params["skel_embedding"]["kernel"])
  return dict(nfeats=int(nfeats), latent_dim=int(width), **_stack_sizes(params["encoder"]),
              max_len=int(np.shape(params["query_pos_encoder"]["pe"])[0]))


def _denoiser_sizes(params: Mapping[str, Any]) -> dict[str, int]:
  text_dim, width = np.shape(params["emb_proj"]["kernel"])
  return dict(text_dim=int(text_dim), latent_dim=int(width), **_stack_sizes(params["encoder"]),
              time_channels=int(np.shape(params["time_embedding"]["linear_1"]["kernel"])[0]),
              max_len=int(np.shape(params["query_pos"]["pe"])[0]))
