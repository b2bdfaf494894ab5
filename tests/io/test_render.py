"""Rendering: GIF frame count, PNG strip size, feature inputs."""

import numpy as np
import pytest
from PIL import Image

from lead_jax import cli
from lead_jax.io import render


@pytest.fixture(scope="module")
def joints(humanml3d_dir):
  return np.load(humanml3d_dir / "new_joints" / "012314.npy")


def test_gif_frame_count(joints, tmp_path):
  path = render.render_animation([joints[:12], joints[:7]], tmp_path / "a.gif", ["one", "two"])
  with Image.open(path) as im:
    assert im.n_frames == 12 and im.size[0] > im.size[1]
  assert path.stat().st_size > 1000


def test_png_strip_and_features_input(humanml3d_dir, tmp_path):
  feats = humanml3d_dir / "new_joint_vecs" / "012314.npy"
  recovered = render.load_motion(feats)
  np.testing.assert_allclose(recovered, np.load(humanml3d_dir / "new_joints" / "012314.npy"),
                             atol=1e-5)
  out = tmp_path / "s.png"
  assert cli.main(["render", str(feats), "--out", str(out), "--frames", "4"]) == 0
  with Image.open(out) as im:
    width, height = im.size
  assert width > 2 * height and out.stat().st_size > 1000


def test_render_rejects_bad_shapes(tmp_path):
  bad = tmp_path / "bad.npy"
  np.save(bad, np.zeros((10, 5)))
  with pytest.raises(render.InputError, match=r"\(10, 5\)"):
    render.load_motion(bad)
  assert cli.main(["render", str(bad), "--out", str(tmp_path / "x.gif")]) == 2
