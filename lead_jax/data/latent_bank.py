"""The data side of the latent cache: K crops per clip drawn once, and the epochs that visit them.

A `LatentBank` of a shard holds `crops_per_clip` = K crops of every sampleable clip
(`table.clip_ok`, table order), each drawn with the sampling rules of `sampling.choose_windows`
(caption, MLD's coin2 length, offset): row `i * K + k` is crop k of the i-th sampleable clip
(`bank_plan`). Beside each crop it holds the frozen VAE's posterior of it, `mu`, `logvar`
`[M, L, d]`, computed by `lead_jax.train.latents` (which also stores banks on disk). Crops are
redrawn every `refresh_epochs` epochs: epoch e uses generation `e // refresh_epochs` (0 = never).

Epoch e of shard s visits every sampleable clip once, in the order the frame stream of the same
(seed, s, e) visits them (`sampling.epoch_order`), and takes one of its K crops uniformly
(`epoch_bank_rows`). Batches (NumPy, `B` rows):
  latent_mu, latent_logvar [B, L, d] float32   the crop's posterior
  text_emb [B, E] float32, caption_index [B] int32, length [B] int32   the crop's caption, frames
Evaluation batches carry the crops of `streams.eval_layout` (the frame eval stream's), plus
`valid` and the string fields of `streams.eval_fields`; padding rows have zero posteriors.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np

from lead_jax.data.sampling import ClipTable, Plan, SamplingConfig, choose_windows, epoch_order
from lead_jax.data.sampling import epoch_rng
from lead_jax.data.streams import Batch, BatchSource, eval_fields, eval_layout
from lead_jax.errors import ConfigError

BANK_STREAM = 0x1A7E27  # separates the bank's draws from the epochs' (same seed and shard)


@dataclasses.dataclass(frozen=True)
class LatentBank:
  """Crops of a shard and their posteriors, row-aligned: `plan [M]`, `mu`, `logvar [M, L, d]`."""
  plan: Plan
  mu: np.ndarray
  logvar: np.ndarray

  def __post_init__(self):
    if self.mu.shape != self.logvar.shape or self.mu.shape[:1] != (len(self.plan),):
      raise ConfigError(f"latent bank: mu {self.mu.shape} and logvar {self.logvar.shape} must "
                        f"both be [{len(self.plan)}, L, d]")


def check_crops(crops_per_clip: int, refresh_epochs: int) -> None:
  if crops_per_clip < 0:
    raise ConfigError(f"config.latent_cache.crops_per_clip must be >= 0 (0 = re-encode every "
                      f"step), found {crops_per_clip}")
  if refresh_epochs < 0:
    raise ConfigError(f"config.latent_cache.refresh_epochs must be >= 0 (0 = never), found "
                      f"{refresh_epochs}")


def generation(epoch: int, refresh_epochs: int) -> int:
  """The crop generation epoch `epoch` uses (0 forever when `refresh_epochs` is 0)."""
  return epoch // refresh_epochs if refresh_epochs else 0


def bank_plan(table: ClipTable, cfg: SamplingConfig, seed: int, shard: int, generation_: int,
              crops_per_clip: int) -> Plan:
  """`crops_per_clip` crops of each sampleable clip (rows clip-major), a pure function of
  (seed, shard, generation)."""
  rng = np.random.default_rng([seed, shard, generation_, BANK_STREAM])
  clips = np.repeat(np.flatnonzero(table.clip_ok), crops_per_clip)
  return choose_windows(table, clips, cfg, rng)


def epoch_bank_rows(table: ClipTable, cfg: SamplingConfig, seed: int, shard: int, epoch: int,
                    crops_per_clip: int, batch_size: int, steps: int) -> np.ndarray:
  """`[steps * batch_size]` bank rows of epoch `epoch`: clips in the frame stream's order, one of
  their crops each (uniform)."""
  rng = epoch_rng(seed, shard, epoch)
  order = epoch_order(table, cfg, rng)
  position = np.searchsorted(np.flatnonzero(table.clip_ok), order)
  crop = rng.integers(crops_per_clip, size=len(order))
  if steps * batch_size > len(order):
    raise ConfigError(f"the shard has {len(order)} sampleable clips, fewer than {steps} batches "
                      f"of {batch_size}")
  return (position * crops_per_clip + crop)[:steps * batch_size]


def latent_batch(bank: LatentBank, rows: np.ndarray, text_emb: np.ndarray) -> Batch:
  """The batch of bank rows `rows` (fields in the module docstring)."""
  plan = bank.plan.take(rows)
  return {"latent_mu": bank.mu[rows], "latent_logvar": bank.logvar[rows],
          "text_emb": text_emb[plan.caption], "caption_index": plan.caption.astype(np.int32),
          "length": plan.length.astype(np.int32)}


def latent_train_source(bank_of: Callable[[int], LatentBank], table: ClipTable,
                        text_emb: np.ndarray, cfg: SamplingConfig, seed: int, shard: int,
                        crops_per_clip: int, refresh_epochs: int, batch_size: int,
                        steps: int) -> BatchSource:
  """A `streams.BatchSource` of cached-latent batches; `bank_of(generation)` gives the bank of a
  crop generation (`bank_plan` of it, with posteriors)."""
  def source(epoch: int, step: int) -> Iterator[Batch]:
    while True:
      bank = bank_of(generation(epoch, refresh_epochs))
      rows = epoch_bank_rows(table, cfg, seed, shard, epoch, crops_per_clip, batch_size, steps)
      for s in range(step, steps):
        yield latent_batch(bank, rows[s * batch_size:(s + 1) * batch_size], text_emb)
      epoch, step = epoch + 1, 0
  return source


def eval_bank_plan(table: ClipTable, cfg: SamplingConfig, seed: int, batch_size: int,
                   num_batches: int) -> tuple[Plan, np.ndarray]:
  """(the valid crops of the padded eval plan, `[num_batches * batch_size]` their validity): the
  crops the frame eval stream cuts (`streams.eval_layout`)."""
  plan, valid = eval_layout(table, cfg, seed, batch_size, num_batches)
  return plan.take(valid), valid


def latent_eval_batches(bank: LatentBank, valid: np.ndarray, table: ClipTable,
                        text_emb: np.ndarray, null_text_emb: np.ndarray, cfg: SamplingConfig,
                        seed: int, batch_size: int) -> Iterator[Batch]:
  """The eval pass over a bank of the valid eval crops (`eval_bank_plan`); padding rows zero."""
  plan, _ = eval_layout(table, cfg, seed, batch_size, len(valid) // batch_size)
  row_of = np.cumsum(valid) - 1  # padded position -> bank row (valid positions only)
  for b in range(len(valid) // batch_size):
    sl = slice(b * batch_size, (b + 1) * batch_size)
    v, rows = valid[sl], np.where(valid[sl], row_of[sl], 0)
    p = plan.take(sl)
    yield {"latent_mu": _valid_rows(bank.mu, rows, v),
           "latent_logvar": _valid_rows(bank.logvar, rows, v),
           "length": p.length.astype(np.int32),
           **eval_fields(table, p, v, text_emb, null_text_emb)}


def _valid_rows(values: np.ndarray, rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """`values[rows]` with invalid rows zero (`values` may be empty: a shard without eval clips)."""
  out = np.zeros((len(rows),) + values.shape[1:], np.float32)
  out[valid] = values[rows[valid]]
  return out
