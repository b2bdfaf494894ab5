"""The sampling rules shared by both backends: caption choice, segments, coin2 crops, shards."""

import numpy as np
import pytest

from lead_jax.data import sampling
from lead_jax.data.layout import Caption, Clip
from lead_jax.errors import ConfigError

CFG = sampling.SamplingConfig()  # MLD: min 40, max 196, unit 4, 20 fps


def make_table(lengths, captions_per_clip=None, dim=3, cfg=CFG):
  clips = []
  for k, n in enumerate(lengths):
    caps = (captions_per_clip or {}).get(k) or (Caption(f"clip {k}", (), (), 0.0, 0.0),)
    motion = np.arange(n * dim, dtype=np.float32).reshape(n, dim) + 1000 * k
    clips.append(Clip(f"{k:03d}", motion, tuple(caps)))
  return sampling.build_table(clips, np.zeros(dim, np.float32), np.ones(dim, np.float32), cfg)


@pytest.mark.parametrize("n,allowed", [
    (199, {196, 192}),  # 49 units, or 48 with coin2 'double'
    (196, {196, 192}),
    (70, {68, 64}),
    (43, {40}),  # 'double' would give 36 < min_len
    (40, {40}),
    (500, {196, 192}),  # longer than max_len: a random max_len window
])
def test_crop_lengths_follow_coin2_rule(n, allowed):
  table = make_table([n])
  rng = np.random.default_rng(0)
  plan = sampling.choose_windows(table, np.zeros(3000, np.int64), CFG, rng)
  assert set(plan.length.tolist()) == allowed
  assert np.all(plan.start >= 0) and np.all(plan.start + plan.length <= n)
  if len(allowed) == 2:  # P(double) = 1/3
    frac = np.mean(plan.length == min(allowed))
    assert 0.30 < frac < 0.37, frac
  # every start offset in [0, n - length] is reachable
  longest = plan.start[plan.length == max(allowed)]
  assert longest.min() == 0 and longest.max() == n - max(allowed)


def test_caption_segments_and_short_captions():
  caps = (Caption("whole", (), (), 0.0, 0.0), Caption("part", (), (), 1.0, 4.0),  # frames 20:80
          Caption("too short", (), (), 1.0, 2.0))  # 20 frames < min_len: never chosen
  table = make_table([150], {0: caps})
  assert table.caption_ok.tolist() == [True, True, False]
  plan = sampling.choose_windows(table, np.zeros(2000, np.int64), CFG, np.random.default_rng(1))
  assert set(plan.caption.tolist()) == {0, 1}
  part = plan.caption == 1
  assert 0.45 < part.mean() < 0.55
  assert np.all(plan.start[part] >= 20) and np.all(plan.start[part] + plan.length[part] <= 80)
  assert set(plan.length[part].tolist()) == {60, 56}
  assert set(plan.length[~part].tolist()) == {148, 144}


def test_short_and_long_clips_filtered():
  table = make_table([39, 40, 120, 199, 250])
  assert table.clip_ok.tolist() == [False, True, True, True, True]
  mld = make_table([39, 40, 120, 199, 250], cfg=sampling.SamplingConfig(max_clip_len=200))
  assert mld.ids == ["000", "001", "002", "003"]  # >= 200 dropped, as MLD's loader does


def test_epoch_plan_is_a_seeded_permutation():
  table = make_table([50 + 10 * k for k in range(20)])
  p = sampling.epoch_plan(table, CFG, seed=3, epoch=0)
  assert sorted(p.clip.tolist()) == list(range(20))
  q = sampling.epoch_plan(table, CFG, seed=3, epoch=0)
  for f in ("clip", "caption", "start", "length"):
    np.testing.assert_array_equal(getattr(p, f), getattr(q, f))
  assert not np.array_equal(p.clip, sampling.epoch_plan(table, CFG, seed=3, epoch=1).clip)
  assert not np.array_equal(p.clip, sampling.epoch_plan(table, CFG, seed=4, epoch=0).clip)


def test_buffer_shuffle_matches_its_definition():
  order = np.arange(10)
  out = sampling.buffer_shuffle(order, 3, np.random.default_rng(0))
  assert sorted(out.tolist()) == list(range(10))
  # with a buffer of 3, position k can only hold items <= k + 2
  assert np.all(out <= np.arange(10) + 2)
  np.testing.assert_array_equal(sampling.buffer_shuffle(order, 1, np.random.default_rng(0)), order)


def test_gather_batch_pads_and_masks():
  table = make_table([60, 80])
  assert table.frames.shape == (141, 3) and np.all(table.frames[-1] == 0)  # + the padding row
  plan = sampling.Plan(np.array([0, 1]), np.array([0, 1]), np.array([4, 60 + 8]),
                       np.array([40, 44]))
  b = sampling.gather_batch(table, plan, 48)
  assert b["motion"].shape == (2, 48, 3) and b["mask"].shape == (2, 48)
  assert b["mask"].sum(1).tolist() == [40, 44] and b["length"].dtype == np.int32
  np.testing.assert_array_equal(b["motion"][0, :40], table.frames[4:44])
  np.testing.assert_array_equal(b["motion"][1, :44], table.frames[68:112])
  assert np.all(b["motion"][0, 40:] == 0) and np.all(b["motion"][1, 44:] == 0)


@pytest.mark.parametrize("n,count", [(10, 3), (2, 3), (7, 1), (8, 4)])
def test_shards_are_disjoint_and_cover(n, count):
  bounds = [sampling.shard_bounds(n, i, count) for i in range(count)]
  covered = [j for b, e in bounds for j in range(b, e)]
  assert covered == list(range(n))
  sizes = [e - b for b, e in bounds]
  assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("kw", [dict(min_len=42), dict(max_len=198), dict(max_len=36),
                                dict(unit_length=0), dict(shuffle_buffer=-1)])
def test_bad_sampling_config(kw):
  with pytest.raises(ConfigError):
    sampling.SamplingConfig(**kw)
