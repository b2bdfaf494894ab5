"""The importers' per-clip path runs in NumPy (no compilation) and agrees with the jitted
features; the Bandai paraphrase captioner."""

import numpy as np
import pytest
import jax

from lead_jax.io import captions as cap
from lead_jax.io import dataset_writer as dw
from lead_jax.io.retarget import import_bvh_clip
from lead_jax.motion import features as F

BANDAI_CLIPS = ("dataset-2_walk_normal_007", "dataset-2_run_active_024",
                "dataset-2_raise-up-left-hand_feminine_028", "dataset-2_wave-right-hand_youthful_003",
                "dataset-2_walk-turn-left_exhausted_012")


def _bandai_files(bandai_dir, n=len(BANDAI_CLIPS)):
  files = sorted((bandai_dir / "dataset-2" / "data").glob("*.bvh"))
  by_stem = {f.stem: f for f in files}
  chosen = [by_stem[s] for s in BANDAI_CLIPS if s in by_stem]
  return (chosen + files[::37])[:n]


def test_numpy_features_match_the_jitted_ones(humanml3d_dir, bandai_dir):
  clips = [np.load(humanml3d_dir / "new_joints" / "012314.npy")]
  clips += [import_bvh_clip(f) for f in _bandai_files(bandai_dir, 3)]
  slices = F.feature_slices(22)
  for joints in clips:
    ours = F.extract_features_np(joints)
    jitted = np.asarray(F.extract_features(joints))
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32
    assert ours.shape == jitted.shape == (joints.shape[0] - 1, 263)
    # float32 rounding of the jitted IK; rotations of nearly straight limbs move most.
    np.testing.assert_allclose(ours[:, slices["rot6d"]], jitted[:, slices["rot6d"]], atol=3e-4)
    rest = np.r_[0:slices["rot6d"].start, slices["rot6d"].stop:263]
    np.testing.assert_allclose(ours[:, rest], jitted[:, rest], atol=5e-5)
    assert np.mean(ours[:, slices["foot_contact"]] == jitted[:, slices["foot_contact"]]) > 0.99
    recovered = F.recover_from_ric_np(ours)
    np.testing.assert_allclose(recovered, np.asarray(F.recover_from_ric(ours)), atol=1e-5)
    np.testing.assert_allclose(recovered[:, 0, [0, 2]][0], 0.0, atol=1e-6)  # origin, first frame


def test_writer_compiles_no_program(bandai_dir):
  """Clips of many lengths cost no XLA compilation (the jitted path compiled one per length
  bucket, seconds each)."""
  compiles = []
  active = [True]

  def listener(event, duration, **kwargs):
    if active[0] and "compile" in event:
      compiles.append(event)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    lengths = set()
    for f in _bandai_files(bandai_dir, 8):
      joints = import_bvh_clip(f)
      features, recovered = dw.process_clip(joints)
      lengths.add(joints.shape[0])
      assert features.shape == (joints.shape[0] - 1, 263) and recovered.shape[1:] == (22, 3)
    assert len(lengths) >= 5
    assert compiles == []
    jax.jit(lambda x: x * 3.0 + 1.0)(np.ones(7))  # the listener does see a compilation
    assert compiles
  finally:
    active[0] = False


def test_bandai_paraphrases(bandai_dir):
  stems = sorted(p.stem for d in ("dataset-1", "dataset-2")
                 for p in (bandai_dir / d / "data").glob("*.bvh"))
  assert len(stems) > 300
  for stem in stems:
    texts = cap.bandai_paraphrases(stem)
    assert texts == cap.bandai_paraphrases(stem)  # deterministic per clip
    assert len(set(texts)) == cap.BANDAI_PARAPHRASES >= 5
    clip = cap.parse_bandai_stem(stem)
    words = cap.BANDAI_STYLE_WORDS[clip.style]
    style_words = [w for w in words.adjectives + words.nouns + words.adverbs + words.likes if w]
    for text in texts:
      assert text.endswith(".") and text[0].islower()
      assert any(v in text for v in cap.BANDAI_VERBS[clip.content]), text
      assert any(w in text for w in style_words), text  # every caption carries the style
      side = {"left", "right"} & set(clip.content.split("-"))
      if side:
        assert side.pop() in text and ({"left", "right"} - set(clip.content.split("-"))).pop() \
            not in text
  # Paraphrases differ across the clips of one content x style (subjects, verbs, adverbs).
  walks = [tuple(cap.bandai_paraphrases(s)) for s in stems if "_walk_elderly_" in s]
  assert len(set(walks)) == len(walks) >= 3
  assert cap.get_captioner("bandai_paraphrases") is cap.bandai_paraphrases
  with pytest.raises(cap.InputError, match="unknown Bandai style"):
    cap.bandai_paraphrases("dataset-2_walk_sleepy_001")
