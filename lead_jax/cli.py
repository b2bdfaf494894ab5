"""The `lead-jax` command line: thin parsing over the library.

Each subcommand lives in `lead_jax/commands/<module>.py` and exposes `add_arguments(parser)` and
`run(args) -> int`. Modules are imported lazily so `lead-jax --help` stays fast and a command's
heavy dependencies (TensorFlow, torch) load only when that command runs.

Examples:
  lead-jax import deepmimic --out data/deepmimic
  lead-jax import bvh ../shared/data/bandai/dataset-2/data/*.bvh --map bandai --out data/bandai
  lead-jax render data/deepmimic/new_joints/humanoid3d_walk.npy --out walk.gif
  lead-jax export-bvh data/deepmimic/new_joint_vecs/humanoid3d_walk.npy --out walk.bvh
  lead-jax params --config=configs/vae_humanml3d.py
  lead-jax demo --out demo
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from lead_jax.errors import LeadJaxError, LeadJaxWarning

# name -> (module under lead_jax.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("import_motion", "import mocap (BVH, DeepMimic) into a HumanML3D-layout dataset"),
    "render": ("render", "render features or joints as a stick-figure animation or key-frame strip"),
    "export-bvh": ("export_bvh", "write features or joints as a BVH file on the SMPL 22-joint skeleton"),
    "params": ("params", "print parameter counts per module for a config"),
    "demo": ("demo", "run the embedded default job end to end"),
    "sample": ("sample", "generate motions from text prompts (LEAD, or MLD with --no-projector)"),
    "invert": ("invert", "learn a new token from example motions (motion textual inversion)"),
    "evaluate": ("evaluate", "T2M-protocol evaluation: Table 1 (or --mti Table 3) as Markdown + JSON"),
    "train": ("train", "train one stage (VAE, denoiser, projector) from a config, resuming"),
    "plot-latents": ("plot_latents", "t-SNE of VAE and projected latents by caption content (PNG)"),
    "study": ("study", "a reproducible study end to end (bandai: real mocap, every stage, resumable)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
  """The parser; only `command`'s module is imported (the others are listed by name and help)."""
  parser = argparse.ArgumentParser(
      prog="lead-jax", description=__doc__.split("\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  for name, (module_name, help_text) in COMMANDS.items():
    if name != command:
      sub.add_parser(name, help=help_text)
      continue
    module = importlib.import_module(f"lead_jax.commands.{module_name}")
    p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(p)
    p.set_defaults(_run=module.run)
  return parser


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  command = argv[0] if argv and argv[0] in COMMANDS else None
  parser = build_parser(command)
  args = parser.parse_args(argv)
  if command is None:
    parser.print_help()
    return 1
  plain = warnings.formatwarning

  def one_line(message, category, *rest, **kwargs):
    if issubclass(category, LeadJaxWarning):
      return f"lead-jax {command}: warning: {message}\n"
    return plain(message, category, *rest, **kwargs)

  warnings.formatwarning = one_line
  try:
    return int(args._run(args) or 0)
  except LeadJaxError as e:
    print(f"lead-jax {command}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"lead-jax {command}: interrupted", file=sys.stderr)
    return 130
  finally:
    warnings.formatwarning = plain


if __name__ == "__main__":
  sys.exit(main())
