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

from lead_jax.convert.torch_files import (flatten_tree, load_torch_file, short_list,
                                          tensor_to_float32, unflatten_tree)
from lead_jax.errors import MissingFileError, WeightsError

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
  blocks = {int(m.group(1)) for k in state for m in [re.match(re.escape(prefix) + r"input_blocks\.(\d+)\.", k)] if m}
  ff = state.get(prefix + "middle_block.linear1.weight")
  sizes = {"num_layers": 2 * len(blocks) + 1}
  if ff is not None and ff.ndim == 2:
    sizes["ff_size"] = ff.shape[0]
  return sizes


def _expected(section: str, state: Mapping[str, np.ndarray], num_heads: int):
  """Abstract params of the module the checkpoint's shapes describe (layer count and FFN width
  are read from the keys; everything else is checked against them)."""
  import jax  # local: keeps `import lead_jax.convert.mld_ckpt` cheap
  from lead_jax.models import factory
  sizes = _stack_sizes(section, state)
  if section == "vae":
    w = state.get("vae.skel_embedding.weight")
    if w is None or w.ndim != 2:
      raise WeightsError("checkpoint has no 2-D vae.skel_embedding.weight; is it an MLD checkpoint?")
    latent = w.shape[0]
    module = factory.MotionVAE(nfeats=w.shape[1], latent_dim=latent, num_heads=num_heads, **sizes,
                               max_len=state["vae.query_pos_encoder.pe"].shape[0]
                               if "vae.query_pos_encoder.pe" in state else 500)
  else:
    w = state.get("denoiser.emb_proj.1.weight")
    t = state.get("denoiser.time_embedding.linear_1.weight")
    if w is None or w.ndim != 2 or t is None or t.ndim != 2:
      raise WeightsError("checkpoint lacks 2-D denoiser.emb_proj.1.weight / "
                         "denoiser.time_embedding.linear_1.weight")
    cond = state.get("denoiser.time_embedding.cond_proj.weight")
    module = factory.LatentDenoiser(
        text_dim=w.shape[1], latent_dim=w.shape[0], time_channels=t.shape[1], num_heads=num_heads,
        **sizes,
        cond_proj_dim=None if cond is None else cond.shape[1],
        max_len=state["denoiser.query_pos.pe"].shape[0] if "denoiser.query_pos.pe" in state else 500)
  name = "vae" if section == "vae" else "denoiser"
  return jax.tree_util.tree_map(lambda s: s.shape, factory.abstract_params(name, module))


def state_dict_to_params(state_dict: Mapping[str, Any], num_heads: int = 4
                         ) -> tuple[dict[str, Any], dict[str, Any] | None]:
  """MLD `state_dict` (torch tensors or arrays) -> `(vae_params, denoiser_params or None)`."""
  state = {k: tensor_to_float32(v) for k, v in state_dict.items()
           if not k.startswith(IGNORED_PREFIXES)}
  unexpected = sorted(k for k in state if not k.startswith(("vae.", "denoiser.")))
  results = []
  for section in ("vae", "denoiser"):
    keys = {k: v for k, v in state.items() if k.startswith(section + ".")}
    if section == "denoiser" and not keys:
      results.append(None)
      continue
    expected = flatten_tree(_expected(section, state, num_heads))
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


def load_state_dict(path: str | pathlib.Path, allow_pickle: bool = True) -> dict[str, Any]:
  """The `state_dict` of a Lightning `.ckpt` (or a bare state dict saved with torch.save).

  Tries `torch.load(weights_only=True)` first; Lightning checkpoints that also pickle
  hyper-parameter objects need `weights_only=False`, used only when `allow_pickle` (only load
  checkpoints you trust).
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


def load_mld_checkpoint(path: str | pathlib.Path, num_heads: int = 4, allow_pickle: bool = True
                        ) -> tuple[dict[str, Any], dict[str, Any] | None]:
  """MLD `.ckpt` -> `(vae_params, denoiser_params or None)` (numpy float32 leaves)."""
  try:
    return state_dict_to_params(load_state_dict(path, allow_pickle), num_heads)
  except WeightsError as e:
    raise WeightsError(f"{path}: {e}") from None
