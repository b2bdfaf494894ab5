"""The pipeline on custom data: six Bandai clips imported with `lead-jax import bvh` in the test."""

import numpy as np
import pytest

from lead_jax import data
from lead_jax.data import layout
from lead_jax.train import inputs
from test_streams import assert_same, check_batch, make_config, take  # pylint: disable=wrong-import-position

CLIPS = ("walk_normal_007", "walk_normal_011", "walk-turn-left_normal_002", "run_normal_001",
         "wave-both-hands_normal_007", "wave-right-hand_normal_006")


@pytest.fixture(scope="module")
def bandai_folder(bandai_dir, tmp_path_factory):
  pytest.importorskip("lead_jax.commands.import_motion", reason="`lead-jax import` not present")
  from lead_jax import cli  # pylint: disable=import-outside-toplevel
  files = [str(bandai_dir / "dataset-2" / "data" / f"dataset-2_{c}.bvh") for c in CLIPS]
  out = tmp_path_factory.mktemp("bandai") / "imported"
  rc = cli.main(["import", "bvh", *files, "--map", "bandai", "--template", "bandai",
                 "--out", str(out)])
  assert rc == 0
  return out


def all_ids(folder):
  return sorted(i for s in layout.SPLITS for i in layout.read_split_ids(folder, s))


@pytest.mark.slow
def test_numpy_stream_on_imported_bandai(bandai_folder, encoder):
  ids = all_ids(bandai_folder)
  assert len(ids) == 6 and all(i.startswith("dataset-2_") for i in ids)
  cfg = make_config(bandai_folder, builder="motion_folder", batch_size=1)
  s = data.make_train_stream(cfg, encoder, 0, 1)
  assert s.table.ids == sorted(layout.read_split_ids(bandai_folder, "train"))
  for b in take(s, 3):
    check_batch(b, s, bandai_folder, encoder, 1)
  captions = {c.text for c in s.table.captions}
  assert any("walk" in c for c in captions)
  seen = []
  for split in layout.SPLITS:
    for b in data.make_eval_stream(cfg, encoder, 0, 1, split=split):
      seen += b["id"][b["valid"]].tolist()
  assert sorted(seen) == [i for i in ids
                          if np.load(bandai_folder / "new_joint_vecs" / f"{i}.npy").shape[0] >= 40]


@pytest.mark.slow
def test_motion_folder_builder_on_imported_bandai(bandai_folder, encoder, tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from lead_jax_data_pipeline.motion_folder import MotionFolder  # pylint: disable=import-outside-toplevel
  from lead_jax_data_pipeline.stream import read_clips  # pylint: disable=import-outside-toplevel
  b = MotionFolder(source_dir=bandai_folder, data_dir=tmp_path)
  b.download_and_prepare()
  clips = [c for s in layout.SPLITS for c in read_clips(b, s)]
  assert sorted(c.id for c in clips) == all_ids(bandai_folder)
  for c in clips:
    expected = layout.load_clip(bandai_folder, c.id, 263)
    np.testing.assert_array_equal(c.motion, expected.motion)
    assert c.captions == expected.captions and c.captions[0].pos[0] in ("DET", "PRON")
  cfg = make_config(bandai_folder, builder="motion_folder", batch_size=1)
  tf_cfg = make_config(bandai_folder, builder="motion_folder", batch_size=1, backend="tf",
                       tfds_dir=str(tmp_path))
  assert_same(take(inputs.make_train_stream(tf_cfg, encoder, 0, 1), 4),
              take(data.make_train_stream(cfg, encoder, 0, 1), 4))
