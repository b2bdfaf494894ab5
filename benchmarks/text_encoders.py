"""Text-encoder throughput: our jitted Flax encoders vs the transformers torch models (baseline).

  python benchmarks/text_encoders.py [--batch 32] [--repeats 5]
  python benchmarks/text_encoders.py --captions 512      # a caption cache: packed vs padded

MiniLM uses the installed all-MiniLM-L6-v2 weights; CLIP uses the ViT-L/14 text config with random
weights (the real weights are not shipped), the same random weights in both frameworks.

`--captions N` times what building a caption-embedding cache waits for (`TextEncoder.encode` over N
distinct captions, 64 per call, tokenisation included): ours packed (the default), ours padded
(`packed=False`: every call at the longest caption's power-of-two bucket) and torch padded as
MLD encodes (77 tokens for CLIP; the longest caption for MiniLM). The captions are random
HumanML3D-like sentences (a subject, then 4-38 words from a motion vocabulary, ~12 on average,
a long tail as the dataset's), so prompts share little beyond their first words.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np


def _time(fn, repeats: int) -> float:
  fn()  # warm-up / compile
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - start) / repeats


SUBJECTS = ("a person", "a man", "a woman", "someone", "the person", "a figure", "the man", "a human")
WORDS = ("walks forward turns around and back slowly quickly jumps up down twice raises right left "
         "hand arm leg foot waves runs in a circle while holding the rail stairs sits on chair "
         "stands kicks steps sideways crouches picks something from floor places it table dances "
         "happily swinging arms side to stumbles regains balance cartwheel zigzag bends touches "
         "toes boxing punching with both fists jogs stops abruptly ground swims breaststroke air "
         "claps hands above head three times backward carefully hops lifts heavy box carries "
         "stretches upward over his her their as if signalling far away looking at phone performs "
         "roundhouse kick drinks cup balances one spread out climbs obstacle like zombie then "
         "again before after moves body forward leans shakes nods spins jumping jacks").split()


def torch_mean_pool(model, tokenizer, texts: list[str]):
  """sentence-transformers' MiniLM feature in torch (the baseline): masked mean, L2-normalised,
  padded to the batch's longest text."""
  import torch  # pylint: disable=import-outside-toplevel
  batch = tokenizer(texts, padding=True, return_tensors="pt")
  with torch.no_grad():
    h = model(**batch).last_hidden_state
  w = batch["attention_mask"][..., None].float()
  return torch.nn.functional.normalize((h * w).sum(1) / w.sum(1), dim=-1)


def random_captions(count: int, seed: int = 0) -> list[str]:
  """`count` distinct HumanML3D-like captions: a subject and 4-38 motion words (~12 on average)."""
  rng = np.random.default_rng(seed)
  out = set()
  while len(out) < count:
    words = min(4 + int(rng.gamma(2.0, 4.0)), 38)
    body = " ".join(rng.choice(WORDS, words))
    out.add(f"{SUBJECTS[rng.integers(len(SUBJECTS))]} {body}.")
  return sorted(out, key=lambda _: rng.random())


def caption_cache(count: int) -> None:
  """Seconds to encode `count` distinct captions: packed, padded, torch (see the docstring)."""
  import tempfile  # pylint: disable=import-outside-toplevel
  import pathlib  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
  from sampling import write_clip_l  # pylint: disable=import-outside-toplevel
  from lead_jax.text import load_text_encoder, minilm  # pylint: disable=import-outside-toplevel
  captions = random_captions(count)
  rows = []
  minilm_enc = load_text_encoder("minilm")
  bert = transformers.BertModel.from_pretrained(str(minilm.minilm_package_dir())).eval()

  def torch_minilm():
    for start in range(0, count, 64):
      torch_mean_pool(bert, minilm_enc.tokenizer, captions[start:start + 64])
  with tempfile.TemporaryDirectory() as tmp:
    clip_torch, tokenizer = write_clip_l(pathlib.Path(tmp))
    clip_enc = load_text_encoder("clip", pathlib.Path(tmp))

    def torch_clip():
      for start in range(0, count, 64):
        ids = tokenizer(captions[start:start + 64], padding="max_length", truncation=True,
                        max_length=77, return_tensors="pt")
        with torch.no_grad():
          clip_torch(**ids).text_embeds
    for name, encoder, baseline in (("minilm", minilm_enc, torch_minilm),
                                    ("clip-vit-l14 text", clip_enc, torch_clip)):
      batch = encoder.tokenize(captions)
      lengths = encoder.token_lengths(batch)
      padded_width = encoder.trim(batch).ids.shape[1]
      times = {}
      for mode, fn in (("packed", lambda: encoder.encode(captions)),
                       ("padded", lambda: encoder.encode(captions, packed=False))):
        fn()  # compile every shape
        start = time.perf_counter()
        fn()
        times[mode] = time.perf_counter() - start
      start = time.perf_counter()
      baseline()
      times["torch"] = time.perf_counter() - start
      rows.append((name, lengths, padded_width, times))
  print(f"caption cache: {count} distinct captions, 64 per call, {jax.devices()[0].platform}; "
        f"load average {os.getloadavg()[0]:.1f}")
  print(f"{'encoder':20s} {'tokens mean/max':>15s} {'padded to':>9s} {'packed s':>8s} "
        f"{'padded s':>8s} {'torch s':>8s} {'packed/padded':>13s} {'packed/torch':>12s}")
  for name, lengths, width, t in rows:
    print(f"{name:20s} {lengths.mean():9.1f}/{lengths.max():<5d} {width:9d} {t['packed']:8.2f} "
          f"{t['padded']:8.2f} {t['torch']:8.2f} {t['padded'] / t['packed']:12.2f}x "
          f"{t['torch'] / t['packed']:11.2f}x")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--captions", type=int, default=0,
                      help="time a caption cache of this many captions instead")
  args = parser.parse_args()
  if args.captions:
    caption_cache(args.captions)
    return
  import torch
  import transformers
  from lead_jax.text import clip, load_text_encoder, minilm
  from lead_jax.text.base import TokenBatch

  prompts = [f"a person walks forward and turns {'left ' * (i % 5)}" for i in range(args.batch)]
  rows = []

  encoder = load_text_encoder("minilm")
  model = transformers.BertModel.from_pretrained(str(minilm.minilm_package_dir())).eval()
  rows.append(("minilm", _time(lambda: encoder.encode(prompts), args.repeats),
               _time(lambda: torch_mean_pool(model, encoder.tokenizer, prompts), args.repeats)))

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
