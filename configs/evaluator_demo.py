"""Trainable text-motion evaluator (lead_jax/metrics/trainable_evaluator.py) on the embedded
DeepMimic default dataset, MiniLM captions; small sizes so it trains on a CPU in minutes. It
trains on all 15 clips (split 'all', batches of 8: the 'train' split has 7 clips), the clips the
demo's stages train on and `benchmarks/sampling.py --quality` scores.

  lead-jax train --config=configs/evaluator_demo.py --workdir=runs/evaluator_demo
Then: lead-jax evaluate --workdir runs/projector --evaluator runs/evaluator_demo --out eval/
Sizes: movement 128, motion GRU 256, text head 256, 128-d embeddings; T2M's margin 10.
"""

from configs import common, train_common


def get_config():
  config = common.base_config("humanml3d", "minilm", ())
  train_common.add_training(config, num_steps=2000, batch_size=8, builder="deepmimic",
                            max_len=196, learning_rate=1e-4)
  config.data.split = "all"
  config.evaluator = common.evaluator_config(263, 384)
  config.evaluator.nfeats = config.dataset.get_ref("nfeats")
  config.evaluator.text_dim = config.text_encoder.get_ref("dim")
  config.evaluator.update(movement_hidden=128, movement_out=128, motion_hidden=256,
                          text_hidden=256, output_dim=128)
  config.train.update(log_every=50, checkpoint_every=500, eval_every=500, eval_batches=4,
                      best_metric="eval/r_precision_top1", best_mode="max")
  return config
