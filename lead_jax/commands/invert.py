r"""Motion textual inversion: learn a new token (e.g. "<dance-x>") from example motions.

Usage:
  lead-jax invert --workdir runs/projector --motion dance.npy --token "<dance-x>" --init-word walk \
      --space lead --out dance-x.npz
  lead-jax invert --workdir runs/denoiser --motion a.npy b.npy --token "<limp>" --init-word walk \
      --space mld --steps 50 --lr 5e-3 --out limp.npz
  lead-jax sample --workdir runs/projector --concept dance-x.npz --prompt "a person <dance-x>" --out g

Motions are `.npy` features [T, 263] (de-normalised, as in new_joint_vecs/) or joints [T, 22, 3]
(converted with the HumanML3D feature extraction). `--space`: lead (projector space, needs the
projector's workdir), mld (epsilon MSE in the VAE latent space) or feat (decoded features).
Settings come from configs/inversion.py (or --config FILE); flags override them. The concept file
holds the token, its embedding, the text encoder it belongs to and the settings.

A run whose loss or learnt embedding becomes non-finite (e.g. --lr 1e30) writes nothing and exits
with status 2, naming the token, the first non-finite step and the learning rate.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from lead_jax.commands import pipeline_args
from lead_jax.errors import ConfigError, InputError, output_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True, help="projector (or denoiser) stage workdir")
  parser.add_argument("--motion", nargs="+", required=True, help="example motions (.npy)")
  parser.add_argument("--token", required=True, help='the new token, e.g. "<dance-x>"')
  parser.add_argument("--init-word", default=None, help="descriptor word initialising the token")
  parser.add_argument("--space", choices=("lead", "mld", "feat"), default=None)
  parser.add_argument("--out", required=True, help="concept file (.npz)")
  parser.add_argument("--config", default=None, help="inversion config (default configs/inversion.py)")
  parser.add_argument("--steps", type=int, default=None)
  parser.add_argument("--batch-size", type=int, default=None)
  parser.add_argument("--lr", type=float, default=None, help="Adam learning rate")
  parser.add_argument("--segment-frames", type=int, default=None)
  parser.add_argument("--seed", type=int, default=None)
  pipeline_args.add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
  from lead_jax.train import inversion  # pylint: disable=import-outside-toplevel
  settings = inversion.InversionSettings.from_config(
      pipeline_args.inversion_config(args.config), space=args.space, steps=args.steps, batch_size=args.batch_size,
      learning_rate=args.lr, segment_frames=args.segment_frames, seed=args.seed)
  from lead_jax.train.loop import NonFiniteLossError  # pylint: disable=import-outside-toplevel
  if not args.out.endswith(".npz"):
    raise ConfigError(f"--out must end in .npz, found {args.out}")
  if pathlib.Path(args.out).is_dir():
    raise InputError(f"--out {args.out} is a folder; give the concept file to write (.npz)")
  pipe = pipeline_args.load_pipeline(args)
  motions = []
  for path in args.motion:
    try:
      motions.append(inversion.load_motion_features(path, pipe.vae.nfeats))
    except InputError as e:  # the file is named in every message
      raise (e if str(e).startswith(path) else InputError(f"{path}: {e}")) from None
  result = inversion.invert(pipe, motions, args.token, args.init_word, settings, progress=True)
  problem = non_finite_problem(result, args.token, settings.learning_rate, args.out)
  if problem:
    raise NonFiniteLossError(problem)
  try:
    path = result.concept.save(args.out)
  except OSError as e:
    raise output_error(e, f"the concept file {args.out}") from None
  before, after = result.eval_losses
  print(f"wrote {path}: {args.token} ({settings.space} space, {settings.steps} steps); "
        f"fixed-batch loss {before:.4g} -> {after:.4g}; {result.seconds_per_step:.3f} s/step")
  return 0


def non_finite_problem(result, token: str, learning_rate: float, out: str) -> str | None:
  """What went wrong when the inversion's losses or learnt embedding are NaN/inf (the token, the
  first non-finite step, the learning rate), else None."""
  losses = np.asarray(result.losses, np.float64)
  bad = np.flatnonzero(~np.isfinite(losses))
  finite_embedding = bool(np.isfinite(result.concept.embedding).all())
  if not bad.size and finite_embedding and np.isfinite(result.eval_losses).all():
    return None
  before, after = (float(x) for x in result.eval_losses)
  where = (f"the training loss became non-finite at step {bad[0] + 1} of {losses.size} "
           f"({losses[bad[0]]})" if bad.size else
           "the learnt embedding is not finite" if not finite_embedding else
           "the fixed-batch loss is not finite")
  return (f"concept {token!r}: {where} with learning rate {learning_rate:g} (fixed-batch loss "
          f"{before:.4g} -> {after:.4g}); nothing written to {out}. Invert again with a lower --lr")
