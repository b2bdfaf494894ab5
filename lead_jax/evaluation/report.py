"""The paper's tables as Markdown and JSON: one row per method, `mean ±95% CI` per metric.

  write_report(result, "eval/")                              # Table 1 layout: table.md, table.json
  write_report(result, "mti/", TABLE3_COLUMNS, "MTI (Table 3)")
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import subprocess
from typing import Any, Mapping, Sequence

TABLE1_COLUMNS = ("R@1", "R@2", "R@3", "FID", "MM-Dist", "Diversity", "MModality")
TABLE3_COLUMNS = ("R@3", "FID", "MM-Dist", "Diversity")


def markdown_table(result: Mapping[str, Any], columns: Sequence[str] = TABLE1_COLUMNS,
                   title: str = "") -> str:
  """Table-1-style Markdown: one row per method, `mean ±ci` per metric ('-' when absent)."""
  arrows = {"FID": "↓", "MM-Dist": "↓", "Diversity": "→", "MModality": "↑"}
  head = ["Method"] + [f"{c} {arrows.get(c, '↑')}" for c in columns]
  lines = ([f"### {title}", ""] if title else []) + [
      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, row in result["summary"].items():
    cells = [name]
    for c in columns:
      cell = row.get(c)
      if cell is None or (name == "Real" and c == "MModality"):
        cells.append("-")
      else:
        cells.append(f"{cell['mean']:.3f} ±{cell['ci95']:.3f}")
    lines.append("| " + " | ".join(cells) + " |")
  s = result["settings"]
  eff = s.get("effective") or {}
  footer = (f"{s['replications']} replications, seed {s['seed']}; mean ±95% CI (1.96·std/√n). "
            f"R-precision groups of {eff.get('group_size')}, diversity "
            f"{eff.get('diversity_times')} pairs")
  if "MModality" in columns:
    footer += (f", MModality {eff.get('mm_prompts')} prompts × {eff.get('mm_repeats')} samples, "
               f"{eff.get('mm_times')} pairs")
  lines += ["", footer + "."]
  if "protocol" in s:
    evaluator = s.get("evaluator") or {}
    items = f"{s['items']} items" if s.get("items") is not None else "one item per clip"
    lines += ["", f"Protocol {s['protocol']} ({items} of split '{s.get('split')}'); evaluator "
              f"{evaluator.get('kind')} ({evaluator.get('batching', 'per_sequence')}) "
              f"{evaluator.get('path', '')}; lead-jax {s.get('lead_jax')} at commit "
              f"{s.get('commit')}."]
  mti = s.get("mti")
  if mti:
    inv = mti["inversion"]
    lines += ["", f"MTI: one token learnt per motion ({mti['size']} test motions, subset seed "
              f"{s['seed']}) in space(s) {', '.join(mti['spaces'])}: {inv['steps']} Adam steps, lr "
              f"{inv['optimizer']['learning_rate']}, batch {inv['batch_size']} segments of "
              f"{inv['segment_frames']} frames, init word {mti['init_word']!r}; generated from {mti['template']!r} at the "
              f"motion's length ({mti['steps']} DDIM steps, guidance {mti['guidance_scale']}); text "
              "= the ground-truth caption; 'w/ project' = through the projector. Real has no FID "
              "(the generated rows' FID is against these ground-truth motions)."]
  return "\n".join(lines) + "\n"


def write_report(result: Mapping[str, Any], out_dir: str | pathlib.Path,
                 columns: Sequence[str] = TABLE1_COLUMNS, title: str = "", stem: str = "table"
                 ) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes `<stem>.md` and `<stem>.json` (full per-replication values) into `out_dir`."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  md, js = out / f"{stem}.md", out / f"{stem}.json"
  md.write_text(markdown_table(result, columns, title))
  js.write_text(json.dumps(result, indent=2, sort_keys=False, default=float))
  return md, js


def provenance() -> dict[str, str | None]:
  """`{'lead_jax': version, 'commit': git commit of the checkout or None}` for result files."""
  try:
    version = importlib.metadata.version("lead-jax")
  except importlib.metadata.PackageNotFoundError:
    version = None
  try:
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True, timeout=10, check=True,
                            cwd=pathlib.Path(__file__).resolve().parent).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    commit = None
  return {"lead_jax": version, "commit": commit}
