"""Evaluation throughput: T2M evaluator embeddings/s (JAX vs a PyTorch re-statement, the baseline)
and the time of one protocol replication on the embedded DeepMimic test split.

  python benchmarks/evaluation.py                     # evaluator + replication (GT "generator")
  python benchmarks/evaluation.py --workdir runs/projector   # replication with real generation
Random evaluator weights (the speed does not depend on them); motions of 196 frames, captions of
22 tokens. The replication without --workdir times data, embeddings and metrics only (its
generator returns the ground truth), i.e. the protocol's own overhead.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def _time(fn, repeats: int) -> float:
  fn()
  t = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - t) / repeats


def evaluator_rows(batch: int, frames: int, repeats: int) -> list[tuple[str, float, float]]:
  from lead_jax.metrics import t2m_evaluator as te
  params = jax.device_put(te.init_params(jax.random.key(0)))
  rng = np.random.default_rng(0)
  feats = jnp.asarray(rng.normal(size=(batch, frames, 263)), jnp.float32)
  lengths = jnp.asarray(rng.integers(40, frames + 1, size=batch) // 4 * 4, jnp.int32)
  words = jnp.asarray(rng.normal(size=(batch, 22, 300)), jnp.float32)
  pos = jnp.asarray(np.eye(15)[rng.integers(0, 15, size=(batch, 22))], jnp.float32)
  sent = jnp.asarray(rng.integers(4, 23, size=batch), jnp.int32)
  t_m = _time(lambda: te.motion_embeddings(params, feats, lengths).block_until_ready(), repeats)
  t_t = _time(lambda: te.text_embeddings(params, words, pos, sent).block_until_ready(), repeats)
  rows = [("jax motion", batch / t_m, t_m * 1e3), ("jax text", batch / t_t, t_t * 1e3)]
  try:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence
  except ImportError:
    return rows
  torch.set_num_threads(os.cpu_count() or 1)
  conv = nn.Sequential(nn.Conv1d(259, 512, 4, 2, 1), nn.LeakyReLU(0.2),
                       nn.Conv1d(512, 512, 4, 2, 1), nn.LeakyReLU(0.2)).eval()
  lin, emb = nn.Linear(512, 512), nn.Linear(512, 1024)
  gru = nn.GRU(1024, 1024, batch_first=True, bidirectional=True)
  head = nn.Sequential(nn.Linear(2048, 1024), nn.LayerNorm(1024), nn.LeakyReLU(0.2),
                       nn.Linear(1024, 512))
  tf = torch.as_tensor(np.asarray(feats))
  lens = np.asarray(lengths)
  order = np.argsort(-lens)

  def torch_motion():
    with torch.no_grad():
      x = lin(conv(tf[order, :, :-4].permute(0, 2, 1)).permute(0, 2, 1))
      packed = pack_padded_sequence(emb(x), torch.as_tensor(lens[order] // 4), batch_first=True)
      _, h = gru(packed, torch.zeros(2, batch, 1024))
      head(torch.cat([h[0], h[1]], -1))

  t_torch = _time(torch_motion, repeats)
  rows.append(("torch motion (baseline)", batch / t_torch, t_torch * 1e3))
  return rows


def replication_row(workdir: str | None, data_dir: str | None) -> tuple[str, float, int]:
  import ml_collections
  from configs import common
  from lead_jax.data import datasets, layout
  from lead_jax.evaluation import protocol
  from lead_jax.metrics import trainable_evaluator as tev
  root = datasets.ensure_deepmimic(data_dir)
  mean, std = layout.load_stats(root)
  cfg = ml_collections.ConfigDict({"data": {"builder": "motion_folder", "dir": str(root),
                                            "batch_size": 32, "prefetch": 0, "min_len": 40,
                                            "max_len": 196}})
  nfeats = int(mean.shape[0])
  model = tev.build({**common.evaluator_config(nfeats, 384), "movement_hidden": 128,
                     "movement_out": 128, "motion_hidden": 256, "text_hidden": 256,
                     "output_dim": 128})
  embedder = protocol.TrainedEmbedder(
      tev.TrainedEvaluator(model, tev.init_params(model, jax.random.key(0))), mean, std)

  class _Hash:
    embed_dim = 384

    def encode(self, texts):
      return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=384)
                       for t in texts]).astype(np.float32)

  if workdir:
    from lead_jax.generate import Pipeline
    pipe = Pipeline.from_workdir(workdir)
    text_encoder = pipe.text_encoder
    methods = {"LEAD": protocol.pipeline_generator(pipe, pipe.has_projector)}
    label = "replication (generation included)"
  else:
    text_encoder = _Hash()
    gt = {}
    methods = {"gt": lambda c, l, k: gt["x"][:len(c)]}
    label = "replication (GT generator: protocol overhead)"
  batches = protocol.stream_batches(cfg, text_encoder)
  split = protocol.collect_split(batches(0), mean, std)
  gt["x"] = split.gt_features if not workdir else None
  settings = protocol.ProtocolSettings(replications=1, mm_prompts=0)
  protocol.evaluate(embedder, batches, methods, settings, mean, std)   # compile
  t = time.perf_counter()
  protocol.evaluate(embedder, batches, methods, settings, mean, std)
  return label, time.perf_counter() - t, len(split.lengths)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--frames", type=int, default=196)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--workdir", default=None)
  parser.add_argument("--data-dir", default=None)
  args = parser.parse_args()
  print(f"T2M evaluator, batch {args.batch}, {args.frames} frames, {jax.devices()[0].platform}")
  print(f"{'path':28s} {'embeddings/s':>14s} {'ms/batch':>10s}")
  for name, rate, ms in evaluator_rows(args.batch, args.frames, args.repeats):
    print(f"{name:28s} {rate:14.1f} {ms:10.1f}")
  label, seconds, n = replication_row(args.workdir, args.data_dir)
  print(f"\n{label}: {seconds:.2f} s for {n} test examples (DeepMimic, trainable evaluator "
        f"128-d)")


if __name__ == "__main__":
  main()
