"""Dataset writer, captions, POS tags and the `lead-jax import` command on real files."""

import json

import numpy as np
import pytest

from lead_jax import cli
from lead_jax.io import captions as cap
from lead_jax.io import dataset_writer as dw
from lead_jax.io.pos_tags import parse_text_line, text_line


def test_pos_tags_match_spacy_lines_of_humanml3d(humanml3d_dir):
  lines = (humanml3d_dir / "texts" / "000000.txt").read_text().splitlines()
  agree = total = 0
  for line in lines:
    caption, gold, _, _ = parse_text_line(line)
    ours = parse_text_line(text_line(caption))[1]
    assert len(ours) == len(gold)
    agree += sum(a == b for a, b in zip(ours, gold))
    total += len(gold)
  assert text_line(parse_text_line(lines[0])[0]) == lines[0]
  assert agree / total >= 0.95, (agree, total)


def test_captions_templates_and_mirror(tmp_path):
  assert cap.bandai_captions("dataset-2_wave-left-hand_elderly_007")[0] == (
      "an elderly person waves their left hand.")
  assert len(cap.deepmimic_captions("humanoid3d_walk")) >= 3
  for motion in cap.DEEPMIMIC_CAPTIONS:
    assert len(set(cap.DEEPMIMIC_CAPTIONS[motion])) >= 3
  assert cap.get_captioner("a person {name}")("walk_fast-01") == ["a person walk fast 01"]
  assert cap.swap_left_right("Left hand, then right; clockwise.") == (
      "Right hand, then left; counterclockwise.")
  tsv = tmp_path / "c.tsv"
  tsv.write_text("a\tfirst\n# note\na\tsecond\nb\tthird\n")
  assert cap.read_captions_file(tsv) == {"a": ["first", "second"], "b": ["third"]}
  tsv.write_text("a first\n")
  with pytest.raises(cap.InputError, match=":1:"):
    cap.read_captions_file(tsv)


def test_bandai_contents_cover_the_data(bandai_dir):
  stems = [p.stem for p in (bandai_dir / "dataset-2" / "data").glob("*.bvh")]
  stems += [p.stem for p in (bandai_dir / "dataset-1" / "data").glob("*.bvh")]
  assert len(stems) > 300
  for stem in stems:
    assert cap.bandai_captions(stem)


def test_splits_are_stable_and_non_empty():
  ids = [f"clip{i:03d}" for i in range(40)]
  small = dw.assign_splits(ids[:3])
  assert sorted(set(small.values())) == ["test", "train", "val"]
  base = dw.assign_splits(ids[:30])
  more = dw.assign_splits(ids)
  assert all(more[i] == base[i] for i in ids[:30])
  counts = {s: sum(v == s for v in more.values()) for s in dw.SPLITS}
  assert counts["train"] > counts["val"] and counts["train"] > counts["test"]


def test_import_bandai_walk_cli(bandai_dir, tmp_path, capsys):
  src = bandai_dir / "dataset-2" / "data"
  good = [src / "dataset-2_walk_normal_007.bvh", src / "dataset-2_run_active_005.bvh",
          src / "dataset-2_walk_elderly_005.bvh"]
  broken = tmp_path / "broken.bvh"
  broken.write_text("HIERARCHY\nROOT Hips\n{\n")
  out = tmp_path / "ds"
  rc = cli.main(["import", "bvh", *map(str, good), str(broken), str(tmp_path / "absent.bvh"),
                 "--map", "bandai", "--template", "bandai", "--out", str(out)])
  assert rc == 0
  err = capsys.readouterr().err
  assert "broken" in err and "absent.bvh" in err
  report = json.loads((out / "import_report.json").read_text())
  assert sorted(report["kept"]) == sorted(p.stem for p in good)
  assert set(report["failures"]) == {"broken", str(tmp_path / "absent.bvh")}
  splits = {s: (out / f"{s}.txt").read_text().split() for s in dw.SPLITS}
  assert sorted(sum(splits.values(), [])) == sorted(report["kept"]) and all(splits.values())
  mean, std = np.load(out / "Mean.npy"), np.load(out / "Std.npy")
  assert mean.shape == (263,) and std.shape == (263,) and np.all(std > 0)

  from lead_jax.motion.features import recover_from_ric
  from lead_jax.motion.skeleton import T2M_TARGET_OFFSETS, get_skeleton
  stem = "dataset-2_walk_normal_007"
  features = np.load(out / "new_joint_vecs" / f"{stem}.npy")
  joints = np.load(out / "new_joints" / f"{stem}.npy")
  assert features.dtype == np.float32 and joints.dtype == np.float32
  assert features.shape == (report["kept"][stem], 263) and joints.shape == (features.shape[0], 22, 3)
  np.testing.assert_allclose(np.asarray(recover_from_ric(features)), joints, atol=1e-4)
  # Canonicalised as HumanML3D: origin, floor, bones of the target skeleton, walks toward +z.
  np.testing.assert_allclose(joints[0, 0, [0, 2]], 0.0, atol=1e-5)
  assert abs(joints[..., 1].min()) < 1e-5
  parents = get_skeleton("t2m").parents
  bones = np.linalg.norm(joints[:, 1:] - joints[:, [parents[j] for j in range(1, 22)]], axis=-1)
  np.testing.assert_allclose(bones, np.broadcast_to(
      np.linalg.norm(T2M_TARGET_OFFSETS[1:], axis=-1), bones.shape), atol=2e-3)
  assert joints[-1, 0, 2] > 1.0
  for line in (out / "texts" / f"{stem}.txt").read_text().splitlines():
    caption, tokens, start, end = parse_text_line(line)
    assert caption and tokens and (start, end) == (0.0, 0.0)


def test_write_dataset_skips_short_and_mirrors(humanml3d_dir, tmp_path):
  joints = np.load(humanml3d_dir / "new_joints" / "012314.npy")
  clips = {"long": joints, "short": joints[:30], "bad": joints[:, :21]}
  texts = {k: ["a person raises the left hand."] for k in clips}
  report = dw.write_dataset(clips, texts, tmp_path, mirror=True)
  assert sorted(report["kept"]) == ["Mlong", "long"]
  assert set(report["skipped"]) == {"short", "bad"} and "min-len" in report["skipped"]["short"]
  assert "right hand" in (tmp_path / "texts" / "Mlong.txt").read_text()
  a, m = (np.load(tmp_path / "new_joints" / f"{k}.npy") for k in ("long", "Mlong"))
  # Mirror: the same motion reflected, left/right swapped. Heights agree up to the asymmetry of
  # the HumanML3D target skeleton that both are rescaled to (about 1 cm).
  perm = get_perm()
  np.testing.assert_allclose(m[..., 1], a[:, perm, 1], atol=0.02)
  assert np.abs(m[..., 1] - a[..., 1]).max() > 0.05  # left/right really swapped
  # Stored features equal the unpadded extraction (bucket padding is exact).
  from lead_jax.motion.features import extract_features
  np.testing.assert_allclose(np.load(tmp_path / "new_joint_vecs" / "long.npy"),
                             np.asarray(extract_features(joints)), atol=2e-5)


def get_perm():
  from lead_jax.motion.skeleton import get_skeleton
  return get_skeleton("t2m").mirror_permutation


def test_import_deepmimic_cli_keeps_all_fifteen(tmp_path):
  pytest.importorskip("pybullet_data")
  out = tmp_path / "dm"
  assert cli.main(["import", "deepmimic", "--out", str(out)]) == 0
  report = json.loads((out / "import_report.json").read_text())
  assert len(report["kept"]) == 15 and not report["skipped"] and not report["failures"]
  walk = np.load(out / "new_joints" / "humanoid3d_walk.npy")
  assert walk[60, 0, 2] - walk[0, 0, 2] > 1.0
