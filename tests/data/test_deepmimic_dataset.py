"""The embedded default dataset: DeepMimic clips imported on first use, no manual steps."""

import numpy as np
import pytest

from lead_jax import data
from lead_jax.data import datasets, layout
from test_streams import check_batch, make_config, take  # pylint: disable=wrong-import-position


@pytest.fixture(scope="module")
def deepmimic_root(tmp_path_factory):
  pytest.importorskip("pybullet_data")
  pytest.importorskip("lead_jax.io.deepmimic", reason="DeepMimic importer not present")
  return datasets.ensure_deepmimic(tmp_path_factory.mktemp("dm") / "deepmimic")


def all_ids(folder):
  return sorted(i for s in layout.SPLITS for i in layout.read_split_ids(folder, s))


@pytest.mark.slow
def test_deepmimic_builds_itself_and_streams(deepmimic_root, encoder):
  ids = all_ids(deepmimic_root)
  assert len(ids) == 15 and "humanoid3d_walk" in ids
  stamp = (deepmimic_root / "Mean.npy").stat().st_mtime_ns
  assert datasets.ensure_deepmimic(deepmimic_root) == deepmimic_root  # complete: not re-imported
  assert (deepmimic_root / "Mean.npy").stat().st_mtime_ns == stamp
  cfg = make_config(deepmimic_root, builder="deepmimic", batch_size=2)
  s = data.make_train_stream(cfg, encoder, 0, 1)
  for b in take(s, 2):
    check_batch(b, s, deepmimic_root, encoder, 2)


@pytest.mark.slow
def test_deepmimic_tfds_builder(deepmimic_root, tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from lead_jax_data_pipeline.motion_folder import Deepmimic  # pylint: disable=import-outside-toplevel
  from lead_jax_data_pipeline.stream import read_clips  # pylint: disable=import-outside-toplevel
  b = Deepmimic(source_dir=deepmimic_root, data_dir=tmp_path)
  b.download_and_prepare()
  clips = [c for s in layout.SPLITS for c in read_clips(b, s)]
  assert sorted(c.id for c in clips) == all_ids(deepmimic_root)
  walk = next(c for c in clips if c.id == "humanoid3d_walk")
  np.testing.assert_array_equal(walk.motion,
                                layout.load_clip(deepmimic_root, "humanoid3d_walk", 263).motion)
  assert any("walk" in cap.text for cap in walk.captions)


@pytest.mark.parametrize("name", ["demo_vae", "demo_denoiser", "demo_lcm", "demo_projector",
                                  "evaluator_demo"])
def test_demo_configs_train_on_the_embedded_data_as_they_are(deepmimic_root, encoder, name):
  """The launch command in each demo config's docstring (`lead-jax train --config=...`, no
  overrides) finds whole batches in the embedded dataset."""
  from lead_jax.config_loader import load_config, repo_config
  config = load_config(str(repo_config(f"{name}.py")))
  assert config.data.builder == "deepmimic" and config.data.split == "all"
  with config.unlocked():
    config.data.dir = str(deepmimic_root)
  stream = data.make_train_stream(config, encoder, 0, 1)
  assert stream.steps_per_epoch >= 1
  batch = next(iter(stream))
  assert batch["motion"].shape[:2] == (config.data.batch_size, config.data.max_len)
