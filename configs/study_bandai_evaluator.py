"""Bandai study, step `evaluator`: the trainable text-motion evaluator (T2M's motion encoder family,
contrastive margin loss; `lead_jax.train.evaluator`) on the study's train split, MiniLM captions.
Its motion and text embeddings score every table of the study (FID, R-precision, MM-Dist, ...).

  lead-jax train --config=configs/study_bandai_evaluator.py --workdir=OUT/workdirs/evaluator \
      --config.data.dir=OUT/data                 # (:quick for the tiny variant)
Sizes (full): movement 128, motion GRU 256, text head 256, 256-d embeddings; batch 32 crops of
<= 120 frames; 3,000 steps at lr 1e-3: 1,400,448 parameters, 0.24 s/step, 15 min on 2 CPU cores
(measured in the full study run, docs/results/bandai.md).
"""

from configs import common, study_bandai, train_common


def get_config(scale: str = "full"):
  config = common.base_config("humanml3d", "minilm", ())
  train_common.add_training(config, num_steps=1, batch_size=1)
  config.evaluator = common.evaluator_config(263, 384)
  config.evaluator.nfeats = config.dataset.get_ref("nfeats")
  config.evaluator.text_dim = config.text_encoder.get_ref("dim")
  study_bandai.study_models(config, scale)
  study_bandai.study_training(config, "evaluator", scale)
  config.train.update(best_metric="eval/r_precision_top1", best_mode="max")
  return config
