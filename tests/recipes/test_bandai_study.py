"""`lead-jax study bandai --quick` on the real Bandai Namco clips: the data, evaluator and VAE steps
end to end, what the data step guarantees (splits by take, the held-out style), and the resume."""

import json

import numpy as np
import pytest

from lead_jax import cli
from lead_jax.data import layout
from lead_jax.io import captions

STEPS = "data,evaluator,vae"


def _study(out, bandai_dir, steps=STEPS, quick=True):
  return cli.main(["study", "bandai", "--out", str(out), "--steps", steps, "--bandai",
                   str(bandai_dir)] + (["--quick"] if quick else []))


@pytest.fixture(scope="module")
def quick_study(bandai_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("bandai_study") / "quick"
  assert _study(out, bandai_dir) == 0
  return out


def test_data_step_splits_by_take_and_holds_the_style_out(quick_study):
  data = quick_study / "data"
  splits = {s: layout.read_split_ids(data, s) for s in
            ("train", "val", "test", "heldout_examples", "heldout_test", "heldout_aliases")}
  # The 210 loose dataset-2 files (3 per content x style): 30 elderly held out, 2 too short.
  labels = {i: captions.parse_bandai_stem(i) for ids in splits.values() for i in ids}
  assert len(labels) == sum(len(v) for v in splits.values()) == 208  # no clip in two splits
  training = [labels[i] for s in ("train", "val", "test") for i in splits[s]]
  assert {c.style for c in training} == {"active", "exhausted", "feminine", "masculine", "normal",
                                         "youthful"}
  assert len({c.content for c in training}) == 10
  assert min(len(splits[s]) for s in ("train", "val", "test")) >= 10
  assert len(splits["train"]) > 4 * len(splits["test"])
  examples = [labels[i] for i in splits["heldout_examples"]]
  assert {c.style for c in examples} == {"elderly"} and len(examples) == 4
  assert {c.content for c in examples} == {"walk", "run", "wave-both-hands", "raise-up-both-hands"}
  assert {labels[i].style for i in splits["heldout_test"]} == {"elderly"}
  assert len(splits["heldout_test"]) == 26 and splits["heldout_aliases"] == []
  # Statistics from the train split only; every clip long enough, captioned with paraphrases.
  mean, std = layout.load_stats(data)
  assert mean.shape == std.shape == (263,) and np.all(std > 0)
  for clip_id in splits["train"][:20] + splits["heldout_test"][:5]:
    clip = layout.load_clip(data, clip_id)
    assert clip.length >= 24
    assert len({c.text for c in clip.captions}) >= 5
  stored = json.loads((data / "labels.json").read_text())
  assert stored["dataset-2_walk_elderly_002"]["split"] in ("heldout_examples", "heldout_test")


def test_evaluator_and_vae_steps_record_numbers(quick_study):
  records = json.loads((quick_study / "steps.json").read_text())
  assert list(records) == ["data", "evaluator", "vae"]
  assert all(r["seconds"] > 0 for r in records.values())
  evaluator = records["evaluator"]["outputs"]
  assert evaluator["steps"] == 60
  real = evaluator["real"]
  assert 0.0 <= real["R@1"] <= real["R@2"] <= real["R@3"] <= 1.0
  assert np.isfinite(real["FID"]) and real["FID"] >= 0 and real["Diversity"] > 0
  for key, classes in (("content", 10), ("style", 6)):
    sep = evaluator["separation"][key]
    assert 2 <= sep["labels"] <= classes
    assert 0.0 <= sep["knn_accuracy"] <= 1.0 and -1.0 <= sep["silhouette"] <= 1.0
    assert 0.0 < sep["majority_rate"] <= 1.0
  table = (quick_study / "results" / "evaluator.md").read_text()
  assert "| Real |" in table and "| content |" in table and "| style |" in table
  vae = records["vae"]["outputs"]
  assert vae["steps"] == 40 and vae["params"] > 0
  assert np.isfinite(vae["final"]["eval/rec_loss"]) and vae["final"]["eval/mpjpe"] > 0
  assert (quick_study / "workdirs" / "vae" / "checkpoints").is_dir()


def test_rerun_skips_finished_steps(quick_study, bandai_dir, capsys):
  before = (quick_study / "steps.json").read_text()
  capsys.readouterr()
  assert _study(quick_study, bandai_dir) == 0
  printed = capsys.readouterr().out
  assert printed.count("finished in a previous run") == 3
  assert (quick_study / "steps.json").read_text() == before
  log = (quick_study / "time_log.md").read_text()
  assert log.count("| reused") == 3


def test_bad_requests_are_named(quick_study, bandai_dir, tmp_path, capsys):
  assert _study(tmp_path / "fresh", bandai_dir, steps="denoiser") == 2
  assert "needs vae first" in capsys.readouterr().err
  assert _study(quick_study, bandai_dir, steps="data", quick=False) == 2
  assert "holds a 'quick' study" in capsys.readouterr().err
  assert _study(tmp_path / "fresh", bandai_dir, steps="data,plot") == 2
  assert "unknown study step" in capsys.readouterr().err
