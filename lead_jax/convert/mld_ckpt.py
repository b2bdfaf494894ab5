"""Import MLD's PyTorch Lightning checkpoint (`.ckpt`) into Flax parameter trees.

`load_mld_checkpoint(path)` reads the `state_dict` and returns `(vae_params, denoiser_params)`,
each the `params` collection of `MotionVAE` / `LatentDenoiser` (use as
`module.apply({'params': vae_params}, ...)`); `denoiser_params` is None for a VAE-only checkpoint
(no `denoiser.*` key). `state_dict_to_params(state_dict)` does the same for an in-memory dict.

Mapping (reference §10): Linear `weight (out, in)` -> `kernel (in, out)`; LayerNorm `weight` ->
`scale`; `nn.MultiheadAttention.in_proj_weight (3d, d)` -> `query/key/value` kernels
`W.T.reshape(d, H, d/H)` and `in_proj_bias` -> `(H, d/H)` biases; `out_proj.weight` ->
`out` kernel `W.T.reshape(H, d/H, d)`; learned PE `pe (500, 1, d)` -> `(500, d)`; module lists
`input_blocks.0` -> `input_blocks_0`; `denoiser.emb_proj.1` -> `emb_proj`. Dropped: the unused
`denoiser.mem_pos.pe`, text-encoder keys and the T2M evaluator sub-modules. Strict: missing,
unexpected or mis-shaped keys raise `WeightsError` listing them.

  vae_params, den_params = load_mld_checkpoint("1222_mld_humanml3d_FID041.ckpt")
"""

from __future__ import annotations

import pathlib
import re
from typing import Any, Mapping

import numpy as np

import jax

from lead_jax.convert.torch_files import (flatten_tree, load_torch_file, short_list,
                                          tensor_to_float32, unflatten_tree)
from lead_jax.errors import MissingFileError, WeightsError
from lead_jax.models import factory

IGNORED_PREFIXES = ("text_encoder.", "clip.", "t2m_textencoder.", "t2m_moveencoder.",
                    "t2m_motionencoder.", "denoiser.mem_pos.")
_ATTN = ("self_attn", "multihead_attn")


def _convert_key(key: str, value: np.ndarray, num_heads: int) -> dict[tuple[str, ...], np.ndarray]:
  """One PyTorch tensor -> `{flax path: array}` (several for a packed in-projection)."""
  key = re.sub(r"\.(\d+)\.", r"_\1.", key).replace("emb_proj_1.", "emb_proj.")
  parts = key.split(".")
  *module, leaf = parts
  if leaf == "global_motion_token":
    return {tuple(parts): value}
  if leaf == "pe":
    return {tuple(parts): value.reshape(value.shape[0], -1)}
  if module and module[-1] in _ATTN and leaf.startswith("in_proj_"):
    d = value.shape[1] if value.ndim == 2 else value.shape[0] // 3
    head = d // num_heads
    out = {}
    for name, chunk in zip(("query", "key", "value"), np.split(value, 3, axis=0)):
      if leaf == "in_proj_weight":
        out[tuple(module) + (name, "kernel")] = chunk.T.reshape(d, num_heads, head)
      else:
        out[tuple(module) + (name, "bias")] = chunk.reshape(num_heads, head)
    return out
  if module and module[-1] == "out_proj" and len(module) >= 2 and module[-2] in _ATTN:
    base = tuple(module[:-1]) + ("out",)
    if leaf == "weight":
      d = value.shape[0]
      return {base + ("kernel",): value.T.reshape(num_heads, d // num_heads, d)}
    return {base + ("bias",): value}
  if leaf == "weight":
    if value.ndim == 1:  # LayerNorm
      return {tuple(module) + ("scale",): value}
    return {tuple(module) + ("kernel",): value.T}
  return {tuple(parts): value}


def _stack_sizes(section: str, state: Mapping[str, np.ndarray]) -> dict[str, int]:
  """`num_layers` and `ff_size` of a skip stack, read from the checkpoint's keys and shapes."""
  prefix = f"{section}.encoder."
  blocks = {int(m.group(1)) for k in state
            for m in [re.match(re.escape(prefix) + r"input_blocks\.(\d+)\.", k)] if m}
  ff = state.get(prefix + "middle_block.linear1.weight")
  sizes = {"num_layers": 2 * len(blocks) + 1}
  if ff is not None and ff.ndim == 2:
    sizes["ff_size"] = int(ff.shape[0])
  return sizes


def infer_sections(state: Mapping[str, np.ndarray], num_heads: int = 4) -> dict[str, dict]:
  """The model config sections (`configs/common.py` schema: `vae`, and `denoiser` when the
  checkpoint has one) that a state dict's key names and shapes describe. Widths, layer counts,
  feed-forward sizes, text width and position tables are read; `num_heads` cannot be (MLD: 4);
  dropout is MLD's 0.1 (inactive at inference). MLD's released models are post-norm, which is
  what our modules implement: a state dict cannot tell pre- from post-norm."""
  w = state.get("vae.skel_embedding.weight")
  if w is None or w.ndim != 2:
    raise WeightsError("checkpoint has no 2-D vae.skel_embedding.weight; is it an MLD checkpoint?")
  pe = state.get("vae.query_pos_encoder.pe")
  sections = {"vae": {
      "nfeats": int(w.shape[1]), "latent_dim": int(w.shape[0]), "latent_size": 1,
      "ff_size": 1024, "num_heads": int(num_heads), "dropout": 0.1,
      "max_len": int(pe.shape[0]) if pe is not None else 500, **_stack_sizes("vae", state)}}
  if not any(k.startswith("denoiser.") for k in state):
    return sections
  w = state.get("denoiser.emb_proj.1.weight")
  t = state.get("denoiser.time_embedding.linear_1.weight")
  if w is None or w.ndim != 2 or t is None or t.ndim != 2:
    raise WeightsError("checkpoint lacks 2-D denoiser.emb_proj.1.weight / "
                       "denoiser.time_embedding.linear_1.weight")
  cond = state.get("denoiser.time_embedding.cond_proj.weight")
  pe = state.get("denoiser.query_pos.pe")
  sections["denoiser"] = {
      "text_dim": int(w.shape[1]), "latent_dim": int(w.shape[0]), "time_channels": int(t.shape[1]),
      "ff_size": 1024, "num_heads": int(num_heads), "dropout": 0.1,
      "max_len": int(pe.shape[0]) if pe is not None else 500, "flip_sin_to_cos": True,
      "freq_shift": 0.0, "cond_proj_dim": 0 if cond is None else int(cond.shape[1]),
      **_stack_sizes("denoiser", state)}
  return sections


def _expected(section: str, sections: Mapping[str, dict]) -> dict[str, Any]:
  """Parameter shapes of the module `sections[section]` describes."""
  build = factory.build_vae if section == "vae" else factory.build_denoiser
  return jax.tree_util.tree_map(lambda s: s.shape,
                                factory.abstract_params(section, build(sections[section])))


def state_dict_to_params(state_dict: Mapping[str, Any], num_heads: int = 4
                         ) -> tuple[dict[str, Any], dict[str, Any] | None]:
  """MLD `state_dict` (torch tensors or arrays) -> `(vae_params, denoiser_params or None)`."""
  state = {k: tensor_to_float32(v) for k, v in state_dict.items()
           if not k.startswith(IGNORED_PREFIXES)}
  unexpected = sorted(k for k in state if not k.startswith(("vae.", "denoiser.")))
  sections = infer_sections(state, num_heads)
  results = []
  for section in ("vae", "denoiser"):
    keys = {k: v for k, v in state.items() if k.startswith(section + ".")}
    if section == "denoiser" and not keys:
      results.append(None)
      continue
    expected = flatten_tree(_expected(section, sections))
    got: dict[tuple[str, ...], np.ndarray] = {}
    source: dict[tuple[str, ...], str] = {}
    for k, v in keys.items():
      for path, arr in _convert_key(k[len(section) + 1:], v, num_heads).items():
        got[path], source[path] = arr, k
    missing = sorted("/".join(p) for p in expected if p not in got)
    unexpected += sorted({source[p] for p in got if p not in expected})
    mismatched = sorted(f"{source[p]}: expected {tuple(expected[p])} after conversion, found "
                        f"{tuple(got[p].shape)} (from {tuple(keys[source[p]].shape)})"
                        for p in got if p in expected and tuple(got[p].shape) != tuple(expected[p]))
    if missing or mismatched:
      lines = []
      if missing:
        lines.append(f"missing {section} parameters: {short_list(missing)}")
      if mismatched:
        lines.append("shape mismatches: " + short_list(mismatched))
      if unexpected:
        lines.append(f"unexpected keys: {short_list(unexpected)}")
      raise WeightsError("MLD checkpoint does not fit the model: " + " | ".join(lines))
    results.append(unflatten_tree({p: got[p] for p in expected}))
  if unexpected:
    raise WeightsError(f"MLD checkpoint has unexpected keys: {short_list(unexpected)}")
  return results[0], results[1]


def load_state_dict(path: str | pathlib.Path, allow_pickle: bool = False) -> dict[str, Any]:
  """The `state_dict` of a Lightning `.ckpt` (or a bare state dict saved with torch.save).

  Read with `torch.load(weights_only=True)`; Lightning checkpoints that also pickle
  hyper-parameter objects (MLD's releases) need `weights_only=False`, used only when
  `allow_pickle` (only for checkpoints you trust; `lead-jax import mld --allow-pickle`).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"MLD checkpoint not found: {path}")
  ckpt = load_torch_file(path, allow_pickle)
  if isinstance(ckpt, Mapping) and "state_dict" in ckpt:
    ckpt = ckpt["state_dict"]
  if not isinstance(ckpt, Mapping):
    raise WeightsError(f"{path}: expected a dict with a 'state_dict', found {type(ckpt).__name__}")
  return dict(ckpt)


def load_mld_checkpoint(path: str | pathlib.Path, num_heads: int = 4, allow_pickle: bool = False
                        ) -> tuple[dict[str, Any], dict[str, Any] | None]:
  """MLD `.ckpt` -> `(vae_params, denoiser_params or None)` (numpy float32 leaves)."""
  return read_mld_checkpoint(path, num_heads, allow_pickle)[1]


def read_mld_checkpoint(path: str | pathlib.Path, num_heads: int = 4, allow_pickle: bool = False
                        ) -> tuple[dict[str, dict], tuple[dict[str, Any], dict[str, Any] | None]]:
  """MLD `.ckpt` -> (model config sections `infer_sections`, (vae_params, denoiser_params|None))."""
  try:
    state = load_state_dict(path, allow_pickle)
    kept = {k: tensor_to_float32(v) for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    return infer_sections(kept, num_heads), state_dict_to_params(state, num_heads)
  except WeightsError as e:
    raise WeightsError(f"{path}: {e}") from None
