"""Latents of the frozen VAE for the stages trained on them (denoiser, projector, LCM).

`config.latent_cache.crops_per_clip` (K) picks where the step's latents come from:
  K = 0   MLD's exact recipe: the streams carry freshly cropped `motion`/`mask` every step and the
          step encodes them through the frozen VAE (`encode_latents`).
  K > 0   the latent cache: K crops per clip, drawn with the same sampling rules
          (`lead_jax.data.latent_bank`), are encoded once in large jitted batches; the streams carry
          their posteriors `latent_mu`/`latent_logvar [B, L, d]` and the step samples
          z = mu + exp(logvar / 2) * eps (`sample_latents_from_batch`): no VAE in the step.
The API the latent stages call (the same for both):

  train_stream, eval_stream = latent_source(config, workdir, vae_stage, text_encoder)
  frozen_vae = vae_stage.params if not uses_cache(config) else None   # the step's VAE input
  z = batch_latents(vae_stage.module, frozen_vae, batch, key, "sample")   # in the loss: [B, L, d]

With the same key, a cached batch gives exactly the z the VAE would give for the same crop (the
posterior sample draws its eps from `split(key)[0]` either way), and the evaluation streams cut the
same crops, so an evaluation with the cache equals one without.

Config fields (`configs/train_common.py:latent_cache_config`):
  latent_cache.crops_per_clip   K (0 = re-encode a fresh crop every step, MLD)
  latent_cache.refresh_epochs   redraw and re-encode the crops every N epochs (0 = never)
  latent_cache.dir              folder of the stored banks ('' = WORKDIR/latent_cache); runs on the
                                same VAE and data (denoiser, projector, LCM) may share one
  latent_cache.encode_batch     crops per jitted encode call (rounded up to the local devices)
Storage: one `.npz` per shard and crop generation, `<dir>/train-s<shard>of<count>-<key>-g<gen>.npz`
(evaluation: `eval-<split>-s<shard>of<count>-<key>.npz`); `<key>` hashes the VAE checkpoint
(workdir, step, weight item, parameter fingerprint) and the dataset (builder, folder, split,
Mean/Std, the shard's clips and captions, sampling rules, seed, K), and the full key is stored in
the file and checked on load. A missing or mismatched bank is computed and written atomically;
older generations of it are removed. Each process encodes and stores its own shards on its own
devices (no collective). Resume is exact: the stream position is (epoch, step) and a bank is a
pure function of its key and generation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import sys
import time
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lead_jax import data
from lead_jax import workdir as stage_io
from lead_jax.config_loader import require_fields
from lead_jax.data import latent_bank
from lead_jax.data.sampling import Plan, gather_batch
from lead_jax.errors import ConfigError, InputError
from lead_jax.train import inputs

FIELDS = {"latent_cache": ("crops_per_clip", "refresh_epochs", "dir", "encode_batch"),
          "train": ("eval_every",)}
CACHE_SUBDIR = "latent_cache"
FORMAT = 1  # bumped when the bank file layout or the key changes


# ---- the step's latents --------------------------------------------------------------------------
def _check_latent(latent: str) -> None:
  if latent not in ("sample", "mean"):
    raise ConfigError(f"config.loss.latent={latent!r}; expected 'sample' or 'mean'")


def encode_latents(vae: nn.Module, vae_params, batch: Mapping[str, jax.Array], key: jax.Array,
                   latent: str, vae_dropout: bool = False) -> jax.Array:
  """Frozen VAE latents `[B, 1, d]` of `batch['motion'] [B, T, D]` (`batch['mask'] [B, T]`): the
  posterior sample (`latent='sample'`, MLD) or its mean ('mean'); dropout only with
  `vae_dropout`."""
  _check_latent(latent)
  sample_key, dropout_key = jax.random.split(key)
  z, mu, _ = vae.apply({"params": vae_params}, batch["motion"], batch["mask"],
                       sample_key if latent == "sample" else None, deterministic=not vae_dropout,
                       method=vae.encode, rngs={"dropout": dropout_key} if vae_dropout else None)
  return jax.lax.stop_gradient(z if latent == "sample" else mu)


def sample_latents_from_batch(batch: Mapping[str, jax.Array], key: jax.Array,
                              latent: str = "sample") -> jax.Array:
  """`[B, L, d]` latents of a cached batch: `mu + exp(logvar / 2) * eps` (eps from
  `split(key)[0]`, as `encode_latents` draws it) or `mu` (`latent='mean'`)."""
  _check_latent(latent)
  mu, logvar = batch["latent_mu"], batch["latent_logvar"]
  if latent == "mean":
    return jax.lax.stop_gradient(mu)
  sample_key, _ = jax.random.split(key)
  eps = jax.random.normal(sample_key, mu.shape, mu.dtype)
  return jax.lax.stop_gradient(mu + jax.numpy.exp(0.5 * logvar) * eps)


def batch_latents(vae: nn.Module, vae_params, batch: Mapping[str, jax.Array], key: jax.Array,
                  latent: str, vae_dropout: bool = False) -> jax.Array:
  """The step's latents `[B, L, d]` whichever source made `batch`: sampled from its cached
  posterior (`latent_mu` present) or encoded from its motion by the frozen VAE."""
  if "latent_mu" in batch:
    return sample_latents_from_batch(batch, key, latent)
  if vae_params is None:
    raise ConfigError("a motion batch needs the frozen VAE's params (latent_cache.crops_per_clip "
                      "is 0: the step encodes)")
  return encode_latents(vae, vae_params, batch, key, latent, vae_dropout)


# ---- options -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CacheOptions:
  crops_per_clip: int
  refresh_epochs: int
  dir: str
  encode_batch: int


def cache_options(config) -> CacheOptions:
  """The validated `config.latent_cache`."""
  require_fields(config, FIELDS, "lead_jax.train.latents")
  section = config.latent_cache
  opts = CacheOptions(int(section.crops_per_clip), int(section.refresh_epochs),
                      str(section.dir or ""), int(section.encode_batch))
  latent_bank.check_crops(opts.crops_per_clip, opts.refresh_epochs)
  if opts.encode_batch < 1:
    raise ConfigError(f"config.latent_cache.encode_batch must be >= 1, found {opts.encode_batch}")
  return opts


def uses_cache(config) -> bool:
  """Whether the stage's batches come from the latent cache (`crops_per_clip` > 0)."""
  return cache_options(config).crops_per_clip > 0


# ---- encoding ------------------------------------------------------------------------------------
class PosteriorEncoder:
  """`(mu, logvar) [M, L, d]` of a shard's crops through the frozen VAE (no dropout), in jitted
  batches of `batch_size` split over this process's devices (every process encodes alone)."""

  def __init__(self, vae: nn.Module, params: Any, batch_size: int,
               devices: list[jax.Device] | None = None):
    devices = list(devices or jax.local_devices())
    mesh = Mesh(np.array(devices), ("batch",))
    self.batch_size = -(-batch_size // len(devices)) * len(devices)
    self._rows = NamedSharding(mesh, P("batch"))
    self._params = jax.device_put(params, NamedSharding(mesh, P()))

    def posterior(p, motion, mask):
      _, mu, logvar = vae.apply({"params": p}, motion, mask, None, method=vae.encode)
      return mu, logvar
    self._posterior = jax.jit(posterior)

  def __call__(self, table: data.ClipTable, plan: Plan, max_len: int
               ) -> tuple[np.ndarray, np.ndarray]:
    mus, logvars = [], []
    for begin in range(0, len(plan), self.batch_size):
      rows = np.arange(begin, begin + self.batch_size)
      real = rows < len(plan)
      chunk = plan.take(np.where(real, rows, begin))  # the last call padded with its first crop
      batch = gather_batch(table, chunk, max_len)
      motion, mask = (jax.device_put(batch[k], self._rows) for k in ("motion", "mask"))
      mu, logvar = jax.device_get(self._posterior(self._params, motion, mask))
      mus.append(np.asarray(mu, np.float32)[real])
      logvars.append(np.asarray(logvar, np.float32)[real])
    if not mus:  # a shard without crops: empty [0, L, d]
      shape = jax.eval_shape(self._posterior, self._params,
                             jax.ShapeDtypeStruct((1, max_len, table.dim), np.float32),
                             jax.ShapeDtypeStruct((1, max_len), bool))[0].shape
      return (np.zeros((0,) + shape[1:], np.float32),) * 2
    return np.concatenate(mus), np.concatenate(logvars)


# ---- keys and storage ----------------------------------------------------------------------------
def params_fingerprint(params: Any) -> str:
  """SHA-256 (16 hex digits) of a parameter tree: every leaf's path, dtype, shape and bytes."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    a = np.ascontiguousarray(jax.device_get(leaf))
    h.update(f"{jax.tree_util.keystr(path)}:{a.dtype}:{a.shape};".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def table_fingerprint(table: data.ClipTable) -> str:
  """SHA-256 (16 hex digits) of a shard's clip ids, lengths, caption texts and segments."""
  h = hashlib.sha256()
  h.update("\n".join(table.ids).encode())
  h.update("\n".join(table.caption_texts).encode())
  for a in (table.lengths, table.caption_offsets, table.seg_begin, table.seg_end):
    h.update(np.ascontiguousarray(a, np.int64).tobytes())
  return h.hexdigest()[:16]


def _digest(key: Mapping[str, Any]) -> str:
  return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir(config, workdir: str) -> pathlib.Path:
  """`latent_cache.dir`, or WORKDIR/latent_cache when it is empty."""
  folder = cache_options(config).dir
  return pathlib.Path(os.path.abspath(os.path.expanduser(folder or
                                                         os.path.join(workdir, CACHE_SUBDIR))))


class BankStore:
  """Banks as `.npz` files in one folder: the crops, `mu`, `logvar` and the JSON key they were
  computed for (a bank is loaded only when its stored key equals the asked one)."""

  def __init__(self, directory: pathlib.Path):
    self.directory = directory

  def path(self, name: str) -> pathlib.Path:
    return self.directory / f"{name}.npz"

  def load(self, name: str, key: Mapping[str, Any]) -> latent_bank.LatentBank | None:
    path = self.path(name)
    if not path.is_file():
      return None
    try:
      with np.load(path) as f:
        if str(f["key"]) != json.dumps(key, sort_keys=True):
          return None
        plan = Plan(*(f[k] for k in ("clip", "caption", "start", "length")))
        return latent_bank.LatentBank(plan, f["mu"], f["logvar"])
    except (OSError, ValueError, KeyError) as e:
      raise InputError(f"latent cache {path} is unreadable ({type(e).__name__}: {e}); delete it "
                       "to recompute") from e

  def save(self, name: str, key: Mapping[str, Any], bank: latent_bank.LatentBank) -> None:
    self.directory.mkdir(parents=True, exist_ok=True)
    path = self.path(name)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    p = bank.plan
    np.savez(tmp, key=np.asarray(json.dumps(key, sort_keys=True)), clip=p.clip, caption=p.caption,
             start=p.start, length=p.length, mu=bank.mu, logvar=bank.logvar)
    os.replace(tmp, path)

  def remove_others(self, pattern: str, keep: str) -> None:
    """Deletes the banks matching glob `pattern` except `keep` (older crop generations)."""
    for path in self.directory.glob(f"{pattern}.npz"):
      if path.name != f"{keep}.npz":
        path.unlink(missing_ok=True)


@dataclasses.dataclass
class _Context:
  """What every bank of a run shares: its options, encoder, store and key."""
  opts: CacheOptions
  data_opts: data.DataOptions
  encoder: PosteriorEncoder
  store: BankStore
  base_key: dict[str, Any]

  def shard_key(self, shard: data.Shard, split: str) -> dict[str, Any]:
    return {**self.base_key, "split": split, "shard": shard.index, "shards": shard.count,
            "clips": table_fingerprint(shard.table),
            "crops_per_clip": self.opts.crops_per_clip}

  def bank(self, name: str, key: Mapping[str, Any], shard: data.Shard, plan: Plan,
           what: str) -> latent_bank.LatentBank:
    """The stored bank `name` when its key matches, else `plan` encoded now and stored."""
    found = self.store.load(name, key)
    if found is not None:
      return found
    start = time.perf_counter()
    mu, logvar = self.encoder(shard.table, plan, self.data_opts.sampling.max_len)
    bank = latent_bank.LatentBank(plan, mu, logvar)
    self.store.save(name, key, bank)
    print(f"latent cache: encoded {len(plan)} crops ({what}, shard {shard.index}/{shard.count}) "
          f"in {time.perf_counter() - start:.1f}s -> {self.store.path(name)}", file=sys.stderr)
    return bank


def _train_banks(ctx: _Context, shard: data.Shard, split: str
                 ) -> Callable[[int], latent_bank.LatentBank]:
  """`bank_of(generation)` of a training shard, keeping the last one in memory."""
  key = ctx.shard_key(shard, split)
  stem = f"train-s{shard.index}of{shard.count}-{_digest(key)}"
  held: dict[int, latent_bank.LatentBank] = {}

  def bank_of(gen: int) -> latent_bank.LatentBank:
    if gen not in held:
      held.clear()
      plan = latent_bank.bank_plan(shard.table, ctx.data_opts.sampling, ctx.data_opts.seed,
                                   shard.index, gen, ctx.opts.crops_per_clip)
      name = f"{stem}-g{gen}"
      held[gen] = ctx.bank(name, {**key, "generation": gen}, shard, plan,
                           f"{split}, generation {gen}")
      ctx.store.remove_others(f"{stem}-g*", name)
    return held[gen]
  return bank_of


def latent_source(config, workdir: str, vae_stage: stage_io.Stage, text_encoder: Any
                  ) -> tuple[data.TrainStream, data.EvalStream | None]:
  """(training stream, evaluation stream of `data.eval_split` or None when `train.eval_every` is
  0) of a latent stage: frame batches when `latent_cache.crops_per_clip` is 0, else cached
  posteriors of the frozen `vae_stage` (`lead_jax.workdir.load_dependency(config, 'vae')`).
  Both are process-local; see the module docstring for the fields and the storage."""
  opts = cache_options(config)
  with_eval = bool(config.train.eval_every)
  if not opts.crops_per_clip:
    return inputs.make_streams(config, text_encoder, with_eval=with_eval)
  if "vae_dropout" in config.loss and config.loss.vae_dropout:
    raise ConfigError("config.loss.vae_dropout=True needs a fresh VAE pass every step: set "
                      "config.latent_cache.crops_per_clip=0")
  data_opts = data.data_options(config)
  backend = inputs.stream_backend(config)
  mean, std = stage_io.dataset_stats(config)
  stats = hashlib.sha256(np.asarray(mean, np.float32).tobytes()
                         + np.asarray(std, np.float32).tobytes()).hexdigest()[:16]
  base_key = {"format": FORMAT,
              "vae": {"workdir": os.path.abspath(vae_stage.workdir), "step": int(vae_stage.step),
                      "item": vae_stage.item, "fingerprint": params_fingerprint(vae_stage.params)},
              "data": {"builder": data_opts.builder, "dir": os.path.abspath(data_opts.dir or ""),
                       "stats": stats, "sampling": dataclasses.asdict(data_opts.sampling),
                       "seed": data_opts.seed}}
  ctx = _Context(opts, data_opts, PosteriorEncoder(vae_stage.module, vae_stage.params,
                                                   opts.encode_batch),
                 BankStore(cache_dir(config, workdir)), base_key)

  train_set = data.load_shards(config, text_encoder, data_opts.split, backend=backend)
  steps = data.steps_per_epoch(train_set)
  sources = [latent_bank.latent_train_source(
      _train_banks(ctx, shard, data_opts.split), shard.table, shard.text_emb, data_opts.sampling,
      data_opts.seed, shard.index, opts.crops_per_clip, opts.refresh_epochs,
      train_set.shard_batch, steps)
      for shard in train_set.shards]
  train = data.TrainStream(sources, tables=[s.table for s in train_set.shards],
                           null_text_emb=train_set.shards[0].null_text_emb,
                           batch_size=train_set.batch_size, steps_per_epoch=steps)
  if not with_eval:
    return train, None

  eval_set = data.load_shards(config, text_encoder, data_opts.eval_split, backend=backend)
  num_batches = data.eval_batch_count(eval_set)
  banks = []
  for shard in eval_set.shards:
    plan, valid = latent_bank.eval_bank_plan(shard.table, data_opts.sampling, data_opts.eval_seed,
                                             eval_set.shard_batch, num_batches)
    key = {**ctx.shard_key(shard, data_opts.eval_split), "eval_seed": data_opts.eval_seed,
           "rows": len(valid)}
    name = f"eval-{data_opts.eval_split}-s{shard.index}of{shard.count}-{_digest(key)}"
    banks.append((shard, ctx.bank(name, key, shard, plan, data_opts.eval_split), valid))

  def make_iters():
    return [latent_bank.latent_eval_batches(bank, valid, shard.table, shard.text_emb,
                                            shard.null_text_emb, data_opts.sampling,
                                            data_opts.eval_seed, eval_set.shard_batch)
            for shard, bank, valid in banks]
  evaluation = data.EvalStream(make_iters, num_batches=num_batches,
                               num_examples=sum(int(np.sum(v)) for _, _, v in banks),
                               tables=[s.table for s in eval_set.shards])
  return train, evaluation
