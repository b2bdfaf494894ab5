"""Scalar logging of a training run: a JSON-lines file and TensorBoard event files.

  writer = MetricWriter(workdir)            # WORKDIR/metrics.jsonl + WORKDIR/tensorboard/events.*
  writer.write(step, {"loss": 0.3, "lr": 1e-4})
  writer.close()

TensorBoard files are written by `tensorboardX` (no TensorFlow needed). It is imported when the
first active writer opens: importing it imports torch when torch is installed (about 2 s), which
processes that only read metrics or evaluate should not pay.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Mapping


class JsonlWriter:
  """Appends one JSON object per call, `{"step": s, **scalars}`, to `path` (non-finite values as
  the strings 'nan' / 'inf' / '-inf')."""

  def __init__(self, path: str | os.PathLike):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._file = open(self.path, "a", encoding="utf-8")

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    row = {"step": int(step)}
    row.update({k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()})
    self._file.write(json.dumps(row) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class MetricWriter:
  """`metrics.jsonl` and `tensorboard/` under a workdir; inactive (writes nothing) on processes
  other than 0. Each `write` is flushed to both."""

  def __init__(self, workdir: str | os.PathLike, active: bool = True):
    workdir = pathlib.Path(workdir)
    self.jsonl_path = workdir / "metrics.jsonl"
    self.tensorboard_dir = workdir / "tensorboard"
    self._jsonl = JsonlWriter(self.jsonl_path) if active else None
    self._tensorboard = None
    if active:
      import tensorboardX  # pylint: disable=import-outside-toplevel  (heavy: imports torch)
      self._tensorboard = tensorboardX.SummaryWriter(str(self.tensorboard_dir))

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._jsonl is None:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    self._jsonl.write(step, scalars)
    for tag, value in scalars.items():
      self._tensorboard.add_scalar(tag, value, int(step))
    self._tensorboard.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
      self._tensorboard.close()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """The rows of a metrics.jsonl file (for plots and tests)."""
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
