"""Text-encoder throughput: our jitted Flax encoders vs the transformers torch models (baseline).

  python benchmarks/text_encoders.py [--batch 32] [--repeats 5]

MiniLM uses the installed all-MiniLM-L6-v2 weights; CLIP uses the ViT-L/14 text config with random
weights (the real weights are not shipped), the same random weights in both frameworks.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np


def _time(fn, repeats: int) -> float:
  fn()  # warm-up / compile
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - start) / repeats


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  import torch
  import transformers
  from lead_jax.text import clip, load_text_encoder, minilm
  from lead_jax.text.base import TokenBatch

  prompts = [f"a person walks forward and turns {'left ' * (i % 5)}" for i in range(args.batch)]
  rows = []

  encoder = load_text_encoder("minilm")
  model = transformers.BertModel.from_pretrained(str(minilm.minilm_package_dir())).eval()
  def torch_minilm():
    batch = encoder.tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
      h = model(**batch).last_hidden_state
    w = batch["attention_mask"][..., None].float()
    return torch.nn.functional.normalize((h * w).sum(1) / w.sum(1), dim=-1)
  rows.append(("minilm", _time(lambda: encoder.encode(prompts), args.repeats),
               _time(torch_minilm, args.repeats)))

  config = clip.CLIPTextConfig()
  module = clip.CLIPTextTransformer(config)
  ids = np.zeros((1, 77), np.int32)
  params = jax.jit(module.init)(jax.random.key(0), ids, ids, np.zeros((1,), np.int32))["params"]
  # Random-weight ViT-L/14 text tower with a real-size tokenizer-free batch of 77 tokens.
  rng = np.random.default_rng(0)
  batch_ids = rng.integers(0, 49406, (args.batch, 77)).astype(np.int32)
  eos = rng.integers(5, 20, args.batch).astype(np.int32)
  batch_ids[np.arange(args.batch), eos] = 49407
  batch = TokenBatch(ids=batch_ids, attention_mask=np.ones_like(batch_ids), eos_index=eos)
  forward = jax.jit(lambda p, b: module.apply({"params": p}, b.ids, b.attention_mask, b.eos_index)[0])
  ours = _time(lambda: np.asarray(forward(params, batch)), args.repeats)
  torch_config = transformers.CLIPTextConfig(projection_dim=768, hidden_size=768, intermediate_size=3072,
                                             num_hidden_layers=12, num_attention_heads=12)
  torch_model = transformers.CLIPTextModelWithProjection(torch_config).eval()
  ids_t = torch.as_tensor(batch_ids, dtype=torch.long)
  def torch_clip():
    with torch.no_grad():
      return torch_model(input_ids=ids_t).text_embeds
  rows.append(("clip-vit-l14 text (L=77)", ours, _time(torch_clip, args.repeats)))

  print(f"batch {args.batch}, {args.repeats} repeats, {jax.devices()[0].platform}")
  print(f"{'encoder':28s} {'ours (ms)':>10s} {'torch (ms)':>11s} {'ratio':>6s}")
  for name, t_ours, t_torch in rows:
    print(f"{name:28s} {1e3 * t_ours:10.1f} {1e3 * t_torch:11.1f} {t_torch / t_ours:6.2f}")


if __name__ == "__main__":
  main()
