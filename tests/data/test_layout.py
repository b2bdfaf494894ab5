"""The HumanML3D layout reader: captions, segments, stats, missing-file errors."""

import shutil

import numpy as np
import pytest

from lead_jax.data import layout
from lead_jax.errors import InputError, MissingFileError


def test_parse_real_caption_line(humanml3d_dir):
  caps = layout.read_captions(humanml3d_dir / "texts" / "000000.txt")
  assert len(caps) == 4
  c = caps[0]
  assert c.text == "a man kicks something or someone with his left leg."
  assert c.tokens == ("a", "man", "kick", "something", "or", "someone", "with", "his", "left",
                      "leg")
  assert c.pos == ("DET", "NOUN", "VERB", "PRON", "CCONJ", "PRON", "ADP", "DET", "ADJ", "NOUN")
  assert (c.start, c.end) == (0.0, 0.0)
  assert c.tokens_string == ("a/DET man/NOUN kick/VERB something/PRON or/CCONJ someone/PRON "
                             "with/ADP his/DET left/ADJ leg/NOUN")


@pytest.mark.parametrize("start,end,frames,expected", [
    (0.0, 0.0, 116, (0, 116)),  # whole clip
    (1.0, 5.0, 170, (20, 100)),  # int(1.0 * 20), int(5.0 * 20)
    (0.53, 2.27, 170, (10, 45)),  # truncation, not rounding
    (7.0, 12.0, 170, (140, 170)),  # clipped to the clip
])
def test_segment_frames(start, end, frames, expected):
  cap = layout.Caption("x", (), (), start, end)
  assert layout.segment_frames(cap, frames, 20.0) == expected


def test_bad_caption_times_name_the_file():
  with pytest.raises(InputError, match=r"f\.txt:3"):
    layout.parse_caption_line("walk#walk/VERB#zero#1.0", where="f.txt:3")


def test_load_clip_casts_float64_and_checks_dim(humanml3d_dir):
  clip = layout.load_clip(humanml3d_dir, "000000", 263)
  assert clip.motion.dtype == np.float32 and clip.motion.shape == (116, 263)
  np.testing.assert_array_equal(
      clip.motion, np.load(humanml3d_dir / "new_joint_vecs" / "000000.npy").astype(np.float32))
  with pytest.raises(InputError, match=r"000000\.npy.*\(T, 251\).*\(116, 263\)"):
    layout.load_clip(humanml3d_dir, "000000", 251)


def test_stats_match_reference_fixture_values(humanml3d_dir):
  mean, std = layout.load_stats(humanml3d_dir, 263)
  assert mean.shape == std.shape == (263,)
  np.testing.assert_allclose(std[[0, 1, 3, 4, 67, 193, 259]],
                             [0.0128256, 0.0169271, 0.1537659, 0.1222436, 0.2996918, 0.0194703,
                              0.3559327], rtol=1e-5)


def test_partial_folder_names_every_missing_file(h3d_folder, tmp_path):
  partial = tmp_path / "partial"
  shutil.copytree(h3d_folder, partial)
  (partial / "Std.npy").unlink()
  (partial / "val.txt").unlink()
  shutil.rmtree(partial / "texts")
  with pytest.raises(MissingFileError) as e:
    layout.check_layout(partial)
  msg = str(e.value)
  for name in ("texts/", "val.txt", "Std.npy"):
    assert name in msg
  assert "Mean.npy" not in msg.split("missing")[1].split("(")[0]
  with pytest.raises(MissingFileError, match="does not exist"):
    layout.check_layout(tmp_path / "nowhere")


def test_split_ids_without_files(humanml3d_dir):
  """The shared folder lists 23,384 train ids but holds 3 of their clips: skipped, or named."""
  present, absent = layout.available_ids(humanml3d_dir, "train")
  assert present == []  # only 000000 has a texts file, and it is a test id
  assert len(absent) == 23384
  with pytest.raises(MissingFileError, match=r"23384 of 23384 ids .*000001.* and 23374 more"):
    next(layout.iter_clips(humanml3d_dir, "train", 263))
  assert [c.id for c in layout.iter_clips(humanml3d_dir, "test", 263)] == ["000000"]
  with pytest.raises(MissingFileError, match="4383 of 4384"):
    next(layout.iter_clips(humanml3d_dir, "test", 263, strict=True))
