"""`data.shards` (global batches independent of the process count) and the latent cache's crops."""

import numpy as np
import pytest
from test_streams import make_config

from lead_jax import data
from lead_jax.data import latent_bank, layout, sampling
from lead_jax.errors import ConfigError


def test_one_process_with_two_shards_makes_the_batches_of_two_processes(h3d_folder, encoder):
  cfg = make_config(h3d_folder, batch_size=4, prefetch=0, shards=2)
  one = data.make_train_stream(cfg, encoder, 0, 1)
  cfg.data.shards = 0  # one shard per process
  two = [data.make_train_stream(cfg, encoder, i, 2) for i in range(2)]
  assert one.steps_per_epoch == min(s.steps_per_epoch for s in two) == 2  # shards of 5 / 4 clips
  ids = [t.ids for t in one.tables]
  assert ids == [s.table.ids for s in two] and not set(ids[0]) & set(ids[1])
  assert sorted(ids[0] + ids[1]) == sorted(layout.read_split_ids(h3d_folder, "train"))
  for _ in range(5):  # across epoch boundaries
    batch, parts = next(one), [next(s) for s in two]
    for k in batch:
      np.testing.assert_array_equal(batch[k], np.concatenate([p[k] for p in parts]), err_msg=k)
  assert one.state() == two[0].state() == two[1].state() == {"epoch": 2, "step": 1}
  ev_one = list(data.make_eval_stream(make_config(h3d_folder, batch_size=2, shards=2), encoder,
                                      0, 1, split="train"))
  ev_two = [list(data.make_eval_stream(make_config(h3d_folder, batch_size=2), encoder, i, 2,
                                       split="train")) for i in range(2)]
  assert len(ev_one) == len(ev_two[0]) == len(ev_two[1]) == 5
  for b, p0, p1 in zip(ev_one, *ev_two):
    np.testing.assert_array_equal(b["motion"], np.concatenate([p0["motion"], p1["motion"]]))
    assert b["id"].tolist() == p0["id"].tolist() + p1["id"].tolist()


def test_shard_count_errors(h3d_folder, encoder):
  with pytest.raises(ConfigError, match=r"config.data.shards=3 must be a multiple of the process "
                                        r"count 2"):
    data.make_train_stream(make_config(h3d_folder, shards=3), encoder, 0, 2)
  with pytest.raises(ConfigError, match=r"data.batch_size=4 must be a multiple of the shard count "
                                        r"8"):
    data.make_train_stream(make_config(h3d_folder, shards=8), encoder, 0, 1)
  with pytest.raises(ConfigError, match="config.data.shards must be >= 0"):
    data.data_options(make_config(h3d_folder, shards=-1))


@pytest.fixture(scope="module")
def table(h3d_folder):
  opts = data.data_options(make_config(h3d_folder))
  return data.NUMPY_BACKEND.load_shard(opts, "train", 0, 1)[0], opts.sampling


def test_bank_crops_follow_the_sampling_rules(table):
  table, cfg = table
  plan = latent_bank.bank_plan(table, cfg, seed=7, shard=0, generation_=0, crops_per_clip=5)
  eligible = np.flatnonzero(table.clip_ok)
  np.testing.assert_array_equal(plan.clip, np.repeat(eligible, 5))
  assert np.all(plan.length % cfg.unit_length == 0)
  assert np.all((plan.length >= cfg.min_len) & (plan.length <= cfg.max_len))
  owner = np.searchsorted(table.caption_offsets, plan.caption, side="right") - 1
  np.testing.assert_array_equal(owner, plan.clip)  # the caption is one of the clip's own
  begin = table.offsets[plan.clip] + table.seg_begin[plan.caption]
  end = table.offsets[plan.clip] + table.seg_end[plan.caption]
  assert np.all((plan.start >= begin) & (plan.start + plan.length <= end))
  again = latent_bank.bank_plan(table, cfg, 7, 0, 0, 5)
  np.testing.assert_array_equal(plan.start, again.start)  # a pure function of its key
  other = latent_bank.bank_plan(table, cfg, 7, 0, 1, 5)  # the next generation
  assert not (np.array_equal(plan.start, other.start) and np.array_equal(plan.caption,
                                                                         other.caption))


def test_an_epoch_visits_each_clip_once_in_the_frame_streams_order(table):
  table, cfg = table
  k, batch, steps = 3, 4, 2
  eligible = np.flatnonzero(table.clip_ok)
  for epoch in range(3):
    rows = latent_bank.epoch_bank_rows(table, cfg, 7, 0, epoch, k, batch, steps)
    assert rows.shape == (steps * batch,)
    frames = sampling.epoch_plan(table, cfg, 7, epoch, 0)
    np.testing.assert_array_equal(eligible[rows // k], frames.clip[:steps * batch])
  crops = np.concatenate([latent_bank.epoch_bank_rows(table, cfg, 7, 0, e, k, batch, steps) % k
                          for e in range(30)])
  assert set(crops.tolist()) == {0, 1, 2}  # every crop gets visited
  assert latent_bank.generation(7, 3) == 2 and latent_bank.generation(7, 0) == 0


def test_latent_batches_and_eval_padding(table):
  table, cfg = table
  plan = latent_bank.bank_plan(table, cfg, 7, 0, 0, 2)
  rng = np.random.default_rng(0)
  mu, logvar = (rng.normal(size=(len(plan), 1, 6)).astype(np.float32) for _ in range(2))
  bank = latent_bank.LatentBank(plan, mu, logvar)
  text = rng.normal(size=(len(table.captions), 5)).astype(np.float32)
  source = latent_bank.latent_train_source(lambda g: bank, table, text, cfg, 7, 0, 2, 0, 4, 2)
  stream = data.TrainStream(source, tables=table, null_text_emb=np.zeros(5, np.float32),
                            batch_size=4, steps_per_epoch=2)
  batch = next(stream)
  rows = latent_bank.epoch_bank_rows(table, cfg, 7, 0, 0, 2, 4, 2)[:4]
  np.testing.assert_array_equal(batch["latent_mu"], mu[rows])
  np.testing.assert_array_equal(batch["latent_logvar"], logvar[rows])
  np.testing.assert_array_equal(batch["caption_index"], plan.caption[rows])
  np.testing.assert_array_equal(batch["text_emb"], text[plan.caption[rows]])
  np.testing.assert_array_equal(batch["length"], plan.length[rows])
  eval_plan, valid = latent_bank.eval_bank_plan(table, cfg, 0, 4, 3)
  assert valid.tolist() == [True] * 9 + [False] * 3
  ev_mu = rng.normal(size=(len(eval_plan), 1, 6)).astype(np.float32)
  ev = list(latent_bank.latent_eval_batches(latent_bank.LatentBank(eval_plan, ev_mu, ev_mu),
                                            valid, table, text, np.ones(5, np.float32), cfg, 0,
                                            4))
  got = np.concatenate([b["latent_mu"] for b in ev])
  np.testing.assert_array_equal(got[:9], ev_mu)
  assert np.all(got[9:] == 0) and np.all(ev[-1]["text_emb"][1:] == 1.0)
  np.testing.assert_array_equal(np.concatenate([b["length"] for b in ev])[:9], eval_plan.length)
