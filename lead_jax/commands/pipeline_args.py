"""Command-line arguments of the commands that load a generation pipeline (`sample`, `invert`,
`evaluate`), the loader that reads them, and the inversion config they share. Importing this
module does not import JAX."""

from __future__ import annotations

import argparse
from typing import Any

# The keys of `lead_jax.models.precision.MATMUL_DTYPES` (kept literal so `--help` stays JAX-free).
MATMUL_DTYPES = ("float32", "bfloat16")


def add_matmul_dtype_argument(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--matmul-dtype", choices=MATMUL_DTYPES, default="float32",
                      help="precision of the VAE/denoiser/projector matmuls: float32 (MLD's "
                           "numerics) or bfloat16 with float32 accumulation (faster on AMX CPUs, "
                           "GPUs, TPUs; slower on AVX2-only CPUs)")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
  """Overrides of what the stage configs record, and the matmul precision."""
  parser.add_argument("--denoiser-workdir", default=None, help="override the config's")
  parser.add_argument("--vae-workdir", default=None, help="override the config's")
  parser.add_argument("--data-dir", default=None, help="folder with Mean.npy/Std.npy (override)")
  parser.add_argument("--text-encoder-path", default=None, help="text encoder directory (override)")
  parser.add_argument("--checkpoint", default=None,
                      help="checkpoint of --workdir: latest (default), best or a step number")
  parser.add_argument("--allow-dependency-change", action="store_true",
                      help="use the stages even when the VAE or the dataset statistics differ "
                           "from those they were trained with (warns instead of failing)")
  add_matmul_dtype_argument(parser)


def load_pipeline(args: argparse.Namespace, workdir: str | None = None,
                  denoiser_workdir: str | None = None, text_encoder: Any = None) -> Any:
  """`Pipeline.from_workdir(args.workdir, ...)` with the arguments of `add_pipeline_arguments`
  (`workdir` / `denoiser_workdir` override `--workdir` / `--denoiser-workdir`; `text_encoder`
  reuses a loaded one)."""
  from lead_jax.generate import Pipeline  # pylint: disable=import-outside-toplevel
  return Pipeline.from_workdir(workdir or args.workdir,
                               denoiser_workdir=denoiser_workdir or args.denoiser_workdir,
                               vae_workdir=args.vae_workdir, data_dir=args.data_dir,
                               text_encoder=text_encoder, text_encoder_path=args.text_encoder_path,
                               checkpoint=args.checkpoint, matmul_dtype=args.matmul_dtype,
                               allow_changed_dependencies=args.allow_dependency_change)


def inversion_config(path: str | None) -> Any:
  """The inversion config (`get_config()` of `path`, default configs/inversion.py)."""
  from lead_jax.config_loader import load_config, repo_config  # pylint: disable=import-outside-toplevel
  return load_config(str(path or repo_config("inversion.py")))
