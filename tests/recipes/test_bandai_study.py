"""`lead-jax study bandai --quick` on the real Bandai Namco clips: the data, evaluator and VAE steps
end to end, what the data step guarantees (splits by take, the held-out style), and the resume;
then every other step (the whole quick study, resumed from those three) and what each writes."""

import json
import shutil
import time

import numpy as np
import pytest

from lead_jax import checkpoints, cli
from lead_jax.data import layout
from lead_jax.errors import ConfigError
from lead_jax.io import captions
from lead_jax.recipes import bandai_study

STEPS = "data,evaluator,vae"


def _study(out, bandai_dir, steps=STEPS, quick=True):
  return cli.main(["study", "bandai", "--out", str(out), "--bandai", str(bandai_dir)]
                  + (["--steps", steps] if steps else []) + (["--quick"] if quick else []))


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
  assert stored["dataset-2_walk_elderly_005"]["split"] in ("heldout_examples", "heldout_test")


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


# ---- every step of the quick study ---------------------------------------------------------------
LCM_ROWS = ["MotionLCM (4 steps)", "LEAD-MotionLCM (4 steps)"]  # quick: Table 5 at 4 steps
MTI_ROWS = [f"{name}{suffix}" for name in ("no token", "MTI_lead", "MTI_mld", "MTI_feat")
            for suffix in ("", " w/ project")]


@pytest.fixture(scope="module")
def full_study(quick_study, bandai_dir, tmp_path_factory):
  """The whole quick study: a copy of the three-step study, resumed with every step."""
  out = tmp_path_factory.mktemp("bandai_full") / "quick"
  shutil.copytree(quick_study, out)
  start = time.time()
  assert _study(out, bandai_dir, steps=None) == 0
  print(f"quick study, steps denoiser..report: {time.time() - start:.0f} s")
  return out


def _check_rows(summary, names):
  assert list(summary) == ["Real"] + names
  for name, row in summary.items():
    assert 0.0 <= row["R@1"]["mean"] <= row["R@2"]["mean"] <= row["R@3"]["mean"] <= 1.0, name
    assert np.isfinite(row["FID"]["mean"]) and row["FID"]["mean"] >= 0.0, name
    assert row["FID"]["ci95"] >= 0.0 and row["Diversity"]["mean"] > 0.0, name


def test_every_step_runs_and_records_its_outputs(full_study):
  records = json.loads((full_study / "steps.json").read_text())
  assert list(records) == list(bandai_study.STEPS)
  lcm, denoiser = records["lcm"]["outputs"], records["denoiser"]["outputs"]
  assert lcm["steps"] == 10 and lcm["params"] > denoiser["params"]  # + the guidance embedding
  assert np.isfinite(lcm["final"]["eval/huber"]) and lcm["final"]["eval/huber"] > 0
  for stage in ("denoiser", "projector", "lcm"):  # trained on cached VAE posteriors
    config = checkpoints.load_config(str(full_study / "workdirs" / stage))
    assert config["latent_cache"]["crops_per_clip"] == 2
    assert list((full_study / "workdirs" / stage / "latent_cache").glob("train-*.npz"))
  log = (full_study / "time_log.md").read_text()
  assert all(f"| {step} |" in log for step in bandai_study.STEPS)


def test_evaluate_writes_tables_1_and_5(full_study):
  tables = json.loads((full_study / "results" / "evaluate.json").read_text())
  _check_rows(tables["table1"]["summary"], ["MLD", "LEAD"])
  _check_rows(tables["table5"]["summary"], LCM_ROWS)
  assert all(len(v) == 2 for v in tables["table1"]["rows"]["LEAD"].values())  # 2 replications
  assert tables["table1"]["settings"]["split"] == "test"
  # Both tables share the Real row (the same replications of the same test split).
  assert tables["table1"]["rows"]["Real"] == tables["table5"]["rows"]["Real"]
  md = (full_study / "results" / "evaluate.md").read_text()
  assert "| LEAD |" in md and "| LEAD-MotionLCM (4 steps) |" in md


def test_ablations_train_the_listed_variants(full_study):
  out = json.loads((full_study / "steps.json").read_text())["ablations"]["outputs"]
  assert out["run"] == ["noALIGN"] and "skip" in out["not_run"] and out["steps"] == 5
  config = checkpoints.load_config(str(full_study / "workdirs" / "ablation_noALIGN"))
  assert config["loss"]["w_align"] == 0.0 and config["loss"]["w_rec"] > 0
  result = json.loads((full_study / "results" / "ablations" / "noALIGN.json").read_text())
  assert result["variant"]["steps"] == 5 and result["settings"]["replications"] == 2
  assert list(result["summary"]) == ["Real", "LEAD (noALIGN)"]
  assert np.isfinite(out["rows"]["LEAD (noALIGN)"]["FID"])
  md = (full_study / "results" / "ablations.md").read_text()
  assert "| LEAD (noALIGN) |" in md and "Variants run: noALIGN" in md


def test_tsne_figures_by_content_and_style(full_study):
  out = json.loads((full_study / "steps.json").read_text())["tsne"]["outputs"]
  assert out["motions"] == 20  # the test split
  for key in ("content", "style"):
    png = full_study / "results" / f"fig2_{key}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for panel in ("vae", "projected"):
      sil = out[key]["panels"][panel]["latent_silhouette"]
      assert -1.0 <= sil <= 1.0
  assert out["style"]["labels"] == 6


def test_mti_scores_the_held_out_style(full_study):
  out = json.loads((full_study / "steps.json").read_text())["mti"]["outputs"]
  assert out["test_clips"] == 26 and len(out["examples"]) == 4
  assert all(captions.parse_bandai_stem(i).style == "elderly" for i in out["examples"])
  assert list(out["rows"]) == MTI_ROWS
  for row in out["rows"].values():
    assert np.isfinite(row["FID"]) and row["FID"] >= 0
    assert 0.0 <= row["style_retrieval"] <= 1.0 and 0.0 <= row["content_retrieval"] <= 1.0
  for space in ("lead", "mld", "feat"):
    assert np.all(np.isfinite(out["losses"][space]["fixed_batch"]))
  assert "a person <heldout> walks." in (full_study / "results" / "mti.md").read_text()


def test_report_collects_the_steps(full_study):
  md = (full_study / "results" / "bandai.md").read_text()
  assert "CC BY-NC 4.0" in md and "Bandai Namco Research Inc." in md
  assert "lead-jax study bandai --out OUT --quick" in md
  for figure in ("fig2_content.png", "fig2_style.png"):  # relative to the markdown file
    assert f"]({figure})" in md and (full_study / "results" / figure).is_file()
  for table in ("| LEAD |", "| LEAD (noALIGN) |", "| MTI_lead w/ project |", "| lcm |"):
    assert table in md
  # The reading states LEAD's FID against MLD's interval as the numbers say.
  rows = json.loads((full_study / "results" / "evaluate.json").read_text())["table1"]["summary"]
  lead, mld = rows["LEAD"]["FID"], rows["MLD"]["FID"]
  inside = abs(lead["mean"] - mld["mean"]) <= mld["ci95"]
  assert (f"LEAD FID {lead['mean']:.3f} is {'inside' if inside else 'outside'} MLD's 95% "
          f"interval") in md


# ---- pure helpers ---------------------------------------------------------------------------------
def test_style_retrieval_counts_the_nearest_reference():
  reference = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  generated = np.array([[1.0, 0.0], [9.0, 1.0], [0.0, 8.0], [6.0, 0.0]])
  got = bandai_study.style_retrieval(generated, reference, ["elderly", "normal", "elderly"],
                                     ["walk", "walk", "run"], "elderly",
                                     ["walk", "walk", "walk", "run"])
  assert got == {"style_retrieval": 0.5, "content_retrieval": 0.5}


def test_ablation_configs_override_one_field(tmp_path):
  study = bandai_study.open_study(tmp_path / "s", tmp_path, "quick")
  base = study.stage_config("projector")
  for variant, field, value in (("noKL", "w_kl", 0.0), ("noREC", "w_rec", 0.0)):
    config = bandai_study.ablation_config(study, variant)
    assert config.loss[field] == value and base.loss[field] > 0
    assert config.train.num_steps == 5
    assert config.projector.to_dict() == base.projector.to_dict()
  assert bandai_study.ablation_config(study, "mlp").projector.arch == "mlp"
  with pytest.raises(ConfigError, match="unknown variant 'wide'"):
    bandai_study.ablation_config(study, "wide")
  assert bandai_study.mti_prompt("<x>", "walk") == "a person <x> walks."
  assert bandai_study.mti_prompt(None, "raise-up-both-hands") == "a person raises both hands."
