"""MLD's evaluation items (Text2MotionDatasetV2) and their per-replication draws.

A tiny HumanML3D folder written here: clips with whole-clip and sub-segment captions, lengths on
both sides of MLD's limits (40 <= length < 200), the item list checked against MLD's rules worked
out by hand.
"""

import json

import numpy as np
import pytest

from lead_jax.data.text_cache import EmbeddingCache
from lead_jax.evaluation import items as mld

D = 263
CLIPS = {  # id: (frames, caption lines)
    "a": (120, ["walks forward.#walk/VERB forward/ADV#0.0#0.0",
                "first steps.#first/ADJ step/NOUN#0.5#3.0",          # frames 10..60: 50, kept
                "a short bit.#short/ADJ bit/NOUN#1.0#2.5",           # 20..50: 30 < 40, dropped
                "the rest.#rest/NOUN#3.0#nan"]),                     # end nan -> 0: dropped
    "b": (39, ["too short.#short/ADJ#0.0#0.0"]),                      # clip < 40: dropped
    "c": (200, ["too long.#long/ADJ#0.0#0.0",                         # clip >= 200: dropped,
                "a part.#part/NOUN#0.0#4.0"]),                       # its segments too
    "d": (199, ["only segments.#segment/NOUN#0.0#9.0",               # 0..180: 180, kept
                "late part.#late/ADJ part/NOUN#8.0#12.0"]),          # 160..199 (clamped): 39
    "e": (45, ["a jump.#jump/VERB#0.0#0.0", "a hop.#hop/VERB#0.0#0.0"]),
    "f": (60, ["x.#x/X#0.0#2.0", "y.#y/Y#1.0#3.0"]),                 # 0..40: 40 kept; 20..60: 40
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("mld_items")
  (root / "new_joint_vecs").mkdir()
  (root / "texts").mkdir()
  rng = np.random.default_rng(0)
  for cid, (frames, lines) in CLIPS.items():
    np.save(root / "new_joint_vecs" / f"{cid}.npy", rng.normal(size=(frames, D)).astype(np.float32))
    (root / "texts" / f"{cid}.txt").write_text("\n".join(lines) + "\n")
  np.save(root / "Mean.npy", np.zeros(D, np.float32))
  np.save(root / "Std.npy", np.ones(D, np.float32))
  for split in ("train", "val", "test"):
    (root / f"{split}.txt").write_text("\n".join(CLIPS) + "\n")
  return root


def test_items_follow_mlds_rules(folder):
  items = mld.mld_items(folder, "test")
  table = [(i.clip_id, i.start, i.end, tuple(c.text for c in i.captions)) for i in items]
  # MLD's order: a stable sort by length over (clip order; a clip's segments, then its whole item).
  assert table == [
      ("f", 0, 40, ("x.",)),
      ("f", 20, 60, ("y.",)),
      ("e", 0, 45, ("a jump.", "a hop.")),
      ("a", 10, 60, ("first steps.",)),
      ("a", 0, 120, ("walks forward.",)),   # "the rest" (3.0 to NaN = 0) is an empty segment
      ("d", 0, 180, ("only segments.",)),   # no whole-clip caption: no whole-clip item
  ]
  assert [i.name for i in items] == ["f[0:40]", "f[20:60]", "e", "a[10:60]", "a", "d[0:180]"]
  rows = mld.item_table(items)
  assert len(rows) == 7 and rows[5] == {"item": 4, "name": "a", "clip": "a",
                                        "caption": "walks forward.", "start": 0, "end": 120}
  json.dumps(rows)  # written next to the results
  # KIT's shorter minimum keeps clip b and the 39- and 30-frame segments of d and a.
  kit = [(i.clip_id, i.start, i.end) for i in mld.mld_items(folder, "test", min_len=24)]
  assert {("b", 0, 39), ("d", 160, 199), ("a", 20, 50)} <= set(kit) and len(kit) == 9


def test_draws_are_mlds_crops_and_seeded(folder):
  items = mld.mld_items(folder, "test")
  draws = [mld.draw(items, np.random.default_rng(seed)) for seed in range(200)]
  for d in draws:
    for item, c, start, length in zip(items, d.caption, d.start, d.length):
      assert 0 <= c < len(item.captions) and length % 4 == 0
      assert length in (item.length // 4 * 4, (item.length // 4 - 1) * 4)  # coin: single/double
      assert item.start <= start and start + length <= item.end
  singles = np.mean([d.length[2] == 44 for d in draws])                 # item e: 45 frames
  assert 0.55 < singles < 0.8                                           # P(single) = 2/3
  assert {int(d.caption[2]) for d in draws} == {0, 1}
  a, b = mld.draw(items, np.random.default_rng(7)), mld.draw(items, np.random.default_rng(7))
  np.testing.assert_array_equal(a.start, b.start)


def test_item_batches(folder, tmp_path):
  items = mld.mld_items(folder, "test")
  motions = mld.load_item_motions(folder, items, D)
  calls = []

  def encode(texts):
    calls.append(list(texts))
    return np.stack([np.full(3, len(t), np.float32) for t in texts])

  cache = EmbeddingCache("lengths", encode, 3, tmp_path / "cache")
  mean, std = np.full(D, 1.0, np.float32), np.full(D, 2.0, np.float32)
  batches = mld.ItemBatches(items, motions, mean, std, cache, batch_size=4, max_frames=196)
  got = list(batches(3))
  assert [len(b["length"]) for b in got] == [4, 2]
  d = mld.draw(items, np.random.default_rng(3))
  b = got[1]
  i = 5  # item d, row 1 of the second batch
  np.testing.assert_array_equal(b["length"][1], d.length[i])
  want = (motions["d"][d.start[i]:d.start[i] + d.length[i]] - 1.0) / 2.0
  np.testing.assert_allclose(b["motion"][1, :d.length[i]], want, rtol=1e-6)
  assert not b["motion"][1, d.length[i]:].any() and b["mask"][1].sum() == d.length[i]
  assert b["caption"][1] == "only segments." and b["tokens"][1] == "segment/NOUN"
  assert b["id"][1] == "d[0:180]" and b["text_emb"][1, 0] == len("only segments.")
  # Each caption is encoded once, across replications and across runs (the disk cache).
  list(batches(4))
  assert sorted(t for c in calls for t in c) == sorted({t for c in calls for t in c})
  again = mld.ItemBatches(items, motions, mean, std,
                          EmbeddingCache("lengths", encode, 3, tmp_path / "cache"), batch_size=4)
  before = len(calls)
  list(again(3))
  assert len(calls) == before
