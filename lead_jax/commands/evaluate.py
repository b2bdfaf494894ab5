r"""Evaluate trained (or imported) models with the T2M protocol: the paper's Table 1 (or Table 3).

Rows: Real (the evaluator on ground truth), MLD (no projector) and LEAD (the projector round trip;
only when --workdir is a projector stage). Each metric is the mean ±95% CI over --replications
(20 in the paper). --evaluator is a folder written by `lead-jax import t2m-evaluator` (the
published T2M evaluator: finest.tar, its statistics and GloVe) or the workdir of an evaluator
trained with `lead-jax train --config=configs/evaluator_*.py`.

Items (--protocol): `mld` (default) builds them exactly as MLD's test set
(`lead_jax.evaluation.items`): each sub-segment caption is an item of its own, clips and segments
outside [data.min_len, --max-clip-len) frames are dropped, a clip's whole-clip captions make one
item; each replication draws a caption, MLD's crop length and start per item. `clip` is one item
per clip with a caption drawn from all of the clip's captions (the data layer's evaluation pass).
The evaluator embeds each motion as if alone (--evaluator-batching per_sequence, MLD's batch-1
test); `padded` is T2M's padded-batch variant. Caption embeddings (the text encoder's and the
evaluator's) are cached on disk (--cache-dir) and computed once across replications and runs.
OUT gets table.md, table.json (per-replication values, settings: protocol, item count,
evaluator, commit) and items.json (the items: clip, caption, start and end frame).

--mti runs the paper's motion-textual-inversion protocol (Sec. 5.5, Table 3) instead: a seeded
random subset of --mti-size (100) test motions; for each, one token ("<mti-K>") is learnt from that
motion alone (`lead_jax.train.inversion`) in each --mti-space (lead | mld | feat; settings from
configs/inversion.py or --mti-config, --mti-steps / --mti-lr override) and used for that motion
only; --replications samples per motion are generated from --mti-template ("a person <*>") at the
motion's length, without and with the projector. Rows: Real, MTI_<space>, MTI_<space> w/ project;
columns R@3, FID, MM-Dist, Diversity.

Examples:
  lead-jax evaluate --workdir runs/lead --evaluator deps/t2m_evaluator --out eval/
  lead-jax evaluate --workdir runs/mld/denoiser --evaluator deps/t2m_evaluator --out eval_mld/
  lead-jax evaluate --workdir runs/lead --lcm-workdir runs/motionlcm/lcm --evaluator \
      deps/t2m_evaluator --out eval_t5/            # + Table 5: (LEAD-)MotionLCM at 1, 2, 4 steps
  lead-jax evaluate --workdir runs/projector --evaluator runs/evaluator_demo --replications 3 --out eval/
  lead-jax evaluate --workdir runs/projector --evaluator runs/evaluator_demo --mti \
      --mti-space lead mld feat --mti-size 100 --mti-steps 20 --mti-template "a person <*>" --out mti/
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from lead_jax.commands import pipeline_args
from lead_jax.errors import ConfigError

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "lead_jax", "embeddings")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True,
                      help="projector (LEAD) or denoiser (MLD) workdir, trained or imported")
  parser.add_argument("--evaluator", required=True,
                      help="an imported T2M evaluator folder or a trained-evaluator workdir")
  parser.add_argument("--out", required=True, help="output folder for table.md / table.json")
  parser.add_argument("--protocol", choices=("mld", "clip"), default="mld",
                      help="evaluation items: MLD's test set (default) or one per clip")
  parser.add_argument("--evaluator-batching", choices=("per_sequence", "padded"),
                      default="per_sequence",
                      help="T2M evaluator: each motion alone (MLD, default) or padded batches (T2M)")
  parser.add_argument("--max-clip-len", type=int, default=200,
                      help="protocol mld: clips and segments must be shorter (MLD: 200)")
  parser.add_argument("--split", default="test")
  parser.add_argument("--cache-dir", default=DEFAULT_CACHE, help="caption-embedding cache folder")
  pipeline_args.add_pipeline_arguments(parser)
  parser.add_argument("--replications", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
  parser.add_argument("--lcm-workdir", default=None,
                      help="an LCM stage (trained, or `lead-jax import motionlcm`): adds the rows "
                           "of Table 5, MotionLCM and (with a projector --workdir) LEAD-MotionLCM "
                           "at each of --lcm-steps")
  parser.add_argument("--lcm-steps", type=int, nargs="+", default=[1, 2, 4],
                      help="consistency steps of the Table 5 rows")
  parser.add_argument("--guidance", type=float, default=7.5)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--mm-prompts", type=int, default=100)
  parser.add_argument("--mm-repeats", type=int, default=30)
  parser.add_argument("--mti", action="store_true", help="the MTI protocol of Table 3 on a subset")
  parser.add_argument("--mti-size", type=int, default=100, help="motions in the MTI subset")
  parser.add_argument("--mti-space", nargs="+", choices=("lead", "mld", "feat"), default=["lead"],
                      help="inversion objective(s); one pair of table rows each")
  parser.add_argument("--mti-template", default="a person <*>",
                      help="generation prompt; <*> is replaced by the motion's token")
  parser.add_argument("--mti-init-word", default="move",
                      help="word initialising every token ('' = mean of the token table)")
  parser.add_argument("--mti-steps", type=int, default=None, help="Adam steps (config: 20)")
  parser.add_argument("--mti-lr", type=float, default=None, help="Adam learning rate (config)")
  parser.add_argument("--mti-config", default=None,
                      help="inversion config file (default configs/inversion.py)")


def mti_settings(args: argparse.Namespace):
  """`mti.MTISettings` from the --mti-* flags over the inversion config."""
  from lead_jax.evaluation import mti  # pylint: disable=import-outside-toplevel
  from lead_jax.train import inversion  # pylint: disable=import-outside-toplevel
  if args.mti_size < 2:
    raise ConfigError(f"--mti-size must be >= 2, found {args.mti_size}")
  if inversion.PLACEHOLDER not in args.mti_template:
    raise ConfigError(f"--mti-template must contain {inversion.PLACEHOLDER!r}, found "
                      f"{args.mti_template!r}")
  inv = inversion.InversionSettings.from_config(pipeline_args.inversion_config(args.mti_config),
                                                steps=args.mti_steps, learning_rate=args.mti_lr)
  return mti.MTISettings(inversion=inv, size=args.mti_size, spaces=tuple(args.mti_space),
                         template=args.mti_template, init_word=args.mti_init_word,
                         guidance_scale=args.guidance, steps=args.steps)


def run(args: argparse.Namespace) -> int:
  import ml_collections  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from lead_jax import checkpoints, workdir  # pylint: disable=import-outside-toplevel
  from lead_jax.data import datasets  # pylint: disable=import-outside-toplevel
  from lead_jax.data.text_cache import TextEmbeddingCache  # pylint: disable=import-outside-toplevel
  from lead_jax.evaluation import items as mld_items  # pylint: disable=import-outside-toplevel
  from lead_jax.evaluation import mti as mti_protocol  # pylint: disable=import-outside-toplevel
  from lead_jax.evaluation import protocol, report  # pylint: disable=import-outside-toplevel
  mti = mti_settings(args) if args.mti else None
  pipe = pipeline_args.load_pipeline(args)
  mean, std = np.asarray(pipe.mean, np.float32), np.asarray(pipe.std, np.float32)
  embedder, evaluator_info = workdir.load_evaluator(
      args.evaluator, mean, std, batching=args.evaluator_batching, cache_dir=args.cache_dir)
  config = ml_collections.ConfigDict(checkpoints.load_config(args.workdir))
  if "data" not in config:
    raise ConfigError(f"{args.workdir}: the saved config has no data section")
  with config.unlocked():
    if args.data_dir:
      config.data.dir = args.data_dir
    config.data.batch_size = args.batch_size
    config.data.prefetch = 0
  progress = lambda s: print(s, file=sys.stderr)
  out = pathlib.Path(args.out)
  if args.protocol == "mld":
    root = datasets.dataset_root(config.data.builder, config.data.dir or None)
    items = mld_items.mld_items(root, args.split, int(config.data.min_len), args.max_clip_len)
    motions = mld_items.load_item_motions(root, items, pipe.vae.nfeats)
    text_cache = TextEmbeddingCache(pipe.text_encoder, args.cache_dir)
    batches = mld_items.ItemBatches(items, motions, mean, std, text_cache, args.batch_size,
                                    pipe.max_frames, int(config.data.unit_length))
    out.mkdir(parents=True, exist_ok=True)
    (out / "items.json").write_text(json.dumps(mld_items.item_table(items), indent=0))
    num_items = len(items)
    print(f"protocol mld: {num_items} items from {len({i.clip_id for i in items})} clips of "
          f"split '{args.split}' (item list: {out / 'items.json'})")
  else:
    batches = protocol.stream_batches(config, pipe.text_encoder, args.split)
    num_items = None
  info = {"protocol": args.protocol, "items": num_items, "split": args.split,
          "evaluator": evaluator_info, "workdir": str(pathlib.Path(args.workdir).resolve()),
          **report.provenance()}
  if mti is not None:
    settings = protocol.ProtocolSettings(replications=args.replications, seed=args.seed,
                                         mm_prompts=0)
    result = mti_protocol.evaluate_mti(embedder, pipe, batches, settings, mti, mean, std,
                                       progress)
    result["settings"].update(info)
    md, js = report.write_report(
        result, args.out, report.TABLE3_COLUMNS,
        f"MTI protocol on {result['settings']['mti']['size']} {args.split} motions (Table 3)")
  else:
    table = protocol.PromptEmbeddings(pipe, args.batch_size)  # each caption encoded once
    common = dict(guidance_scale=args.guidance, steps=args.steps, batch_size=args.batch_size,
                  prompt_embeddings=table)
    methods = {"MLD": protocol.pipeline_generator(pipe, False, **common)}
    if pipe.has_projector:
      methods["LEAD"] = protocol.pipeline_generator(pipe, True, **common)
    if args.lcm_workdir:
      # With a projector: LEAD-MotionLCM reuses it on the LCM student; else the LCM stage alone.
      lcm_pipe = (pipeline_args.load_pipeline(args, denoiser_workdir=args.lcm_workdir,
                                              text_encoder=pipe.text_encoder)
                  if pipe.has_projector else
                  pipeline_args.load_pipeline(args, workdir=args.lcm_workdir,
                                              text_encoder=pipe.text_encoder))
      methods.update(protocol.lcm_methods(lcm_pipe, tuple(args.lcm_steps), args.guidance,
                                          args.batch_size, table))
      info["lcm_workdir"] = str(pathlib.Path(args.lcm_workdir).resolve())
    settings = protocol.ProtocolSettings(
        replications=args.replications, seed=args.seed, mm_prompts=args.mm_prompts,
        mm_repeats=args.mm_repeats)
    result = protocol.evaluate(embedder, batches, methods, settings, mean, std, progress=progress)
    result["settings"].update(info)
    md, js = report.write_report(result, args.out, report.TABLE1_COLUMNS,
                                 "Text-to-motion (Table 1 layout)")
  print(md.read_text())
  print(f"wrote {md} and {js}")
  return 0
