r"""`lead-jax import mld|t2m-evaluator`: published PyTorch weights into directories every command takes.

  lead-jax import mld 1222_mld_humanml3d_FID041.ckpt --out runs/mld --clip deps/clip-vit-large-patch14 \
      --data-dir datasets/HumanML3D
  lead-jax import mld mld.ckpt --out runs/mld --clip deps/clip --mean Mean.npy --std Std.npy
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

KINDS = ("mld", "t2m-evaluator")
DATASETS = {263: "humanml3d", 251: "kit"}


def add_parsers(kinds) -> None:
  """The weight kinds of `lead-jax import` (added to its sub-parsers)."""
  mld = kinds.add_parser("mld", help="MLD's published .ckpt -> OUT/vae and OUT/denoiser workdirs",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  mld.add_argument("ckpt", help="the Lightning checkpoint (vae.* and denoiser.* keys)")
  mld.add_argument("--out", required=True, help="output folder (OUT/vae, OUT/denoiser)")
  text = mld.add_mutually_exclusive_group(required=True)
  text.add_argument("--clip", help="CLIP ViT-L/14 folder (Hugging Face layout): MLD's encoder")
  text.add_argument("--text-encoder", choices=("minilm",),
                    help="another text encoder the denoiser was trained with")
  mld.add_argument("--text-encoder-path", default="", help="its folder (MiniLM: default package)")
  stats = mld.add_mutually_exclusive_group(required=True)
  stats.add_argument("--data-dir", help="the dataset folder (Mean.npy, Std.npy, splits)")
  stats.add_argument("--mean", help="Mean.npy (then --std): statistics without the dataset")
  mld.add_argument("--std", help="Std.npy (with --mean)")
  mld.add_argument("--num-heads", type=int, default=4, help="attention heads (MLD: 4)")
  mld.add_argument("--allow-pickle", action="store_true",
                   help="read a checkpoint that needs pickle (trusted files only)")
  t2m = kinds.add_parser("t2m-evaluator", help="the T2M evaluator (finest.tar + GloVe) -> a folder")
  t2m.add_argument("ckpt", help="finest.tar")
  t2m.add_argument("--glove", required=True, help="GloVe folder (our_vab_*)")
  t2m.add_argument("--mean", required=True, help="the evaluator's mean.npy")
  t2m.add_argument("--std", required=True, help="the evaluator's std.npy")
  t2m.add_argument("--dataset", default="humanml3d", choices=("humanml3d", "kit"))
  t2m.add_argument("--out", required=True, help="output folder (must be new or empty)")


def _stats_dir(args, out: pathlib.Path, dim: int) -> str:
  """The folder whose Mean.npy/Std.npy the imported stages use (copies --mean/--std into OUT)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from lead_jax.data import layout  # pylint: disable=import-outside-toplevel
  from lead_jax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  if args.data_dir:
    layout.load_stats(args.data_dir, dim)  # fail before writing anything
    return os.path.abspath(args.data_dir)
  if not args.std:
    raise ConfigError("--mean needs --std")
  folder = out / "statistics"
  folder.mkdir(parents=True, exist_ok=True)
  for name, path in (("Mean.npy", args.mean), ("Std.npy", args.std)):
    np.save(folder / name, np.load(path).astype(np.float32))
  layout.load_stats(folder, dim)
  return str(folder.resolve())


def import_mld(args: argparse.Namespace) -> int:
  from lead_jax.config_loader import load_config, repo_config  # pylint: disable=import-outside-toplevel
  from lead_jax.convert import mld_ckpt  # pylint: disable=import-outside-toplevel
  from lead_jax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from lead_jax.train.imported import write_stage  # pylint: disable=import-outside-toplevel
  sections, (vae_params, den_params) = mld_ckpt.read_mld_checkpoint(
      args.ckpt, num_heads=args.num_heads, allow_pickle=args.allow_pickle)
  if den_params is None:
    raise ConfigError(f"{args.ckpt} holds a VAE only (no denoiser.* keys); MLD's release has both")
  nfeats = sections["vae"]["nfeats"]
  if nfeats not in DATASETS:
    raise ConfigError(f"{args.ckpt}: the VAE reads {nfeats} features, neither HumanML3D (263) "
                      "nor KIT-ML (251)")
  dataset = DATASETS[nfeats]
  kind = "clip" if args.clip else args.text_encoder
  text_path = os.path.abspath(args.clip) if args.clip else (
      os.path.abspath(args.text_encoder_path) if args.text_encoder_path else "")
  out = pathlib.Path(args.out).resolve()
  data_dir = _stats_dir(args, out, nfeats)
  configs = {}
  for stage in ("vae", "denoiser"):
    config = load_config(str(repo_config(f"{stage}_{dataset}.py")))
    config.text_encoder.kind = kind
    config.text_encoder.dim = sections["denoiser"]["text_dim"]
    for name in (("vae",) if stage == "vae" else ("vae", "denoiser")):
      config[name].update(sections[name])
    config.data.dir = data_dir
    config.dependencies.text_encoder_path = text_path
    if stage == "denoiser":
      config.dependencies.vae_workdir = str(out / "vae")
    configs[stage] = config
  written = {"vae": write_stage(configs["vae"], out / "vae", vae_params, args.ckpt),
             "denoiser": write_stage(configs["denoiser"], out / "denoiser", den_params, args.ckpt)}
  (out / "import.json").write_text(json.dumps({
      "source": os.path.abspath(args.ckpt), "dataset": dataset, "text_encoder": kind,
      "text_encoder_path": text_path, "statistics": data_dir, "sections": sections}, indent=1))
  for stage, s in written.items():
    sizes = ", ".join(f"{k} {v}" for k, v in sections[stage].items() if k != "dropout")
    print(f"{stage}: {s.workdir} ({sizes})")
  print("post-norm layers assumed (MLD's released configs); statistics from " + data_dir)
  return 0


def import_t2m(args: argparse.Namespace) -> int:
  from lead_jax.convert import t2m_ckpt  # pylint: disable=import-outside-toplevel
  out = t2m_ckpt.import_t2m_evaluator(args.ckpt, args.glove, args.mean, args.std, args.out,
                                      dataset="kit_ml" if args.dataset == "kit" else "humanml3d")
  print(f"wrote the T2M evaluator to {out} (use it as `lead-jax evaluate --evaluator {out}`)")
  return 0


def run(args: argparse.Namespace) -> int:
  return import_mld(args) if args.kind == "mld" else import_t2m(args)
