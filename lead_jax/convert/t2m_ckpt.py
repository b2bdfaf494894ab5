"""Import the published T2M evaluator (`finest.tar`) and the GloVe word vectorizer.

`load_t2m_checkpoint(path)` reads `finest.tar` (keys `text_encoder`, `movement_encoder`,
`motion_encoder`; reference.md section 8.1) and returns the parameter tree
`{'movement', 'motion', 'text'}` of `lead_jax.metrics.t2m_evaluator`. Strict: a missing,
unexpected or mis-shaped tensor raises `WeightsError` naming it. The feature width (263 for
HumanML3D, 251 for KIT-ML) is read from the first convolution.

Mapping: Conv1d `weight (out, in, k)` -> `kernel (k, in, out)`; Linear `weight (out, in)` ->
`kernel (in, out)`; LayerNorm `weight` -> `scale`; GRU `weight_ih_l0 (3H, F)` -> `forward_w_ih
(F, 3H)` (and `_reverse` -> `backward_*`), biases unchanged; learned initial state
`hidden (2, 1, H)` -> `gru/hidden (2, H)`; `output_net.{0,1,3}` -> `dense_0`, `norm`, `dense_1`.

`WordVectorizer(glove_dir)` reads the user's GloVe files `our_vab_{data.npy,words.pkl,idx.pkl}`
and turns `word/POS` tokens into 300-d vectors and 15-way POS one-hots with T2M's VIP-word
overrides (reference.md section 7.5).

  params = load_t2m_checkpoint("deps/t2m/t2m/text_mot_match/model/finest.tar")
  wv = WordVectorizer("deps/glove")
  word_emb, pos_onehot, sent_len = wv.encode_tokens(["a/DET", "man/NOUN", "walk/VERB"])

`import_t2m_evaluator(finest, glove, mean, std, out)` (`lead-jax import t2m-evaluator`) writes
all of it into one directory - the evaluator's parameters (`params.npz`), its statistics
(`mean.npy`, `std.npy`), the GloVe vectors and vocabulary (`glove_vectors.npy`,
`glove_words.json`; no pickle) and `evaluator.json` - that `load_t2m_evaluator_dir` (and
`lead-jax evaluate --evaluator DIR`) reads.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import shutil
import tempfile
from typing import Any, Mapping, Sequence

import numpy as np

from lead_jax.convert.torch_files import (flatten_tree, load_torch_file, tensor_to_float32,
                                          unflatten_tree)
from lead_jax.errors import InputError, MissingFileError, WeightsError
from lead_jax.metrics.t2m_evaluator import T2MEvaluator

CHECKPOINT_KEYS = ("text_encoder", "movement_encoder", "motion_encoder")
EVALUATOR_HINT = (
    "The T2M evaluator comes from the MLD download script prepare/download_t2m_evaluators.sh "
    "(t2m.tar.gz, gdown id 1AYsmEG8I3fAAoraT4vau0GnesWBWyeT8) or MotionLCM's "
    "prepare/download_t2m_evaluators.sh (t2m.zip); it unpacks to deps/t2m/t2m/text_mot_match/"
    "model/finest.tar (KIT: deps/t2m/kit/...). Pass that file with --evaluator.")
GLOVE_HINT = (
    "The GloVe files come from MLD's prepare/download_glove.sh (or MotionLCM's, gdown id "
    "1cmXKUT31pqd7_XpJAiWEo1K81TMYHA5n) and unpack to deps/glove/; pass that folder as the "
    "GloVe directory.")

# Part-of-speech one-hot layout of the T2M evaluator (15 classes).
POS_ENUMERATOR: dict[str, int] = {
    "VERB": 0, "NOUN": 1, "DET": 2, "ADP": 3, "NUM": 4, "AUX": 5, "PRON": 6, "ADJ": 7, "ADV": 8,
    "Loc_VIP": 9, "Body_VIP": 10, "Obj_VIP": 11, "Act_VIP": 12, "Desc_VIP": 13, "OTHER": 14,
}
# Words whose POS class is overridden by a "very important" class, checked in this order.
VIP_WORDS: dict[str, frozenset[str]] = {
    "Loc_VIP": frozenset("left right clockwise counterclockwise anticlockwise forward back "
                         "backward up down straight curve".split()),
    "Body_VIP": frozenset("arm chin foot feet face hand mouth leg waist eye knee shoulder "
                          "thigh".split()),
    "Obj_VIP": frozenset("stair dumbbell chair window floor car ball handrail baseball "
                         "basketball".split()),
    "Act_VIP": frozenset("walk run swing pick bring kick put squat throw hop dance jump turn "
                         "stumble stop sit lift lower raise wash stand kneel stroll rub bend "
                         "balance flap jog shuffle lean rotate spin spread climb".split()),
    "Desc_VIP": frozenset("slowly carefully fast careful slow quickly happy angry sad happily "
                          "angrily sadly".split()),
}
MAX_TEXT_LEN = 20


def _linear(prefix: str, out_dim: int, in_dim: int) -> dict[str, tuple[int, ...]]:
  return {f"{prefix}.weight": (out_dim, in_dim), f"{prefix}.bias": (out_dim,)}


def _bigru(in_dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
  shapes = {}
  for suffix in ("", "_reverse"):
    shapes[f"gru.weight_ih_l0{suffix}"] = (3 * hidden, in_dim)
    shapes[f"gru.weight_hh_l0{suffix}"] = (3 * hidden, hidden)
    shapes[f"gru.bias_ih_l0{suffix}"] = (3 * hidden,)
    shapes[f"gru.bias_hh_l0{suffix}"] = (3 * hidden,)
  shapes["hidden"] = (2, 1, hidden)
  return shapes


def _head(hidden: int, out_dim: int) -> dict[str, tuple[int, ...]]:
  return {**_linear("output_net.0", hidden, 2 * hidden),
          "output_net.1.weight": (hidden,), "output_net.1.bias": (hidden,),
          **_linear("output_net.3", out_dim, hidden)}


def expected_torch_shapes(dim_pose: int = 263) -> dict[str, dict[str, tuple[int, ...]]]:
  """PyTorch state-dict names and shapes of the three evaluator networks."""
  movement = {"main.0.weight": (512, dim_pose - 4, 4), "main.0.bias": (512,),
              "main.3.weight": (512, 512, 4), "main.3.bias": (512,),
              **_linear("out_net", 512, 512)}
  motion = {**_linear("input_emb", 1024, 512), **_bigru(1024, 1024), **_head(1024, 512)}
  text = {**_linear("pos_emb", 300, 15), **_linear("input_emb", 512, 300), **_bigru(512, 512),
          **_head(512, 512)}
  return {"movement_encoder": movement, "motion_encoder": motion, "text_encoder": text}


_HEAD_NAMES = {"0": "dense_0", "1": "norm", "3": "dense_1"}


def _to_flax(key: str, value: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
  parts = key.split(".")
  if key == "hidden":
    return ("gru", "hidden"), value.reshape(value.shape[0], value.shape[-1])
  if parts[0] == "gru":
    kind, _, rest = parts[1].partition("_")               # weight_ih_l0[_reverse]
    gate = rest.split("_")[0]                               # ih / hh
    direction = "backward" if parts[1].endswith("_reverse") else "forward"
    name = f"{direction}_{'w' if kind == 'weight' else 'b'}_{gate}"
    return ("gru", name), (value.T if kind == "weight" else value)
  if parts[0] == "main":                                    # Conv1d
    path = (f"conv_{0 if parts[1] == '0' else 1}",)
    leaf = parts[2]
    return path + (("kernel",) if leaf == "weight" else ("bias",)), \
        (value.transpose(2, 1, 0) if leaf == "weight" else value)
  if parts[0] == "output_net":
    path = ("output_net", _HEAD_NAMES[parts[1]])
    leaf = parts[2]
    if parts[1] == "1":
      return path + ("scale" if leaf == "weight" else "bias",), value
  else:
    path, leaf = (parts[0],), parts[1]
  return path + (("kernel",) if leaf == "weight" else ("bias",)), \
      (value.T if leaf == "weight" else value)


def state_dicts_to_params(checkpoint: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """`{'text_encoder': sd, 'movement_encoder': sd, 'motion_encoder': sd}` -> evaluator params."""
  missing_sections = [k for k in CHECKPOINT_KEYS if k not in checkpoint]
  if missing_sections:
    raise WeightsError(f"T2M evaluator checkpoint lacks {missing_sections}; found keys "
                       f"{sorted(checkpoint)[:12]}")
  conv = checkpoint["movement_encoder"].get("main.0.weight")
  if conv is None or len(np.shape(conv)) != 3:
    raise WeightsError("movement_encoder.main.0.weight: expected a Conv1d weight "
                       f"(512, D-4, 4), found {None if conv is None else np.shape(conv)}")
  expected = expected_torch_shapes(int(np.shape(conv)[1]) + 4)
  problems: list[str] = []
  params = {}
  for section, flax_name in (("movement_encoder", "movement"), ("motion_encoder", "motion"),
                             ("text_encoder", "text")):
    sd, want = checkpoint[section], expected[section]
    problems += [f"missing {section}.{k} {want[k]}" for k in want if k not in sd]
    problems += [f"unexpected {section}.{k}" for k in sd if k not in want]
    problems += [f"{section}.{k}: expected shape {want[k]}, found {tuple(np.shape(v))}"
                 for k, v in sd.items() if k in want and tuple(np.shape(v)) != want[k]]
    if not problems:
      params[flax_name] = unflatten_tree(dict(_to_flax(k, tensor_to_float32(v)) for k, v in sd.items()))
  if problems:
    more = f" (+{len(problems) - 12} more)" if len(problems) > 12 else ""
    raise WeightsError("T2M evaluator checkpoint does not match the architecture: "
                       + "; ".join(problems[:12]) + more)
  return params


def load_t2m_checkpoint(path: str | pathlib.Path) -> dict[str, Any]:
  """`finest.tar` -> evaluator params `{'movement', 'motion', 'text'}` (float32 NumPy leaves)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"T2M evaluator checkpoint not found: {path}. {EVALUATOR_HINT}")
  ckpt = load_torch_file(path)
  if not isinstance(ckpt, Mapping):
    raise WeightsError(f"{path}: expected a dict with keys {list(CHECKPOINT_KEYS)}, found "
                       f"{type(ckpt).__name__}")
  try:
    return state_dicts_to_params(ckpt)
  except WeightsError as e:
    raise WeightsError(f"{path}: {e}") from None


def load_eval_stats(mean_path: str | pathlib.Path, std_path: str | pathlib.Path
                    ) -> tuple[np.ndarray, np.ndarray]:
  """The evaluator's feature mean/std `[D]` (e.g. `Comp_v6_KLD01/meta/{mean,std}.npy`)."""
  out = []
  for p in (pathlib.Path(mean_path), pathlib.Path(std_path)):
    if not p.is_file():
      raise MissingFileError(f"evaluator statistics not found: {p}. They ship with the T2M "
                             f"evaluator (deps/t2m/t2m/Comp_v6_KLD01/meta/{{mean,std}}.npy). "
                             f"{EVALUATOR_HINT}")
    out.append(np.load(p).astype(np.float32))
  if out[0].ndim != 1 or out[0].shape != out[1].shape or np.any(out[1] <= 0):
    raise InputError(f"{mean_path}, {std_path}: expected two [D] arrays with positive std, "
                     f"found {out[0].shape} and {out[1].shape}")
  return out[0], out[1]


def load_t2m_evaluator(checkpoint: str | pathlib.Path, eval_mean: str | pathlib.Path,
                      eval_std: str | pathlib.Path, dataset: str = "humanml3d") -> T2MEvaluator:
  """The published evaluator: `finest.tar` and its statistics `.npy` files."""
  params = load_t2m_checkpoint(checkpoint)
  mean, std = load_eval_stats(eval_mean, eval_std)
  evaluator = T2MEvaluator(params, mean, std, dataset)
  if mean.shape != (evaluator.dim_pose,):
    raise WeightsError(f"{eval_mean}: expected shape ({evaluator.dim_pose},) to match the "
                       f"evaluator in {checkpoint}, found {mean.shape}")
  return evaluator


def pos_onehot(pos: str) -> np.ndarray:
  """15-way one-hot of a POS tag (unknown tags -> OTHER)."""
  vec = np.zeros(len(POS_ENUMERATOR), np.float32)
  vec[POS_ENUMERATOR.get(pos, POS_ENUMERATOR["OTHER"])] = 1.0
  return vec


class WordVectorizer:
  """GloVe vectors (300-d) and POS one-hots (15) for `word/POS` tokens, as the T2M evaluator saw."""

  FILES = ("{p}_data.npy", "{p}_words.pkl", "{p}_idx.pkl")

  def __init__(self, glove_dir: str | pathlib.Path, prefix: str = "our_vab"):
    """Reads T2M's GloVe files `<prefix>_{data.npy, words.pkl, idx.pkl}` in `glove_dir`."""
    glove_dir = pathlib.Path(glove_dir)
    paths = [glove_dir / f.format(p=prefix) for f in self.FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
      raise MissingFileError(f"GloVe files missing in {glove_dir}: {', '.join(missing)}. "
                             f"{GLOVE_HINT}")
    with open(paths[1], "rb") as f:
      words = pickle.load(f)
    with open(paths[2], "rb") as f:
      word2idx = pickle.load(f)
    self._set(np.load(paths[0]), {w: word2idx.get(w, -1) for w in words}, str(paths[2]))

  @classmethod
  def from_arrays(cls, vectors: np.ndarray, word2idx: Mapping[str, int],
                  where: str = "<arrays>") -> "WordVectorizer":
    """From vectors `[V, 300]` and `{word: row}` (the form `import_t2m_evaluator` stores)."""
    self = cls.__new__(cls)
    self._set(vectors, word2idx, where)
    return self

  def _set(self, vectors: np.ndarray, word2idx: Mapping[str, int], where: str) -> None:
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2:
      raise InputError(f"{where}: GloVe vectors must be [num_words, 300], found {vectors.shape}")
    bad = [w for w, i in word2idx.items() if not 0 <= int(i) < len(vectors)]
    if bad or "unk" not in word2idx:
      raise InputError(f"{where}: no valid index for {bad[:5] or ['unk']}")
    self.vectors = vectors
    self.word2idx = {w: int(i) for w, i in word2idx.items()}

  def __len__(self) -> int:
    return len(self.word2idx)

  @property
  def dim(self) -> int:
    return int(self.vectors.shape[1])

  def __getitem__(self, token: str) -> tuple[np.ndarray, np.ndarray]:
    """`'word/POS'` -> (vector [300], one-hot [15]); unknown words -> (unk, OTHER)."""
    word, _, pos = token.partition("/")
    if word not in self.word2idx:
      return self.vectors[self.word2idx["unk"]], pos_onehot("OTHER")
    for vip, members in VIP_WORDS.items():
      if word in members:
        pos = vip
        break
    return self.vectors[self.word2idx[word]], pos_onehot(pos)

  def encode_tokens(self, tokens: Sequence[str], max_text_len: int = MAX_TEXT_LEN
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """`['word/POS', ...]` -> word `[L+2, 300]`, POS `[L+2, 15]`, sent_len (sos/eos included).

    Tokens are cut to `max_text_len`, wrapped in `sos/OTHER` ... `eos/OTHER` and padded with
    `unk/OTHER` to `max_text_len + 2` (MLD `Text2MotionDatasetV2`).
    """
    toks = ["sos/OTHER"] + list(tokens)[:max_text_len] + ["eos/OTHER"]
    sent_len = len(toks)
    toks += ["unk/OTHER"] * (max_text_len + 2 - sent_len)
    pairs = [self[t] for t in toks]
    return (np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), sent_len)

  def encode_batch(self, token_lists: Sequence[Sequence[str]], max_text_len: int = MAX_TEXT_LEN
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many token lists -> word `[B, L+2, 300]`, POS `[B, L+2, 15]`, sent_lens `[B]`."""
    enc = [self.encode_tokens(t, max_text_len) for t in token_lists]
    return (np.stack([e[0] for e in enc]), np.stack([e[1] for e in enc]),
            np.array([e[2] for e in enc], np.int32))


EVALUATOR_FILE = "evaluator.json"


def import_t2m_evaluator(checkpoint: str | os.PathLike, glove_dir: str | os.PathLike,
                         eval_mean: str | os.PathLike, eval_std: str | os.PathLike,
                         out_dir: str | os.PathLike, dataset: str = "humanml3d") -> pathlib.Path:
  """Writes the published evaluator (`finest.tar`, its statistics, the GloVe files) into one
  directory that `load_t2m_evaluator_dir` reads; written to a temporary folder first, so a failed
  import leaves nothing behind. Returns `out_dir`."""
  evaluator = load_t2m_evaluator(checkpoint, eval_mean, eval_std, dataset)
  words = WordVectorizer(glove_dir)
  out = pathlib.Path(out_dir)
  if out.exists() and any(out.iterdir()):
    raise InputError(f"{out} exists and is not empty; choose a new folder for the evaluator")
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
  try:
    np.savez(tmp / "params.npz", **{"/".join(k): np.asarray(v) for k, v in
                                    flatten_tree(evaluator.params).items()})
    np.save(tmp / "mean.npy", evaluator.eval_mean)
    np.save(tmp / "std.npy", evaluator.eval_std)
    np.save(tmp / "glove_vectors.npy", words.vectors)
    (tmp / "glove_words.json").write_text(json.dumps(words.word2idx))
    (tmp / EVALUATOR_FILE).write_text(json.dumps({
        "kind": "t2m", "dataset": dataset, "dim_pose": evaluator.dim_pose,
        "source": {"checkpoint": str(pathlib.Path(checkpoint).resolve()),
                   "glove": str(pathlib.Path(glove_dir).resolve()),
                   "mean": str(pathlib.Path(eval_mean).resolve()),
                   "std": str(pathlib.Path(eval_std).resolve())}}, indent=1))
    if out.exists():
      out.rmdir()
    os.replace(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return out


def is_t2m_evaluator_dir(path: str | os.PathLike) -> bool:
  return (pathlib.Path(path) / EVALUATOR_FILE).is_file()


def load_t2m_evaluator_dir(path: str | os.PathLike) -> tuple[T2MEvaluator, WordVectorizer]:
  """The evaluator and word vectorizer an `import_t2m_evaluator` directory holds."""
  path = pathlib.Path(path)
  if not is_t2m_evaluator_dir(path):
    raise MissingFileError(f"{path} is not an imported T2M evaluator (no {EVALUATOR_FILE}); "
                           "create one with `lead-jax import t2m-evaluator FINEST_TAR --glove DIR "
                           f"--mean MEAN.npy --std STD.npy --out DIR`. {EVALUATOR_HINT}")
  info = json.loads((path / EVALUATOR_FILE).read_text())
  if info.get("kind") != "t2m":
    raise InputError(f"{path / EVALUATOR_FILE}: kind {info.get('kind')!r}, expected 't2m'")
  with np.load(path / "params.npz") as archive:
    params = unflatten_tree({tuple(k.split("/")): np.asarray(archive[k]) for k in archive.files})
  evaluator = T2MEvaluator(params, np.load(path / "mean.npy"), np.load(path / "std.npy"),
                           info["dataset"])
  words = WordVectorizer.from_arrays(np.load(path / "glove_vectors.npy"),
                                     json.loads((path / "glove_words.json").read_text()),
                                     str(path / "glove_words.json"))
  return evaluator, words
