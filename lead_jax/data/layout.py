"""Reading a HumanML3D-layout folder (TF-free).

The layout, as written by HumanML3D's scripts, KIT-ML and `lead-jax import`:

  <root>/new_joint_vecs/<id>.npy   features [T, D] (D = 263 HumanML3D, 251 KIT-ML)
  <root>/texts/<id>.txt            one caption a line: `caption#word/POS word/POS ...#start#end`
  <root>/{train,val,test}.txt      one id a line
  <root>/Mean.npy, <root>/Std.npy  normalisation statistics [D]

`start`/`end` are seconds; `0.0#0.0` (or NaN) means the whole clip, otherwise the caption covers
frames `[int(start * fps), int(end * fps))`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Iterator, Sequence

import numpy as np

from lead_jax.errors import InputError, MissingFileError

SPLITS = ("train", "val", "test")
STATS_FILES = ("Mean.npy", "Std.npy")


@dataclasses.dataclass(frozen=True)
class Caption:
  """One caption of a clip; `start`/`end` in seconds (0, 0 = whole clip)."""
  text: str
  tokens: tuple[str, ...]  # lemmatised words
  pos: tuple[str, ...]  # part-of-speech tags, one per token
  start: float
  end: float

  @property
  def tokens_string(self) -> str:
    """The `word/POS word/POS` form of the text files."""
    return " ".join(f"{w}/{p}" for w, p in zip(self.tokens, self.pos))


@dataclasses.dataclass(frozen=True)
class Clip:
  """A clip of a dataset: `motion [T, D] float32` and its captions."""
  id: str
  motion: np.ndarray
  captions: tuple[Caption, ...]

  @property
  def length(self) -> int:
    return int(self.motion.shape[0])


def parse_caption_line(line: str, where: str = "<caption>") -> Caption:
  """Parses `caption#word/POS ...#start#end` (the last three fields are optional)."""
  fields = line.rstrip("\n").split("#")
  if not fields[0].strip():
    raise InputError(f"{where}: empty caption in line {line!r}")
  text = fields[0].strip()
  tokens, pos = [], []
  if len(fields) > 1 and fields[1].strip():
    for item in fields[1].split():
      word, _, tag = item.rpartition("/")
      if not word:  # no '/': a bare word
        word, tag = tag, "OTHER"
      tokens.append(word)
      pos.append(tag)
  try:
    start = float(fields[2]) if len(fields) > 2 and fields[2].strip() else 0.0
    end = float(fields[3]) if len(fields) > 3 and fields[3].strip() else 0.0
  except ValueError as e:
    raise InputError(f"{where}: start/end must be numbers (seconds), found {fields[2:4]} "
                     f"in line {line!r}") from e
  start = 0.0 if math.isnan(start) else start
  end = 0.0 if math.isnan(end) else end
  return Caption(text, tuple(tokens), tuple(pos), start, end)


def read_captions(path: pathlib.Path) -> tuple[Caption, ...]:
  """All captions of a `texts/<id>.txt` file (blank lines skipped)."""
  with open(path, encoding="utf-8") as f:
    lines = [l for l in f if l.strip()]
  return tuple(parse_caption_line(l, where=f"{path}:{i + 1}") for i, l in enumerate(lines))


def segment_frames(caption: Caption, num_frames: int, fps: float) -> tuple[int, int]:
  """The frames `[begin, end)` a caption covers in a clip of `num_frames` frames."""
  if caption.start == 0.0 and caption.end == 0.0:
    return 0, num_frames
  begin = max(0, int(caption.start * fps))
  end = min(num_frames, int(caption.end * fps))
  return begin, max(begin, end)


def check_layout(root: str | os.PathLike, splits: Sequence[str] = SPLITS,
                 require_stats: bool = True) -> pathlib.Path:
  """Raises `MissingFileError` naming every missing part of the layout; returns the root."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise MissingFileError(f"dataset folder {root} does not exist")
  wanted = ["new_joint_vecs/", "texts/"] + [f"{s}.txt" for s in splits]
  wanted += list(STATS_FILES) if require_stats else []
  missing = [w for w in wanted
             if not ((root / w[:-1]).is_dir() if w.endswith("/") else (root / w).is_file())]
  if missing:
    raise MissingFileError(
        f"dataset folder {root} is incomplete: missing {', '.join(missing)} (expected the "
        "HumanML3D layout: new_joint_vecs/<id>.npy, texts/<id>.txt, train.txt/val.txt/test.txt, "
        "Mean.npy, Std.npy)")
  return root


def read_split_ids(root: str | os.PathLike, split: str) -> list[str]:
  """The ids listed in `<root>/<split>.txt`, in file order."""
  path = pathlib.Path(root) / f"{split}.txt"
  if not path.is_file():
    raise MissingFileError(f"split file {path} not found")
  with open(path, encoding="utf-8") as f:
    return [l.strip() for l in f if l.strip()]


def available_ids(root: str | os.PathLike, split: str) -> tuple[list[str], list[str]]:
  """(ids of `split` with both a motion and a text file, ids listed but missing one of them)."""
  root = pathlib.Path(root)
  motions = {p.stem for p in (root / "new_joint_vecs").glob("*.npy")}
  texts = {p.stem for p in (root / "texts").glob("*.txt")}
  present, absent = [], []
  for i in read_split_ids(root, split):
    (present if i in motions and i in texts else absent).append(i)
  return present, absent


def load_stats(root: str | os.PathLike, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(`Mean [D]`, `Std [D]`) float32, checked for shape and for non-positive std."""
  root = pathlib.Path(root)
  out = []
  for name in STATS_FILES:
    path = root / name
    if not path.is_file():
      raise MissingFileError(f"normalisation statistics {path} not found")
    a = np.asarray(np.load(path), np.float32)
    if a.ndim != 1 or (dim is not None and a.shape[0] != dim):
      raise InputError(f"{path}: expected shape ({dim if dim else 'D'},), found {a.shape}")
    out.append(a)
  mean, std = out
  if mean.shape != std.shape:
    raise InputError(f"{root}: Mean.npy {mean.shape} and Std.npy {std.shape} differ in shape")
  if not np.all(std > 0):
    raise InputError(f"{root / 'Std.npy'}: {int(np.sum(std <= 0))} entries are <= 0")
  return mean, std


def load_clip(root: str | os.PathLike, clip_id: str, dim: int | None = None) -> Clip:
  """Reads one clip's features (cast to float32) and captions."""
  root = pathlib.Path(root)
  path = root / "new_joint_vecs" / f"{clip_id}.npy"
  motion = np.load(path)
  if motion.ndim != 2 or (dim is not None and motion.shape[1] != dim):
    raise InputError(f"{path}: expected features of shape (T, {dim if dim else 'D'}), "
                     f"found {motion.shape}")
  motion = np.ascontiguousarray(motion, np.float32)
  if not np.all(np.isfinite(motion)):
    raise InputError(f"{path}: {int(np.sum(~np.isfinite(motion)))} non-finite values")
  captions = read_captions(root / "texts" / f"{clip_id}.txt")
  if not captions:
    raise InputError(f"{root / 'texts' / (clip_id + '.txt')}: no captions")
  return Clip(clip_id, motion, captions)


def iter_clips(root: str | os.PathLike, split: str, dim: int | None = None,
               strict: bool = False) -> Iterator[Clip]:
  """The clips of a split, in split-file order.

  Ids listed in the split file whose motion or text file is absent are skipped (HumanML3D's
  loaders do the same), unless `strict`, where they raise `MissingFileError` naming them. A split
  with no clip at all always raises.
  """
  root = pathlib.Path(root)
  present, absent = available_ids(root, split)
  if absent and (strict or not present):
    shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
    raise MissingFileError(
        f"{root / (split + '.txt')}: {len(absent)} of {len(absent) + len(present)} ids have no "
        f"new_joint_vecs/<id>.npy or texts/<id>.txt: {shown}")
  for clip_id in present:
    yield load_clip(root, clip_id, dim)
