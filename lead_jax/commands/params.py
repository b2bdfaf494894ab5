"""Print parameter counts per module of a config, computed with `jax.eval_shape` (nothing is
initialised).

Prints `<module> <count>` for each model section present (vae, denoiser, projector), then
`text_encoder <count>` (frozen; only for stages with a denoiser or projector, and only when
`lead_jax.text` can describe that encoder: CLIP ViT-L/14 is 123,650,304), then `total`.

Example:
  lead-jax params --config=configs/projector_humanml3d.py --config.projector.arch=skip
"""

from __future__ import annotations

import argparse
import importlib

from lead_jax.config_loader import add_override_arguments, load_config
from lead_jax.models import abstract_params, build_models, count_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", required=True,
                      help="config file with get_config() (optionally path:arg); override fields "
                           "with --config.section.field=value")
  add_override_arguments(parser)


def _text_encoder_count(config) -> int | None:
  """Parameter count of the configured (frozen) text encoder, when `lead_jax.text` describes it.

  'clip': the CLIP ViT-L/14 text tower (`lead_jax.text.clip.abstract_params`); other kinds are
  counted when their module offers `abstract_params()` with default sizes. None otherwise.
  """
  if "text_encoder" not in config or not ({"denoiser", "projector"} & set(config.keys())):
    return None  # a VAE-only stage uses no text encoder
  kind = config.text_encoder.kind
  try:
    module = importlib.import_module(f"lead_jax.text.{kind}")
  except ImportError:
    return None
  if kind == "clip" and hasattr(module, "CLIPTextConfig"):
    return count_params(module.abstract_params(module.CLIPTextConfig(projection_dim=config.text_encoder.dim)))
  fn = getattr(module, "abstract_params", None)
  try:
    return count_params(fn()) if fn is not None else None
  except TypeError:  # needs a config we cannot build from the stage config
    return None


def count_config_params(config) -> dict[str, int]:
  """`{module: count}` for the model sections present in `config` (plus text_encoder if known)."""
  counts = {name: count_params(abstract_params(name, module))
            for name, module in build_models(config).items()}
  text = _text_encoder_count(config)
  if text is not None:
    counts["text_encoder"] = text
  return counts


def run(args: argparse.Namespace) -> int:
  config = load_config(args.config, args.config_overrides)
  counts = count_config_params(config)
  for name, count in counts.items():
    print(f"{name} {count}")
  print(f"total {sum(counts.values())}")
  return 0
