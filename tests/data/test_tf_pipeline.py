"""TFDS builders and the tf.data backend; parity with the NumPy backend."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from lead_jax import data  # pylint: disable=wrong-import-position
from lead_jax.data import layout  # pylint: disable=wrong-import-position
from lead_jax.errors import (ConfigError, InputError,  # pylint: disable=wrong-import-position
                             MissingFileError)
from lead_jax.train import inputs  # pylint: disable=wrong-import-position
from lead_jax_data_pipeline.humanml3d import Humanml3d  # pylint: disable=wrong-import-position
from lead_jax_data_pipeline.kit_ml import KitMl  # pylint: disable=wrong-import-position
from lead_jax_data_pipeline.motion_folder import MotionFolder  # pylint: disable=wrong-import-position
from lead_jax_data_pipeline.stream import read_clips  # pylint: disable=wrong-import-position
from test_streams import assert_same, check_batch, make_config, take  # pylint: disable=wrong-import-position


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


def tf_config(folder, tfds_dir, **kw):
  return make_config(folder, backend="tf", tfds_dir=str(tfds_dir), **kw)


def test_lead_jax_data_does_not_import_tensorflow():
  code = ("import sys, lead_jax.data; assert 'tensorflow' not in sys.modules, 'tf imported'; "
          "assert 'lead_jax_data_pipeline' not in sys.modules, 'tf backend imported'")
  subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_the_tf_backend_comes_from_train_inputs(h3d_folder, tfds_dir, encoder):
  cfg = tf_config(h3d_folder, tfds_dir)
  with pytest.raises(ConfigError, match="lead_jax.train.inputs"):
    data.make_train_stream(cfg, encoder, 0, 1)
  assert inputs.stream_backend(cfg).name == "tf"
  assert inputs.stream_backend(make_config(h3d_folder)) is data.NUMPY_BACKEND


def test_humanml3d_builder_produces_the_examples(h3d_folder, tfds_dir):
  for name in ("new_joint_vecs/", "texts/", "train.txt", "val.txt", "test.txt", "Mean.npy"):
    assert name in Humanml3d.MANUAL_DOWNLOAD_INSTRUCTIONS
  b = Humanml3d(data_dir=tfds_dir)
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=h3d_folder))
  assert {s: b.info.splits[s].num_examples for s in ("train", "val", "test")} == \
      {"train": 9, "val": 3, "test": 3}
  assert b.info.features["motion"].shape == (None, 263)
  clips = read_clips(b, "train")
  assert sorted(c.id for c in clips) == sorted(layout.read_split_ids(h3d_folder, "train"))
  for c in clips + read_clips(b, "test"):
    expected = layout.load_clip(h3d_folder, c.id, 263)
    np.testing.assert_array_equal(c.motion, expected.motion)
    assert c.captions == expected.captions  # text, tokens, POS tags, start, end
  seg = [cap for c in clips for cap in c.captions if cap.start]
  assert seg and all((cap.start, cap.end) == (0.5, 3.0) for cap in seg)


def test_missing_or_partial_manual_dir(h3d_folder, tmp_path):
  with pytest.raises(MissingFileError, match="does not exist or is empty"):
    Humanml3d(data_dir=tmp_path / "t1").download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=tmp_path / "absent"))
  partial = tmp_path / "partial"
  shutil.copytree(h3d_folder, partial)
  (partial / "Mean.npy").unlink()
  (partial / "test.txt").unlink()
  with pytest.raises(MissingFileError, match=r"missing test\.txt, Mean\.npy"):
    Humanml3d(data_dir=tmp_path / "t2").download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=partial))


def test_kit_ml_builder_checks_the_feature_size(h3d_folder, tmp_path):
  assert KitMl(data_dir=tmp_path).info.features["motion"].shape == (None, 251)
  with pytest.raises(InputError, match=r"\(T, 251\), found \(\d+, 263\)"):
    KitMl(data_dir=tmp_path).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=h3d_folder))


def test_motion_folder_builder_needs_no_manual_step(h3d_folder, tfds_dir):
  b = MotionFolder(source_dir=h3d_folder, data_dir=tfds_dir)
  b.download_and_prepare()
  assert b.info.splits["test"].num_examples == 3
  assert b.info.features["motion"].shape == (None, 263)


def test_tf_and_numpy_backends_give_the_same_batches(h3d_folder, tfds_dir, encoder):
  tf_stream = inputs.make_train_stream(tf_config(h3d_folder, tfds_dir), encoder, 0, 1)
  np_stream = data.make_train_stream(make_config(h3d_folder), encoder, 0, 1)
  tf_batches = take(tf_stream, 5)
  assert_same(tf_batches, take(np_stream, 5))
  check_batch(tf_batches[0], tf_stream, h3d_folder, encoder, 4)
  ev_cfg = dict(batch_size=2)
  tf_eval = list(inputs.make_eval_stream(tf_config(h3d_folder, tfds_dir, **ev_cfg), encoder,
                                         process_index=0, process_count=1))
  np_eval = list(data.make_eval_stream(make_config(h3d_folder, **ev_cfg), encoder, 0, 1))
  assert len(tf_eval) == 2
  assert_same(tf_eval, np_eval)


def test_tf_state_restore(h3d_folder, tfds_dir, encoder):
  cfg = tf_config(h3d_folder, tfds_dir)
  s = inputs.make_train_stream(cfg, encoder, 0, 1)
  take(s, 3)
  state = s.state()
  rest = take(s, 2)
  s2 = inputs.make_train_stream(cfg, encoder, 0, 1)
  s2.restore(state)
  assert_same(rest, take(s2, 2))


def test_tf_processes_read_disjoint_covering_shards(h3d_folder, tfds_dir, encoder):
  cfg = tf_config(h3d_folder, tfds_dir, batch_size=2)
  streams = [inputs.make_train_stream(cfg, encoder, i, 2) for i in range(2)]
  ids = [set(s.table.ids) for s in streams]
  assert not ids[0] & ids[1] and len(ids[0]) + len(ids[1]) == 9
  assert ids[0] | ids[1] == set(layout.read_split_ids(h3d_folder, "train"))
  evals = [inputs.make_eval_stream(cfg, encoder, "train", i, 2) for i in range(2)]
  assert len(evals[0]) == len(evals[1]) == 5  # ceil(ceil(9 / 2) / 1)
  seen = [i for e in evals for b in e for i in b["id"][b["valid"]].tolist()]
  assert sorted(seen) == sorted(layout.read_split_ids(h3d_folder, "train"))
