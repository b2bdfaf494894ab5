"""Text-to-motion generation: the trained stages, frozen, and two jitted programs (text, motion).

  pipe = Pipeline.from_workdir("runs/projector")          # LEAD (projector's workdir)
  pipe = Pipeline.from_workdir("runs/denoiser")           # MLD mode (no projector)
  pipe = Pipeline.from_workdir("runs/lcm")                # MotionLCM (scheduler "lcm", 1-4 steps)
  pipe = Pipeline.from_workdir("runs/projector", denoiser_workdir="runs/lcm")   # LEAD-MotionLCM
  pipe = Pipeline.from_mld_checkpoint("mld.ckpt", "deps/clip-vit-large-patch14",
                                      "data/Mean.npy", "data/Std.npy")
  out = pipe.generate(["a person walks forward."], [120], jax.random.key(0))
  out["features"]  # [N, Tmax, 263] de-normalised, zero past each length
  out["joints"]    # [N, Tmax, 22, 3]
  out = pipe.generate(["a person <dance-x>"], [120], key, concepts=[load_concept("d.npz")])
  emb = pipe.encode_prompts(texts)                         # [P, E], the text program alone
  out = pipe.generate(texts, lengths, key, prompt_embeddings=emb)   # skips the text encoder

`generate` runs two jitted programs over explicit arguments (frozen parameters and placeholder-token
rows included, never closed over); the conditioning stays on the device between them:

  `Pipeline.text_program`: token embeddings (`embed_tokens`; concept rows enter here as data)
    -> text encoder on the packed prompts     pooled [P, E], gathered per motion [N, E]
  `Pipeline.motion_program`: `synthesis.synthesize`
                                               guided sampler (one lax.scan) with the unconditional
                                               embedding CLIP("") (computed once per pipeline),
                                               projector round trip (LEAD), packed VAE decode
                                               (its first self-attention block read from
                                               `first_block`, computed once per pipeline), joints

Two programs, not one, so the prompts' packed layouts and the motions' compile side by side
(their counts add) instead of one program per combination (their counts multiply): a random
evaluation batch has a few of each.

Sequences are packed (`lead_jax.models.packing`): the prompts' real tokens side by side in rows,
the motions' real frames in rows of the frame bucket, so neither the text encoder nor the VAE
computes padding; their layers run on the compact tokens (the real slots), attention in the
rows. Shapes are bucketed (`prompts`): motions and prompts to powers of two, tokens per row to 64
(or a multiple of 8 covering the longest prompt), frames per row to a power of two >= 16 (a
multiple of 32 above 64) covering the longest requested length (at most `max_frames`, the stage's
`data.max_len`), the row counts to multiples of P/4 and N/8, and the compact token counts to 4
significant bits. Each motion's noise comes from `fold_in(fold_in(key, prompt_id), sample)`
(`diffusion.motion_keys`), so a motion does not depend on the rest of the batch, the padding or
`num_samples`.

Input rules: prompts are non-empty strings (`InputError` otherwise); lengths are integers in
[1, max_frames]; prompts longer than the text encoder's context (77 CLIP tokens) are truncated as
MLD does (first L-2 word pieces + end token) and flagged in `out["truncated"]`. `min_frames` is the
shortest clip the stages trained on (`data.min_len`; shorter lengths work but are untested).

Output rule: `out["finite"] [N]` says which motions are finite (features and joints); extreme
settings (a guidance scale of 1e38) give NaN motions, which `lead_jax.io.generated` does not write.

Provenance: `from_workdir` compares what each stage recorded at training time (dataset statistics,
the VAE's step and fingerprint; `lead_jax.workdir.check_provenance`) with what it loads: another
step of the same VAE run warns, other Mean/Std or another VAE raise `DependencyChangedError` unless
`allow_changed_dependencies=True`.

Precision: `matmul_dtype='float32'` (default) keeps MLD's numerics; `'bfloat16'` runs the VAE,
denoiser and projector matmuls in bfloat16 with float32 accumulation (`lead_jax.models.precision`).

The frozen pieces are public (`vae`, `denoiser`, `projector`, `text_encoder`, `compute_params`,
`mean`, `std`, `scheduler_state`): motion textual inversion (`lead_jax.train.inversion`) trains
against them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lead_jax import workdir as stage_io
from lead_jax.convert import mld_ckpt
from lead_jax.diffusion import SAMPLERS, SchedulerState, make_scheduler, motion_keys
from lead_jax.errors import ConfigError, InputError, WeightsError
from lead_jax.generate import prompts, synthesis
from lead_jax.io.arrays import load_npy
from lead_jax.models import (LatentDenoiser, MotionVAE, Projector, build_denoiser, build_vae,
                             packing, precision)
from lead_jax.models.motion_vae import first_block_table
from lead_jax.motion.features import features_dim
from lead_jax.text import load_text_encoder
from lead_jax.text.base import PackedTokens, TextEncoder
from lead_jax.text.concepts import Concept, as_extra_tokens

DEFAULT_MAX_FRAMES = 196
# The noise schedule of MLD (configs' `scheduler` section), for pipelines built from raw weights.
MLD_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                "beta_schedule": "scaled_linear"}
DEFAULT_STEPS = {"ddim": 50, "ddpm": 50, "lcm": 1}


class Pipeline:
  """Frozen VAE + denoiser (+ projector) + text encoder + dataset statistics, ready to generate."""

  def __init__(self, *, vae: MotionVAE, denoiser: LatentDenoiser, projector: Projector | None,
               params: Mapping[str, Any], text_encoder: TextEncoder, mean: Any, std: Any,
               max_frames: int | None = None, schedule: Mapping[str, Any] | None = None,
               source: str = "", matmul_dtype: str = "float32"):
    """See `from_workdir` / `from_mld_checkpoint`. `params` has `vae`, `denoiser` (+`projector`);
    `schedule` is the denoiser's noise schedule (a config `scheduler` section; MLD's by default).

    `matmul_dtype`: 'float32' (MLD's numerics) or 'bfloat16' (the VAE, denoiser and projector run
    bfloat16 matmuls with float32 accumulation, everything else float32). The text encoder always
    runs float32.
    """
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
    self.min_frames = 1  # the shortest training clip, when known (`from_workdir`: data.min_len)
    self.schedule = dict(schedule or MLD_SCHEDULE)
    self.source = source
    self.matmul_dtype = precision.check_matmul_dtype(matmul_dtype)
    self._cast: tuple[Any, Any] | None = None
    self._uncond: np.ndarray | None = None
    self._first_block: tuple[Any, jax.Array] | None = None
    self._schedulers: dict[tuple[str, int], SchedulerState] = {}
    self.text_program = jax.jit(self._text_program,  # the text encoder runs float32
                                compiler_options=precision.compiler_options("float32"))
    self.motion_program = jax.jit(self._motion_program, static_argnames=("use_projector",),
                                  compiler_options=precision.compiler_options(self.matmul_dtype))

  # ---- construction ------------------------------------------------------------------------------
  @classmethod
  def from_workdir(cls, workdir: str | os.PathLike, *, denoiser_workdir: str | None = None,
                   vae_workdir: str | None = None, text_encoder: TextEncoder | None = None,
                   text_encoder_path: str | None = None, data_dir: str | None = None,
                   mean: Any = None, std: Any = None, params_item: str | None = None,
                   checkpoint: int | str | None = None, max_frames: int | None = None,
                   matmul_dtype: str = "float32",
                   allow_changed_dependencies: bool = False) -> "Pipeline":
    """Loads the projector's workdir (LEAD) or the denoiser's (MLD mode; an LCM stage's workdir:
    MotionLCM) and the stages it names.

    Each stage's latest checkpoint gives its config and weights (`lead_jax.workdir.load_stage`:
    `ema_params` when saved, else `params`; `params_item` overrides that rule). The projector's
    config names `dependencies.denoiser_workdir` and `vae_workdir` (a denoiser's config names
    `vae_workdir`); keyword arguments override them: `denoiser_workdir` may name an LCM stage
    (LEAD-MotionLCM: the projector trained on the same VAE is reused unchanged). The text encoder
    is the denoiser config's `text_encoder.kind` at `dependencies.text_encoder_path`; Mean/Std
    come from `data.dir` (or
    `data_dir`, or arrays/paths `mean`, `std`). Raises `MissingFileError` / `WeightsError` /
    `ConfigError` naming the workdir. `checkpoint` ('latest', 'best' or a step) picks the
    checkpoint of `workdir`; the stages it names are loaded at its config's
    `dependencies.checkpoint`. Raises `DependencyChangedError` when a stage was trained with
    other statistics or another VAE than those loaded (unless `allow_changed_dependencies`).
    """
    workdir = str(workdir)
    top = stage_io.load_stage(workdir, item=params_item, step=checkpoint)
    deps_step = top.config.dependencies.checkpoint
    if top.kind == "projector":
      stages = {"projector": top}
      den_dir = denoiser_workdir or top.config.dependencies.denoiser_workdir
      if not den_dir:
        raise ConfigError(f"{workdir}: the projector's config has an empty "
                          "dependencies.denoiser_workdir; pass the denoiser's workdir "
                          "(denoiser_workdir=..., CLI --denoiser-workdir)")
      stages["denoiser"] = stage_io.load_stage(den_dir, "denoiser", item=params_item,
                                               step=deps_step)
    elif stage_io.is_kind(top.kind, "denoiser"):
      stages = {"denoiser": top}  # an MLD denoiser or a consistency-distilled one (LCM)
    else:
      raise ConfigError(f"{workdir}: a {top.kind} stage; give the workdir of the projector stage "
                        "(LEAD), of the denoiser stage (MLD mode) or of an LCM stage (MotionLCM)")
    den = stages["denoiser"]
    vae_dir = (vae_workdir or top.config.dependencies.vae_workdir
               or den.config.dependencies.vae_workdir)
    if not vae_dir:
      raise ConfigError(f"{den.workdir}: dependencies.vae_workdir is empty; pass vae_workdir=... "
                        "(CLI --vae-workdir)")
    stages["vae"] = stage_io.load_stage(vae_dir, "vae", item=params_item, step=deps_step)
    if text_encoder is None:
      path = text_encoder_path or den.config.dependencies.text_encoder_path or None
      text_encoder = load_text_encoder(den.config.text_encoder.kind, path)
    if mean is None or std is None:
      stats_source = (data_dir or den.config.data.dir
                      or f"the embedded {den.config.data.builder} dataset")
      mean, std = stage_io.dataset_stats(den.config, data_dir, stages["vae"].module.nfeats)
    else:
      stats_source = "the Mean/Std given"
    pipe = cls(vae=stages["vae"].module, denoiser=den.module,
               projector=stages["projector"].module if "projector" in stages else None,
               params={name: stage.params for name, stage in stages.items()},
               text_encoder=text_encoder, mean=mean, std=std,
               max_frames=max_frames or den.config.data.max_len,
               schedule=den.config.scheduler, source=workdir, matmul_dtype=matmul_dtype)
    pipe.min_frames = int(den.config.data.min_len)
    if any(stage.provenance for stage in stages.values()):
      stats = stage_io.stats_record(pipe.mean, pipe.std, stats_source)
      for stage in stages.values():  # each against the other stages loaded with it
        wanted = (stage.provenance or {}).get("dependencies") or {}
        others = {name: stage_io.stage_record(other) for name, other in stages.items()
                  if other is not stage and name in wanted}
        stage_io.check_provenance(f"the {stage.kind} stage {stage.workdir}", stage.provenance,
                                  {"stats": stats, "dependencies": others},
                                  allow_changed_dependencies)
    return pipe

  @classmethod
  def from_mld_checkpoint(cls, ckpt: str | os.PathLike, clip_dir: str | os.PathLike | None,
                          mean: Any, std: Any, *, text_encoder: TextEncoder | None = None,
                          num_heads: int = 4, max_frames: int | None = None,
                          matmul_dtype: str = "float32") -> "Pipeline":
    """MLD's published `.ckpt` (VAE + denoiser) with CLIP from `clip_dir`; no projector.

    Module sizes are read from the checkpoint (`convert.mld_ckpt.infer_sections`); `num_heads` is
    MLD's 4. `mean`, `std`: arrays or `.npy` paths.
    """
    sections, (vae_params, den_params) = mld_ckpt.read_mld_checkpoint(ckpt, num_heads=num_heads)
    if den_params is None:
      raise WeightsError(f"{ckpt}: the checkpoint holds a VAE only (no denoiser.* keys)")
    if text_encoder is None:
      text_encoder = load_text_encoder("clip", clip_dir)
    return cls(vae=build_vae(sections["vae"]), denoiser=build_denoiser(sections["denoiser"]),
               projector=None, params={"vae": vae_params, "denoiser": den_params},
               text_encoder=text_encoder, mean=mean, std=std, max_frames=max_frames,
               source=str(ckpt), matmul_dtype=matmul_dtype)

  # ---- the frozen pieces -------------------------------------------------------------------------
  @property
  def has_projector(self) -> bool:
    return self.projector is not None

  @property
  def is_consistency_model(self) -> bool:
    """Whether the denoiser is a consistency-distilled student (MotionLCM): LCM sampling only."""
    return synthesis.is_consistency_model(self.denoiser)

  @property
  def compute_params(self) -> Mapping[str, Any]:
    """`params` with the matmul kernels in `matmul_dtype` (cast once, redone if `params` is replaced)."""
    if self._cast is None or self._cast[0] is not self.params:
      self._cast = (self.params, precision.cast_matmul_weights(self.params, self.matmul_dtype))
    return self._cast[1]

  @property
  def first_block(self) -> jax.Array:
    """`[max_frames, max_frames, d]` the VAE decoder's first self-attention block per (motion
    length, frame) (`motion_vae.first_block_table` of `compute_params`): it sees position
    queries only, so the motion program reads it instead of computing it. Computed once (redone
    if `params` is replaced)."""
    vae_params = self.compute_params["vae"]
    if self._first_block is None or self._first_block[0] is not vae_params:
      table = jax.jit(first_block_table, static_argnums=(0, 2))(self.vae, vae_params,
                                                                 self.max_frames)
      self._first_block = (vae_params, table)
    return self._first_block[1]

  @property
  def uncond_embedding(self) -> np.ndarray:
    """`[E]` the empty prompt's pooled embedding (classifier-free guidance), computed once."""
    if self._uncond is None:
      self._uncond = self.text_encoder.encode([""])[0]
    return self._uncond

  def scheduler_state(self, kind: str = "ddim", steps: int | None = None) -> SchedulerState:
    """The sampler's schedule: the denoiser's noise schedule with `kind`'s inference timesteps."""
    if kind not in SAMPLERS:
      raise InputError(f"scheduler must be one of {SAMPLERS}, found {kind!r}")
    if (kind == "lcm") != self.is_consistency_model:
      raise ConfigError(
          f"scheduler {kind!r} with {'a consistency-distilled (MotionLCM)' if self.is_consistency_model else 'an MLD'} "
          f"denoiser: " + ("use --scheduler lcm (1, 2 or 4 steps)" if self.is_consistency_model
                           else "the LCM scheduler needs a consistency-distilled denoiser "
                                "(`lead-jax train` of an LCM config, or `lead-jax import motionlcm`)"))
    steps = DEFAULT_STEPS[kind] if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
      return make_scheduler(self.schedule, kind, steps)  # raises the InputError
    if (kind, int(steps)) not in self._schedulers:  # tables built once per (kind, steps)
      self._schedulers[kind, int(steps)] = make_scheduler(self.schedule, kind, int(steps))
    return self._schedulers[kind, int(steps)]

  def default_scheduler(self) -> str:
    return "lcm" if self.is_consistency_model else "ddim"

  # ---- generation --------------------------------------------------------------------------------
  def _text_program(self, text_params: Any, extra_rows: jax.Array, tokens: PackedTokens,
                    prompt_index: jax.Array) -> jax.Array:
    """The jitted text program: the P prompts packed in rows `[R_text, L]` (`text_params`, the
    encoder's parameters; `extra_rows [K, D]`, placeholder rows) -> float32 conditioning `[N, E]`
    of the N motions (`prompt_index [N]`, each motion's prompt)."""
    pooled = self.text_encoder.encode_packed_ids(text_params, tokens, extra_rows)
    return pooled.astype(jnp.float32)[prompt_index]

  def _motion_program(self, params: Mapping[str, Any], cond_emb: jax.Array, uncond_emb: jax.Array,
                      motions: packing.Packing, key: jax.Array, motion_ids: jax.Array,
                      guidance_scale: jax.Array, state: SchedulerState, mean: jax.Array,
                      std: jax.Array, first_block: jax.Array, *,
                      use_projector: bool) -> tuple[jax.Array, jax.Array]:
    """The jitted motion program.

    Args:
      params: {'vae', 'denoiser', 'projector'?} parameter trees (`compute_params`).
      cond_emb: `[N, E]` each motion's prompt embedding (`text_program`). uncond_emb: `[E]` CLIP("").
      motions: the N motions' frames packed in rows `[R, frames]` (`prompts.pack_motions`).
      key, motion_ids: the call's key and `[2, N]` (prompt id, sample) of each motion: its noise
        stream is `diffusion.motion_keys(key, *motion_ids)`, derived inside the program.
      guidance_scale: scalar. state: scheduler. mean, std: `[D]`.
      first_block: the decoder's first self-attention block per (length, frame) (`first_block`).
    Returns:
      features `[N, frames, D]` de-normalised and joints `[N, frames, J, 3]`, both zero past each
      motion's length.
    """
    return synthesis.synthesize(self.vae, self.denoiser, self.projector if use_projector else None,
                                params, cond_emb, uncond_emb, motions,
                                motion_keys(key, motion_ids[0], motion_ids[1]),
                                guidance_scale, state, mean, std, motions.segment_ids.shape[1],
                                self.joints_num, first_block)

  def generate(self, texts: Sequence[str], lengths: int | Sequence[int], key: jax.Array,
               guidance_scale: float = 7.5, steps: int | None = None,
               use_projector: bool | None = None, scheduler: str | None = None,
               num_samples: int = 1, prompt_ids: Sequence[int] | None = None,
               concepts: Sequence[Concept] = (),
               prompt_embeddings: Any = None) -> dict[str, Any]:
    """Motions for `texts` (each `num_samples` times) of the given `lengths` (frames).

    Args:
      texts: P prompts. lengths: one int for all, or P ints in [1, max_frames].
      key: PRNG key. guidance_scale: s of classifier-free guidance (a consistency model takes
        w = s - 1 as an input instead).
      steps: sampler steps (default 50 for ddim/ddpm, 1 for lcm).
      scheduler: "ddim" (MLD), "ddpm" or "lcm" (consistency models); default by the denoiser.
      use_projector: LEAD's D_proj(E_proj(z0)) before decoding; None = when the pipeline has one.
      num_samples: motions per prompt.
      prompt_ids: P non-negative ints folded into the key instead of the prompts' positions (so a
        caller batching a long prompt list gets the same motions as one big call).
      concepts: learnt tokens (`lead_jax.text.concepts.Concept`) the prompts may use.
      prompt_embeddings: `[P, E]` the prompts' conditioning embeddings (`encode_prompts`, with the
        concepts there): the text program is skipped (`texts` still name the motions; their
        `truncated` flags are counted without concepts).
    Returns:
      dict with `features [N, Tmax, D]` (de-normalised), `joints [N, Tmax, J, 3]` (NumPy, zero past
      each length; Tmax = max(lengths)), `mask [N, Tmax]`, `lengths [N]`, `texts` (N strings),
      `prompt_index [N]`, `sample_index [N]`, `truncated [P]` and `projector` (bool); N = P x
      num_samples ordered prompt-major.
    """
    texts = prompts.check_texts(texts)
    lengths = self.check_lengths(lengths, len(texts))
    num_samples = prompts.check_positive("num_samples", num_samples)
    guidance_scale = prompts.check_finite("guidance_scale", guidance_scale)
    if use_projector is None:
      use_projector = self.has_projector
    if use_projector and not self.has_projector:
      raise ConfigError(f"{self.source or 'this pipeline'} has no projector (MLD mode): generate "
                        "with use_projector=False (CLI --no-projector)")
    state = self.scheduler_state(scheduler or self.default_scheduler(), steps)
    if prompt_embeddings is not None and len(concepts):
      raise InputError("generate: concepts with prompt_embeddings; the concepts belong to "
                       "encode_prompts(texts, concepts), which computes the embeddings")
    extra = as_extra_tokens(list(concepts), self.text_encoder)

    count = len(texts) * num_samples
    ids = np.arange(len(texts)) if prompt_ids is None else np.asarray(prompt_ids, np.int64)
    if ids.shape != (len(texts),) or (ids < 0).any():
      raise InputError(f"prompt_ids must be {len(texts)} non-negative integers, found {prompt_ids!r}")
    prompt_pos = np.repeat(np.arange(len(texts)), num_samples)
    sample_idx = np.tile(np.arange(num_samples), len(texts))
    pad = prompts.next_pow2(count) - count
    prompt_index = _padded_index(prompt_pos)
    frame_counts = np.concatenate([np.repeat(lengths, num_samples), np.zeros(pad, np.int64)])
    motions = prompts.pack_motions(frame_counts, self.max_frames)
    motion_ids = np.stack([np.concatenate([ids[prompt_pos], np.zeros(pad, np.int64)]),
                           np.concatenate([sample_idx, np.arange(pad) + num_samples])])
    # Host arrays go to the program as NumPy (one transfer each, no eager dispatch); the outputs
    # come back whole and are cut on the host (slicing a device array would compile per shape).
    if prompt_embeddings is None:
      cond_emb, truncated = self._encode(texts, extra, prompt_index)
    else:
      cond_emb = self._check_prompt_embeddings(prompt_embeddings, len(texts))[prompt_index]
      truncated = self.text_encoder.truncated(texts)
    features, joints = self.motion_program(
        self.compute_params, cond_emb, self.uncond_embedding, motions, key,
        motion_ids.astype(np.uint32), np.float32(guidance_scale), state, self.mean, self.std,
        self.first_block, use_projector=bool(use_projector))
    t_max = int(lengths.max())
    out_lengths = frame_counts[:count].astype(np.int64)
    features, joints = np.asarray(features[:count, :t_max]), np.asarray(joints[:count, :t_max])
    return {
        "features": features,
        "joints": joints,
        "finite": np.isfinite(features).all(axis=(1, 2)) & np.isfinite(joints).all(axis=(1, 2, 3)),
        "mask": np.arange(t_max)[None] < out_lengths[:, None],
        "lengths": out_lengths,
        "texts": [texts[p] for p in prompt_pos],
        "prompt_index": prompt_pos,
        "sample_index": sample_idx,
        "truncated": truncated,
        "projector": bool(use_projector),
    }

  def encode_prompts(self, texts: Sequence[str], concepts: Sequence[Concept] = ()) -> np.ndarray:
    """`[P, E]` float32: the prompts' conditioning embeddings, from the text program alone (the
    program and packed shapes `generate` uses for P prompts). `generate(texts, ...,
    prompt_embeddings=...)` then skips the text encoder: a caller generating from the same prompts
    many times (evaluation replications, `lead_jax.evaluation.protocol.PromptEmbeddings`) encodes
    each once."""
    texts = prompts.check_texts(texts)
    extra = as_extra_tokens(list(concepts), self.text_encoder)
    pooled, _ = self._encode(texts, extra, _padded_index(np.arange(len(texts))))
    return np.asarray(pooled)[:len(texts)]

  def _encode(self, texts: list[str], extra: Any, prompt_index: np.ndarray
              ) -> tuple[jax.Array, np.ndarray]:
    """The text program on `texts` packed: (`[N, E]` pooled embedding of each motion's prompt,
    `prompt_index [N]`; `[P]` truncation flags)."""
    tokens, truncated = prompts.pack_prompts(self.text_encoder, texts, extra)
    pooled = self.text_program(self.text_encoder.params, np.asarray(extra.embeddings, np.float32),
                               tokens, prompt_index)
    return pooled, truncated

  def _check_prompt_embeddings(self, embeddings: Any, count: int) -> np.ndarray:
    """`embeddings` as float32 `[count, E]` (E: the text encoder's), else an `InputError`."""
    table = np.asarray(embeddings)
    expected = (count, int(self.text_encoder.embed_dim))
    if table.shape != expected or not np.issubdtype(table.dtype, np.floating):
      raise InputError(f"prompt_embeddings must be a float array of shape {list(expected)} (one "
                       f"{self.text_encoder.name} embedding per prompt, `encode_prompts`), found "
                       f"{table.dtype} {list(table.shape)}")
    if not np.isfinite(table).all():
      rows = np.flatnonzero(~np.isfinite(table).all(axis=1))
      raise InputError(f"prompt_embeddings rows {rows[:10].tolist()} are not finite")
    return table.astype(np.float32)

  def num_compiled(self) -> int:
    """How many programs generation has compiled: text programs (one per packed prompt layout
    shape) plus motion programs (one per packed motion shape, step count and projector use)."""
    return int(self.text_program._cache_size()  # pylint: disable=protected-access
               + self.motion_program._cache_size())  # pylint: disable=protected-access

  def check_lengths(self, lengths: int | Sequence[int], count: int) -> np.ndarray:
    """`[P]` frame counts, each in [1, max_frames] (`InputError` otherwise)."""
    return prompts.check_lengths(lengths, count, self.max_frames)


def _padded_index(positions: np.ndarray) -> np.ndarray:
  """`positions [N]` padded with zeros to a power-of-two length (the bucketed motion batch), int32."""
  pad = prompts.next_pow2(len(positions)) - len(positions)
  return np.concatenate([np.asarray(positions, np.int64), np.zeros(pad, np.int64)]).astype(np.int32)


def _stat(value: Any, dim: int, name: str) -> np.ndarray:
  if isinstance(value, (str, os.PathLike)):
    value = load_npy(value, f"{name} statistics file")
  array = np.asarray(value, np.float32)
  if array.shape != (dim,):
    raise InputError(f"{name} must have shape ({dim},) to match vae.nfeats, found {array.shape}")
  return array
