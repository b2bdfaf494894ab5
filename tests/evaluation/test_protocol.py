"""Protocol: fixed seeds give identical tables; a generator returning the ground truth scores like it."""

import json

import jax
import numpy as np
import pytest

from gen_stages import tiny_evaluator_config
from lead_jax.errors import InputError
from lead_jax.evaluation import protocol, report
from lead_jax.metrics import embedders
from lead_jax.metrics import trainable_evaluator as te


@pytest.fixture(scope="module")
def setup(tiny_dataset, text_encoder):
  config = tiny_evaluator_config(tiny_dataset)
  model = te.build(config.evaluator)
  ev = te.TrainedEvaluator(model, te.init_params(model, jax.random.key(0)), "tiny")
  mean = np.load(tiny_dataset / "Mean.npy")
  std = np.load(tiny_dataset / "Std.npy")
  embedder = embedders.TrainedEmbedder(ev, mean, std)
  return embedder, protocol.stream_batches(config, text_encoder), mean, std


def _noisy_generator(captions, lengths, key):
  rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**30)))
  return rng.normal(size=(len(captions), int(lengths.max()), 263)).astype(np.float32)


def test_fixed_seed_gives_identical_tables(setup, tmp_path):
  embedder, batches, mean, std = setup
  settings = protocol.ProtocolSettings(replications=3, seed=5, mm_repeats=3, mm_times=2)
  run = lambda: protocol.evaluate(embedder, batches, {"noise": _noisy_generator}, settings,
                                  mean, std)
  a, b = run(), run()
  md_a, js_a = report.write_report(a, tmp_path / "a")
  md_b, js_b = report.write_report(b, tmp_path / "b")
  assert md_a.read_text() == md_b.read_text()
  assert js_a.read_text() == js_b.read_text()
  table = md_a.read_text().splitlines()
  assert table[0].startswith("| Method | R@1 ↑ | R@2 ↑ | R@3 ↑ | FID ↓ | MM-Dist ↓")
  assert table[2].startswith("| Real |") and table[3].startswith("| noise |")
  data = json.loads(js_a.read_text())
  assert len(data["rows"]["noise"]["FID"]) == 3
  assert data["settings"]["effective"]["group_size"] == 4
  # Two tables from one pass (the study's Tables 1 and 5): each keeps Real and its own rows.
  two = protocol.evaluate(embedder, batches, {"noise": _noisy_generator, "again": _noisy_generator},
                          settings, mean, std)
  first, second = protocol.select_rows(two, ["noise"]), protocol.select_rows(two, ["again"])
  assert list(first["rows"]) == list(first["summary"]) == ["Real", "noise"]
  assert list(second["rows"]) == ["Real", "again"] and second["settings"] == two["settings"]
  assert first["rows"]["noise"] == two["rows"]["noise"] == a["rows"]["noise"]  # the first method
  assert second["rows"]["Real"] == two["rows"]["Real"] == a["rows"]["Real"]
  with pytest.raises(InputError, match=r"no row\(s\) \['missing'\]"):
    protocol.select_rows(two, ["missing"])
  c = protocol.evaluate(embedder, batches, {"noise": _noisy_generator},
                        protocol.ProtocolSettings(replications=3, seed=6, mm_repeats=3,
                                                  mm_times=2), mean, std)
  assert c["rows"]["noise"]["FID"] != a["rows"]["noise"]["FID"]
  mean_fid, ci = data["summary"]["noise"]["FID"]["mean"], data["summary"]["noise"]["FID"]["ci95"]
  vals = np.array(data["rows"]["noise"]["FID"])
  assert mean_fid == pytest.approx(vals.mean()) and ci == pytest.approx(1.96 * vals.std() / np.sqrt(3))


def test_ground_truth_generator_matches_real_row(setup):
  embedder, batches, mean, std = setup
  cache = {}

  def gt_generator(captions, lengths, key):
    # The protocol hands the generator the same captions/lengths it embeds as ground truth.
    return cache["gt"][:len(captions)]

  seed = 2
  split = protocol.collect_split(batches(seed), mean, std)
  cache["gt"] = split.gt_features
  settings = protocol.ProtocolSettings(replications=1, seed=seed, mm_prompts=0)
  res = protocol.evaluate(embedder, batches, {"gt": gt_generator}, settings, mean, std)
  gt_row, real = res["rows"]["gt"], res["rows"]["Real"]
  assert abs(gt_row["FID"][0]) < 1e-4
  for k in ("R@1", "R@2", "R@3", "MM-Dist"):
    assert gt_row[k] == pytest.approx(real[k])
  assert "MModality" not in gt_row


def test_evaluate_command_reports_missing_workdir(tmp_path, capsys):
  from lead_jax import cli
  rc = cli.main(["evaluate", "--workdir", str(tmp_path / "none"), "--evaluator",
                 str(tmp_path / "finest.tar"), "--out", str(tmp_path / "out")])
  assert rc == 2
  assert "none" in capsys.readouterr().err
