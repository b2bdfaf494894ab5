"""t-SNE of VAE latents and of projected latents, coloured by caption content (paper Fig. 2, right).

Encodes up to --max-motions clips of --split (a --seed-ed random subset) with the projector stage's
frozen VAE (posterior mean mu) and its projector (E_proj(mu)), runs t-SNE on each set and draws
them side by side. Colours: --label verb (the main verb of each clip's captions) or --label
content (the content field of Bandai / DeepMimic clip ids); labels beyond the --top most frequent
are grey ("other") and left out of the scores. Writes OUT.png, OUT.json (silhouette and 5-NN
accuracy per panel, in the t-SNE plane and in the latent space, KL divergence) and OUT.npz
(latents, embeddings, labels, clip ids); prints the scores.

Examples:
  lead-jax plot-latents --workdir runs/projector --split test --max-motions 1000 --out fig2.png
  lead-jax plot-latents --workdir runs/projector_demo --label content --out demo_latents.png
"""

from __future__ import annotations

import argparse
import pathlib

from lead_jax.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True, help="workdir of a trained projector stage")
  parser.add_argument("--out", required=True, help="output PNG (OUT.json, OUT.npz beside it)")
  parser.add_argument("--split", default="test")
  parser.add_argument("--max-motions", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0, help="subset choice and t-SNE start")
  parser.add_argument("--label", choices=("verb", "content"), default="verb")
  parser.add_argument("--top", type=int, default=8, help="labels coloured; the rest are 'other'")
  parser.add_argument("--perplexity", type=float, default=30.0)
  parser.add_argument("--iterations", type=int, default=1000)
  parser.add_argument("--data-dir", default="", help="dataset folder (default: the stage config's)")
  parser.add_argument("--vae-workdir", default="", help="VAE workdir (default: the config's)")
  parser.add_argument("--batch-size", type=int, default=64)


def run(args: argparse.Namespace) -> int:
  from lead_jax.evaluation import latents as split_latents  # pylint: disable=import-outside-toplevel
  from lead_jax.evaluation import tsne  # pylint: disable=import-outside-toplevel
  out = pathlib.Path(args.out)
  if out.suffix.lower() != ".png":
    raise InputError(f"--out must name a .png file, found {args.out!r}")
  for name in ("max_motions", "top", "iterations", "batch_size"):
    if getattr(args, name) < 1:
      raise InputError(f"--{name.replace('_', '-')} must be >= 1, found {getattr(args, name)}")
  models = split_latents.load_latent_models(args.workdir, vae_workdir=args.vae_workdir or None)
  latents = split_latents.encode_split(models, args.data_dir or None, args.split,
                              max_motions=args.max_motions, seed=args.seed,
                              batch_size=args.batch_size)
  labels = split_latents.split_labels(latents, args.label, args.top)
  summary = tsne.latent_figure(latents, labels, out, seed=args.seed, perplexity=args.perplexity,
                               num_iters=args.iterations)
  print(f"{summary['num_motions']} motions of split '{args.split}', perplexity "
        f"{summary['perplexity']:g}; labels: " +
        ", ".join(f"{k} {v}" for k, v in sorted(summary["label_counts"].items(),
                                                key=lambda kv: -kv[1])))
  fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
  for name, panel in summary["panels"].items():
    print(f"  {name:9s} (dim {panel['dim']:4d}): silhouette t-SNE {fmt(panel['silhouette'])}, "
          f"latent {fmt(panel['latent_silhouette'])}; 5-NN accuracy t-SNE "
          f"{fmt(panel['knn_accuracy'])}, latent {fmt(panel['latent_knn_accuracy'])}; "
          f"KL {panel['kl_divergence']:.3f}")
  print(f"wrote {out}, {out.with_suffix('.json')}, {out.with_suffix('.npz')}")
  return 0
