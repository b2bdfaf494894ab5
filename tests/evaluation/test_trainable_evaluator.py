"""Trainable evaluator: loss by hand, jitted training through the shared loop, reload, width check."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_stages import tiny_evaluator_config
from lead_jax.errors import InputError
from lead_jax.train import evaluator as te
from lead_jax.train.metric_writers import read_jsonl
from lead_jax.workdir import load_trained_evaluator


def test_contrastive_margin_loss_by_hand():
  text = jnp.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
  motion = jnp.array([[1.0, 0.0], [3.0, 1.0], [0.0, 2.0]])
  out = te.contrastive_margin_loss(text, motion, jnp.asarray(1), margin=5.0)
  # positives: 1, 1, 2 -> mean of squares 2. negatives (roll 1): t0-m2 = 2, t1-m0 = 2, t2-m1 = sqrt(18).
  expect_neg = ((5 - 2) ** 2 + (5 - 2) ** 2 + (5 - np.sqrt(18)) ** 2) / 3
  assert float(out["loss"]) == pytest.approx(2.0 + expect_neg, rel=1e-5)
  assert float(out["neg_dist"]) == pytest.approx((4 + np.sqrt(18)) / 3, rel=1e-5)


def test_train_reload_and_width_check(tiny_dataset, text_encoder, tmp_path):
  config = tiny_evaluator_config(tiny_dataset)
  config.optimizer.learning_rate = 3e-3
  config.train.update(num_steps=30, log_every=10, checkpoint_every=30, eval_every=0,
                      progress=False, best_metric="")
  workdir = str(tmp_path / "ev")
  state = te.train_and_evaluate(config, workdir, text_encoder=text_encoder)
  assert int(state.step) == 30
  ev = load_trained_evaluator(workdir)
  jax.tree_util.tree_map(np.testing.assert_array_equal, ev.params, state.params)
  rows = read_jsonl(pathlib.Path(workdir) / "metrics.jsonl")
  losses = [r["loss"] for r in rows if "loss" in r]
  assert len(losses) == 3 and losses[-1] < losses[0], losses
  x = np.random.default_rng(0).normal(size=(4, 32, 263)).astype(np.float32)
  m = ev.motion_embeddings(x, [32, 16, 20, 24])
  t = ev.text_embeddings(text_encoder.encode(["a", "b", "c", "d"]))
  assert m.shape == (4, 8) and t.shape == (4, 8)
  # Padding does not change an embedding: the 16-frame motion alone gives the same vector.
  np.testing.assert_allclose(ev.motion_embeddings(x[1:2, :16], [16]), m[1:2], atol=1e-5)
  with pytest.raises(InputError, match="width 263"):
    ev.motion_embeddings(np.zeros((1, 32, 251), np.float32), [32])
