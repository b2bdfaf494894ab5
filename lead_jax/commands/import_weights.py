r"""`lead-jax import mld|motionlcm|t2m-evaluator`: published PyTorch weights into directories every
command takes.

  lead-jax import mld 1222_mld_humanml3d_FID041.ckpt --out runs/mld --clip deps/clip-vit-large-patch14 \
      --data-dir datasets/HumanML3D
  lead-jax import mld mld.ckpt --out runs/mld --clip deps/clip --mean Mean.npy --std Std.npy
  lead-jax import motionlcm motionlcm_humanml.ckpt --out runs/motionlcm --text-encoder sentence-t5 \
      --data-dir datasets/HumanML3D
  lead-jax import t2m-evaluator deps/t2m/t2m/text_mot_match/model/finest.tar --glove deps/glove \
      --mean deps/t2m/t2m/Comp_v6_KLD01/meta/mean.npy --std deps/t2m/t2m/Comp_v6_KLD01/meta/std.npy \
      --out deps/t2m_evaluator

`import mld` writes OUT/vae and OUT/denoiser: stage workdirs like trained ones (step 0), whose
configs start from the repository's configs/{vae,denoiser}_{humanml3d,kit}.py with the model
sections read from the checkpoint's tensors (widths, layers, feed-forward sizes, text width,
position tables; 4 heads as MLD). Then, e.g.:
  lead-jax train --config=configs/projector_humanml3d.py --workdir=runs/lead \
      --config.data.dir=datasets/HumanML3D --config.dependencies.vae_workdir=runs/mld/vae \
      --config.dependencies.denoiser_workdir=runs/mld/denoiser \
      --config.dependencies.text_encoder_path=deps/clip-vit-large-patch14
  lead-jax sample --workdir runs/mld/denoiser --prompt "a person walks" --out gen
  lead-jax evaluate --workdir runs/lead --evaluator deps/t2m_evaluator --out eval/

`import motionlcm` writes OUT/vae and OUT/lcm the same way (configs/lcm_*.py: the denoiser with its
guidance embedding, `denoiser.cond_proj_dim` read from the tensors); sample it with
`--scheduler lcm --steps 1|2|4`, or reuse a projector trained on the same VAE
(`--denoiser-workdir runs/motionlcm/lcm`: LEAD-MotionLCM, the paper's Table 5).

A state dict cannot say whether its transformer layers were pre- or post-norm: MLD's released
configs (and our modules) are post-norm, so a checkpoint trained otherwise imports without an
error and generates nonsense. Checkpoints are read with `torch.load(weights_only=True)`; a
Lightning checkpoint that also pickles Python objects (MLD's releases do) is refused unless you
pass --allow-pickle: only for files you trust.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib

KINDS = ("mld", "motionlcm", "t2m-evaluator")
CHECKPOINT_HELP = {
    "mld": ("MLD's published .ckpt -> OUT/vae and OUT/denoiser workdirs", ("minilm",)),
    "motionlcm": ("MotionLCM's published .ckpt -> OUT/vae and OUT/lcm workdirs (its denoiser with "
                  "the guidance embedding: sample with --scheduler lcm --steps 1-4)",
                  ("minilm", "sentence-t5")),
}


def add_parsers(kinds) -> None:
  """The weight kinds of `lead-jax import` (added to its sub-parsers)."""
  for kind, (help_text, encoders) in CHECKPOINT_HELP.items():
    sub = kinds.add_parser(kind, help=help_text, description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("ckpt", help="the Lightning checkpoint (vae.* and denoiser.* keys)")
    sub.add_argument("--out", required=True, help="output folder (one workdir per stage)")
    text = sub.add_mutually_exclusive_group(required=True)
    text.add_argument("--clip", help="CLIP ViT-L/14 folder (Hugging Face layout): MLD's encoder")
    text.add_argument("--text-encoder", choices=encoders,
                      help="another text encoder the denoiser was trained with (sentence-t5: "
                           "MotionLCM V1's, recorded; generating then needs that encoder passed "
                           "to Pipeline.from_workdir(text_encoder=...))")
    sub.add_argument("--text-encoder-path", default="", help="its folder (MiniLM: default package)")
    stats = sub.add_mutually_exclusive_group(required=True)
    stats.add_argument("--data-dir", help="the dataset folder (Mean.npy, Std.npy, splits)")
    stats.add_argument("--mean", help="Mean.npy (then --std): statistics without the dataset")
    sub.add_argument("--std", help="Std.npy (with --mean)")
    sub.add_argument("--num-heads", type=int, default=4, help="attention heads (MLD: 4)")
    sub.add_argument("--allow-pickle", action="store_true",
                     help="read a checkpoint that needs pickle (trusted files only)")
  t2m = kinds.add_parser("t2m-evaluator", help="the T2M evaluator (finest.tar + GloVe) -> a folder")
  t2m.add_argument("ckpt", help="finest.tar")
  t2m.add_argument("--glove", required=True, help="GloVe folder (our_vab_*)")
  t2m.add_argument("--mean", required=True, help="the evaluator's mean.npy")
  t2m.add_argument("--std", required=True, help="the evaluator's std.npy")
  t2m.add_argument("--dataset", default="humanml3d", choices=("humanml3d", "kit"))
  t2m.add_argument("--out", required=True, help="output folder (must be new or empty)")


def _stats_dir(args, out: pathlib.Path) -> str:
  """The folder whose Mean.npy/Std.npy the imported stages use (copies --mean/--std into OUT);
  checked to hold finite [D] statistics before anything is written."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from lead_jax.data import layout  # pylint: disable=import-outside-toplevel
  from lead_jax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  if args.data_dir:
    layout.load_stats(args.data_dir)  # fail before writing anything
    return os.path.abspath(args.data_dir)
  if not args.std:
    raise ConfigError("--mean needs --std")
  folder = out / "statistics"
  folder.mkdir(parents=True, exist_ok=True)
  for name, path in (("Mean.npy", args.mean), ("Std.npy", args.std)):
    np.save(folder / name, np.load(path).astype(np.float32))
  layout.load_stats(folder)
  return str(folder.resolve())


def import_stages(args: argparse.Namespace) -> int:
  """`import mld` / `import motionlcm`: the checkpoint's stages as workdirs (step 0)."""
  from lead_jax.train.imported import DATASETS, import_checkpoint  # pylint: disable=import-outside-toplevel
  kind = "clip" if args.clip else args.text_encoder
  text_path = os.path.abspath(args.clip) if args.clip else (
      os.path.abspath(args.text_encoder_path) if args.text_encoder_path else "")
  out = pathlib.Path(args.out).resolve()
  data_dir = _stats_dir(args, out)
  sections, written = import_checkpoint(
      args.kind, args.ckpt, out, text_encoder_kind=kind, text_encoder_path=text_path,
      data_dir=data_dir, num_heads=args.num_heads, allow_pickle=args.allow_pickle)
  (out / "import.json").write_text(json.dumps({
      "source": os.path.abspath(args.ckpt), "kind": args.kind,
      "dataset": DATASETS[int(sections["vae"]["nfeats"])], "text_encoder": kind,
      "text_encoder_path": text_path, "statistics": data_dir, "sections": sections,
      "stages": {name: str(s.workdir) for name, s in written.items()}}, indent=1))
  for stage, s in written.items():
    section = sections["vae" if stage == "vae" else "denoiser"]
    sizes = ", ".join(f"{k} {v}" for k, v in section.items() if k != "dropout")
    print(f"{stage}: {s.workdir} ({sizes})")
  print("post-norm layers assumed (the released configs); statistics from " + data_dir)
  return 0


def import_t2m(args: argparse.Namespace) -> int:
  from lead_jax.convert import t2m_ckpt  # pylint: disable=import-outside-toplevel
  out = t2m_ckpt.import_t2m_evaluator(args.ckpt, args.glove, args.mean, args.std, args.out,
                                      dataset="kit_ml" if args.dataset == "kit" else "humanml3d")
  print(f"wrote the T2M evaluator to {out} (use it as `lead-jax evaluate --evaluator {out}`)")
  return 0


def run(args: argparse.Namespace) -> int:
  return import_t2m(args) if args.kind == "t2m-evaluator" else import_stages(args)
