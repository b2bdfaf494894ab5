r"""Import mocap into a HumanML3D-layout dataset (new_joints, new_joint_vecs, texts, splits, Mean/Std).

Usage:
  lead-jax import bvh ../shared/data/bandai/dataset-2/data/*walk*.bvh --map bandai \
      --template bandai --out data/bandai [--unit cm] [--min-len 40] [--mirror] [--workers 2]
  lead-jax import bvh mocap/ --map my_map.json --captions captions.tsv --out data/mine
  lead-jax import deepmimic --out data/deepmimic            # the 15 clips in the pybullet wheel
  lead-jax import mld CKPT --out runs/mld --clip DIR --data-dir DIR    # published weights:
  lead-jax import t2m-evaluator finest.tar --glove DIR ... --out DIR   #   see `import mld --help`

SRC may be files, folders (searched recursively for *.bvh / humanoid3d_*.txt) or glob patterns.
Captions: `--captions FILE` (`<clip id or file stem><TAB><caption>` lines) or `--template`
(`bandai`, `deepmimic`, or a format string such as "a person {name}"; fields {stem}, {name}).
Every failing clip is reported (name and reason) at the end and in import_report.json; the good
clips are kept. Exit status 0 if any clip was written, 1 if none.
Importing into an existing dataset folder adds to it: its clips keep their split, and Mean/Std are
recomputed over every train clip (--keep-stats keeps the existing files; stages trained on the old
statistics then refuse to load without --allow-dependency-change). An import that writes no clip,
or fails, leaves the folder as it was.
DeepMimic looping clips are repeated to at least --min-seconds (default 3 s) and shorter
non-looping clips hold their last pose (disable with --no-repeat / --no-hold).
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import sys

from lead_jax.commands import import_weights
from lead_jax.errors import ConfigError, MissingFileError
from lead_jax.io import captions as cap


def add_arguments(parser: argparse.ArgumentParser) -> None:
  kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
  bvh = kinds.add_parser("bvh", help="BVH files retargeted with a joint map")
  bvh.add_argument("src", nargs="+", help="BVH files, folders or glob patterns")
  bvh.add_argument("--map", default="bandai", help="joint map: bandai, cmu or a JSON file")
  bvh.add_argument("--unit", default=None, help="length unit of the files (cm, m, ...; default: detected)")
  bvh.add_argument("--workers", type=int, default=1, help="parallel reader processes")
  deepmimic = kinds.add_parser("deepmimic", help="DeepMimic humanoid3d_*.txt clips")
  deepmimic.add_argument("src", nargs="?", default=None,
                         help="folder of humanoid3d_*.txt (default: the pybullet data)")
  deepmimic.add_argument("--min-seconds", type=float, default=3.0,
                         help="repeat looping clips / hold short ones up to this length")
  deepmimic.add_argument("--no-repeat", action="store_true", help="do not repeat looping clips")
  deepmimic.add_argument("--no-hold", action="store_true", help="do not hold short clips' last pose")
  deepmimic.add_argument("--ground", default="feet", choices=("feet", "all", "model"),
                         help="floor placement (see lead_jax.io.deepmimic.ground_joints)")
  for p, default_template in ((bvh, None), (deepmimic, "deepmimic")):
    p.add_argument("--out", required=True, help="output dataset folder")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--captions", default=None, help="TSV file: <clip id><TAB><caption>")
    group.add_argument("--template", default=default_template,
                       help="bandai, deepmimic or a format string with {stem} / {name}")
    p.add_argument("--min-len", type=int, default=40, help="minimum stored length in frames")
    p.add_argument("--mirror", action="store_true", help="also write mirrored M<id> copies")
    p.add_argument("--seed", type=int, default=0, help="salt of the split hash")
    p.add_argument("--keep-stats", action="store_true",
                   help="adding to an existing dataset: keep its Mean.npy/Std.npy instead of "
                        "recomputing them over all train clips")
  import_weights.add_parsers(kinds)


def expand_sources(sources: list[str], pattern: str) -> tuple[list[pathlib.Path], list[str]]:
  """Files, folders (recursive `pattern`) and globs -> (sorted unique files, unmatched sources)."""
  found: dict[str, pathlib.Path] = {}
  missing: list[str] = []
  for src in sources:
    path = pathlib.Path(src)
    if path.is_dir():
      matches = sorted(path.rglob(pattern))
    elif path.is_file():
      matches = [path]
    else:
      matches = [pathlib.Path(m) for m in sorted(glob.glob(src, recursive=True))]
      if not matches:
        missing.append(src)
    for m in matches:
      found.setdefault(os.path.abspath(m), m)
  return [found[k] for k in sorted(found)], missing


def _captioner(args):
  if args.captions:
    table = cap.read_captions_file(args.captions)
    return lambda stem: table.get(stem, [])
  if args.template:
    return cap.get_captioner(args.template)
  raise ConfigError("give --captions FILE or --template (bandai, deepmimic or a format string)")


def run(args: argparse.Namespace) -> int:
  if args.kind in import_weights.KINDS:
    return import_weights.run(args)
  from lead_jax.io import importer  # pylint: disable=g-import-not-at-top

  captioner = _captioner(args)
  if args.kind == "bvh":
    from lead_jax.io.retarget import load_joint_map  # pylint: disable=g-import-not-at-top
    load_joint_map(args.map)  # fail early on a bad --map
    files, missing = expand_sources(args.src, "*.bvh")
  else:
    from lead_jax.io.deepmimic import list_deepmimic_clips  # pylint: disable=g-import-not-at-top
    files, missing = (expand_sources([args.src], "humanoid3d_*.txt") if args.src
                      else (list_deepmimic_clips(), []))
  if not files:
    raise MissingFileError(f"no input files found in {args.src}"
                           + (f" ({', '.join(missing)})" if missing else ""))

  failures = {src: "no such file (or no file matches the pattern)" for src in missing}
  common = dict(captioner=captioner, min_len=args.min_len, mirror=args.mirror, seed=args.seed,
                failures=failures, workers=max(1, int(getattr(args, "workers", 1) or 1)),
                progress=True, stats="keep" if args.keep_stats else "recompute")
  if args.kind == "bvh":
    report = importer.import_clips("bvh", files, args.out, options={"joint_map": args.map,
                                                                    "unit": args.unit}, **common)
  else:
    report = importer.import_deepmimic_dataset(
        args.out, files, min_seconds=args.min_seconds, repeat_loops=not args.no_repeat,
        hold_short=not args.no_hold, ground=args.ground, **common)
  kept, skipped = report["kept"], report["skipped"]
  splits = report["splits"]
  counts = f"train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}"
  if kept:
    added = len(kept) - len(report["replaced"])
    print(f"wrote {len(kept)} clips to {args.out} ({added} new, {len(report['replaced'])} "
          f"replaced; the dataset now has {counts})")
    if report["previous_clips"]:
      if report["stats"] == "kept":
        print("Mean.npy/Std.npy kept as they were (--keep-stats)")
      elif report["stats_changed"]:
        print(f"Mean.npy/Std.npy recomputed over {report['mean_std_clips']} "
              f"{report['mean_std_from']} clips: stages trained on the previous statistics "
              "now refuse to load without --allow-dependency-change (or use --keep-stats)",
              file=sys.stderr)
  else:
    print(f"no clip written; {args.out} is unchanged"
          + (f" ({counts})" if report["previous_clips"] else ""), file=sys.stderr)
  problems = {**report["failures"], **skipped}
  if problems:
    print(f"{len(problems)} clip(s) not imported:", file=sys.stderr)
    for name, reason in sorted(problems.items()):
      print(f"  {name}: {reason}", file=sys.stderr)
  return 0 if kept else 1
