"""NumPy-backend streams on a HumanML3D-layout folder built from the shared clips."""

import jax
import ml_collections
import numpy as np
from fakes import HashTextEncoder
import pytest
from jax.sharding import Mesh

from configs.train_common import data_config
from lead_jax import data
from lead_jax.data import layout
from lead_jax.errors import ConfigError


def make_config(folder, cache_dir=None, **kw):
  c = ml_collections.ConfigDict()
  c.seed = 7
  c.data = data_config(str(folder), "humanml3d", batch_size=4, max_len=196)
  c.data.update(backend="numpy", prefetch=2, min_len=40, unit_length=4,
                text_cache_dir=str(cache_dir) if cache_dir else None)
  c.data.update(kw)
  return c


def raw_clip(folder, table, caption_index):
  """(clip id, raw float32 features) owning a caption, read straight from the folder."""
  clip = int(np.searchsorted(table.caption_offsets, caption_index, side="right") - 1)
  clip_id = table.ids[clip]
  return clip_id, np.load(folder / "new_joint_vecs" / f"{clip_id}.npy").astype(np.float32)


def check_batch(batch, stream, folder, encoder, batch_size):
  mean, std = np.load(folder / "Mean.npy"), np.load(folder / "Std.npy")
  motion, mask, length = batch["motion"], batch["mask"], batch["length"]
  assert motion.shape == (batch_size, 196, 263) and motion.dtype == np.float32
  assert mask.shape == (batch_size, 196) and mask.dtype == bool
  assert length.shape == (batch_size,) and length.dtype == np.int32
  assert batch["text_emb"].shape == (batch_size, 8)
  assert np.all(length % 4 == 0) and np.all((length >= 40) & (length <= 196))
  np.testing.assert_array_equal(mask, np.arange(196)[None] < length[:, None])
  assert np.all(motion[~mask] == 0)
  for b in range(batch_size):
    cap_i = int(batch["caption_index"][b])
    caption = stream.table.captions[cap_i]
    clip_id, raw = raw_clip(folder, stream.table, cap_i)
    seg_b, seg_e = layout.segment_frames(caption, len(raw), 20.0)
    expected = (raw - mean) / std  # direct NumPy normalisation
    n = int(length[b])
    # the window is a contiguous crop inside the caption's segment
    matches = [s for s in range(seg_b, seg_e - n + 1)
               if np.allclose(motion[b, :n], expected[s:s + n], atol=1e-5, rtol=1e-6)]
    assert matches, f"example {b} ({clip_id}) is not a crop of its caption's segment"
    np.testing.assert_allclose(batch["text_emb"][b], encoder.encode([caption.text])[0])


def take(stream, n):
  return [next(stream) for _ in range(n)]


def assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_train_batches_shapes_masks_normalisation(h3d_folder, encoder, tmp_path):
  stream = data.make_train_stream(make_config(h3d_folder, tmp_path), encoder, 0, 1)
  assert stream.table.ids == sorted(layout.read_split_ids(h3d_folder, "train"))
  assert stream.steps_per_epoch == 9 // 4
  for batch in take(stream, 5):
    check_batch(batch, stream, h3d_folder, encoder, 4)
  np.testing.assert_allclose(stream.null_text_emb, encoder.encode([""])[0])
  stream.close()


def test_same_seed_same_batches_and_other_seed_differs(h3d_folder, encoder):
  cfg = make_config(h3d_folder)
  a = take(data.make_train_stream(cfg, encoder, 0, 1), 6)
  b = take(data.make_train_stream(cfg, encoder, 0, 1), 6)
  assert_same(a, b)
  cfg.data.seed = 8
  c = take(data.make_train_stream(cfg, encoder, 0, 1), 6)
  assert not all(np.array_equal(x["motion"], y["motion"]) for x, y in zip(a, c))


@pytest.mark.parametrize("prefetch", [0, 3])
def test_state_restore_resumes_exactly(h3d_folder, encoder, prefetch):
  cfg = make_config(h3d_folder, prefetch=prefetch)
  s = data.make_train_stream(cfg, encoder, 0, 1)
  take(s, 3)  # steps_per_epoch is 2: this crosses an epoch boundary
  state = s.state()
  assert state == {"epoch": 1, "step": 1}
  rest = take(s, 4)
  s2 = data.make_train_stream(cfg, encoder, 0, 1)
  take(s2, 1)
  s2.restore(state)
  assert_same(rest, take(s2, 4))
  s.close(), s2.close()


def test_epochs_see_each_clip_once_per_epoch(h3d_folder, encoder):
  cfg = make_config(h3d_folder, batch_size=3)
  s = data.make_train_stream(cfg, encoder, 0, 1)
  assert s.steps_per_epoch == 3
  for _ in range(2):
    caps = np.concatenate([b["caption_index"] for b in take(s, 3)])
    clips = np.searchsorted(s.table.caption_offsets, caps, side="right") - 1
    assert sorted(clips.tolist()) == list(range(9))


def test_text_cache_encodes_each_caption_once(h3d_folder, tmp_path):
  enc = HashTextEncoder(8)
  cfg = make_config(h3d_folder, tmp_path / "cache")
  data.make_train_stream(cfg, enc, 0, 1)
  texts = {c.text for c in data.make_train_stream(cfg, HashTextEncoder(8), 0, 1).table.captions}
  assert sorted(enc.encoded) == sorted(texts | {""})  # each caption + the empty one, once
  assert (tmp_path / "cache" / "hash8.npz").is_file()
  enc2 = HashTextEncoder(8)
  s = data.make_train_stream(cfg, enc2, 0, 1)  # a new run: everything from disk
  assert enc2.encoded == []
  batch = next(s)
  for b in range(4):
    text = s.table.captions[int(batch["caption_index"][b])].text
    np.testing.assert_allclose(batch["text_emb"][b], HashTextEncoder(8).encode([text])[0])
  with np.load(tmp_path / "cache" / "hash8.npz") as f:
    assert data.text_cache.caption_key("") in set(f["keys"].tolist())
    assert f["embeddings"].shape == (len(texts) + 1, 8)


def test_two_processes_read_disjoint_covering_shards(h3d_folder, encoder):
  cfg = make_config(h3d_folder, batch_size=4)
  shards = [data.make_train_stream(cfg, encoder, i, 2) for i in range(2)]
  ids = [set(s.table.ids) for s in shards]
  assert not ids[0] & ids[1]
  assert ids[0] | ids[1] == set(layout.read_split_ids(h3d_folder, "train"))
  for s in shards:
    assert s.batch_size == 2 and next(s)["motion"].shape == (2, 196, 263)


def test_eval_stream_visits_every_example_once(h3d_folder, encoder):
  cfg = make_config(h3d_folder, batch_size=2)
  ev = data.make_eval_stream(cfg, encoder, 0, 1, split="test")
  batches = list(ev)
  assert len(batches) == len(ev) == 2  # 3 clips, batches of 2: one padding row
  valid = np.concatenate([b["valid"] for b in batches])
  ids = np.concatenate([b["id"] for b in batches])
  assert valid.tolist() == [True, True, True, False]
  assert sorted(ids[valid].tolist()) == sorted(layout.read_split_ids(h3d_folder, "test"))
  pad = batches[-1]
  assert pad["length"][1] == 40 and pad["caption_index"][1] == -1 and pad["id"][1] == ""
  assert np.all(pad["motion"][1] == 0)
  for b in batches:
    assert b["motion"].shape == (2, 196, 263)
  assert batches[0]["tokens"][0].split()[1].endswith("/NOUN")
  # a second pass is identical (eval crops are seeded)
  assert_same([{k: v for k, v in b.items()} for b in batches], list(ev))


@pytest.mark.parametrize("count,global_batch", [(2, 2), (3, 3), (2, 4)])
def test_eval_on_several_processes_counts_each_example_once(h3d_folder, encoder, count,
                                                            global_batch):
  cfg = make_config(h3d_folder, batch_size=global_batch)
  streams = [data.make_eval_stream(cfg, encoder, i, count, split="train")
             for i in range(count)]
  assert len({len(s) for s in streams}) == 1  # same number of batches everywhere
  seen = []
  for s in streams:
    for b in s:
      assert b["motion"].shape[0] == global_batch // count
      seen += b["id"][b["valid"]].tolist()
  assert sorted(seen) == sorted(layout.read_split_ids(h3d_folder, "train"))


def test_global_batch_on_a_mesh(h3d_folder, encoder):
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  s = data.make_train_stream(make_config(h3d_folder), encoder, 0, 1)
  batch = data.to_global_batch(next(s), mesh)
  assert isinstance(batch["motion"], jax.Array) and batch["motion"].shape == (4, 196, 263)
  assert batch["motion"].sharding.spec == jax.sharding.PartitionSpec(("data",))
  ev = data.make_eval_stream(make_config(h3d_folder, batch_size=2), encoder, 0, 1)
  b = data.to_global_batch(next(iter(ev)), mesh)
  assert isinstance(b["valid"], jax.Array) and isinstance(b["id"], np.ndarray)


def test_config_errors(h3d_folder, encoder):
  with pytest.raises(ConfigError, match="multiple of the process count 2"):
    data.make_train_stream(make_config(h3d_folder, batch_size=3), encoder, 0, 2)
  with pytest.raises(ConfigError, match="data.builder must be one of"):
    data.make_train_stream(make_config(h3d_folder, builder="amass"), encoder, 0, 1)
  with pytest.raises(ConfigError, match="fewer than the per-process batch 16"):
    data.make_train_stream(make_config(h3d_folder, batch_size=16), encoder, 0, 1)
  with pytest.raises(ConfigError, match="data.min_len"):
    data.make_train_stream(make_config(h3d_folder, min_len=42), encoder, 0, 1)


def test_data_options_read_the_config_and_name_a_missing_field(h3d_folder):
  opts = data.data_options(make_config(h3d_folder))
  assert (opts.seed, opts.eval_seed, opts.sampling.fps) == (7, 0, 20.0)  # None: config.seed, kind
  assert data.data_options(make_config(h3d_folder, builder="kit_ml")).sampling.fps == 12.5
  assert data.data_options(make_config(h3d_folder, seed=3, fps=30.0)).sampling.fps == 30.0
  assert data.data_options(make_config(h3d_folder, seed=3)).seed == 3
  cfg = make_config(h3d_folder)
  del cfg.data["eval_seed"]
  with pytest.raises(ConfigError, match=r"config\.data\.eval_seed is missing"):
    data.data_options(cfg)
  with pytest.raises(ConfigError, match="data.backend must be one of"):
    data.data_options(make_config(h3d_folder, backend="torch"))
