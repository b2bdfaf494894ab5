"""MTI protocol (paper Sec. 5.5, Table 3): per-motion tokens, no leakage, Table-3 layout, seeds.

Tiny random stages (tests/gen_stages.py, tiny BERT), a random trainable evaluator on the training
tests' 4-clip dataset (hash caption encoder), 3 motions, 2 inversion steps, 4 DDIM steps.
"""

import json

import jax
import numpy as np
import pytest

from configs import inversion as inversion_config
from gen_stages import tiny_evaluator_config, write_tiny_bert, write_tiny_stages
from lead_jax import cli
from lead_jax.evaluation import mti, protocol, report
from lead_jax.generate import Pipeline
from lead_jax.metrics import embedders
from lead_jax.metrics import scores as metrics
from lead_jax.metrics import trainable_evaluator as te
from lead_jax.train import inversion

pytest.importorskip("torch")
SIZE, REPS, SEED = 3, 3, 3


@pytest.fixture(scope="module")
def mti_setup(tiny_dataset, text_encoder, tmp_path_factory):
  root = tmp_path_factory.mktemp("mti")
  stages = write_tiny_stages(root / "runs", text_encoder_path=write_tiny_bert(root / "bert"),
                             text_dim=32)
  pipe = Pipeline.from_workdir(stages["projector"], data_dir=str(tiny_dataset))
  config = tiny_evaluator_config(tiny_dataset)
  model = te.build(config.evaluator)
  mean = np.load(tiny_dataset / "Mean.npy")
  std = np.load(tiny_dataset / "Std.npy")
  embedder = embedders.TrainedEmbedder(
      te.TrainedEvaluator(model, te.init_params(model, jax.random.key(0)), "tiny"), mean, std)
  return pipe, embedder, protocol.stream_batches(config, text_encoder), mean, std


def _mti_settings():
  inv = inversion.InversionSettings.from_config(
      inversion_config.get_config(), space="lead", steps=2, learning_rate=0.1, segment_frames=16,
      t_max=300)
  return mti.MTISettings(inversion=inv, size=SIZE, spaces=("lead",), template="a person <*>",
                         init_word="walk", steps=4)


@pytest.fixture(scope="module")
def runs(mti_setup):
  """Two runs with the same seeds; the second records every inversion and generation call."""
  pipe, embedder, batches, mean, std = mti_setup
  settings = protocol.ProtocolSettings(replications=REPS, seed=SEED)
  first = mti.evaluate_mti(embedder, pipe, batches, settings, _mti_settings(), mean, std)
  concepts, calls, encodes, inverters = [], [], [], []
  real_invert, real_generate, real_encode = (inversion.Inverter.invert, pipe.generate,
                                             pipe.encode_prompts)

  def spy_invert(self, *args, **kwargs):
    run = real_invert(self, *args, **kwargs)
    concepts.append(run.concept)
    inverters.append(self)
    return run

  def spy_generate(texts, lengths, key, **kwargs):
    res = real_generate(texts, lengths, key, **kwargs)
    calls.append({"texts": list(texts), "lengths": list(lengths), "key": key, "kwargs": kwargs,
                  "vocab": set(pipe.text_encoder.tokenizer.get_vocab()),
                  "features": res["features"]})
    return res

  def spy_encode(texts, concepts=()):
    out = real_encode(texts, concepts)
    encodes.append({"texts": list(texts), "concepts": list(concepts), "embeddings": out,
                    "vocab": set(pipe.text_encoder.tokenizer.get_vocab())})
    return out

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(inversion.Inverter, "invert", spy_invert)
    mp.setattr(pipe, "generate", spy_generate)
    mp.setattr(pipe, "encode_prompts", spy_encode)
    second = mti.evaluate_mti(embedder, pipe, batches, settings, _mti_settings(), mean, std)
  # One inverter per space serves every motion: its train step compiled once for all of them.
  assert len({id(i) for i in inverters}) == 1 and inverters[0].num_compiled() == 1
  return first, second, concepts, (calls, encodes)


def test_table3_rows_columns_and_fixed_seeds(runs, tmp_path):
  first, second, _, _ = runs
  md_a, js_a = report.write_report(first, tmp_path / "a", report.TABLE3_COLUMNS, "MTI")
  md_b, js_b = report.write_report(second, tmp_path / "b", report.TABLE3_COLUMNS, "MTI")
  assert md_a.read_text() == md_b.read_text()
  assert js_a.read_text() == js_b.read_text()
  lines = md_a.read_text().splitlines()
  assert lines[2] == "| Method | R@3 ↑ | FID ↓ | MM-Dist ↓ | Diversity → |"
  assert [l.split(" | ")[0] for l in lines[4:7]] == ["| Real", "| MTI_lead", "| MTI_lead w/ project"]
  assert lines[4].split(" | ")[2] == "-"                      # Real has no FID (as in Table 3)
  data = json.loads(js_a.read_text())
  assert list(data["rows"]) == ["Real", "MTI_lead", "MTI_lead w/ project"]
  for name in ("MTI_lead", "MTI_lead w/ project"):
    assert all(len(data["rows"][name][c]) == REPS for c in report.TABLE3_COLUMNS)
    assert all(np.isfinite(data["rows"][name][c]).all() for c in report.TABLE3_COLUMNS)
  assert "FID" not in data["rows"]["Real"]
  assert data["settings"]["mti"]["size"] == SIZE and data["settings"]["mti"]["inversion"]["steps"] == 2
  assert [m["token"] for m in data["motions"]] == ["<mti-0>", "<mti-1>", "<mti-2>"]
  # The projector changes the motions, so the two rows differ.
  assert data["rows"]["MTI_lead"]["MM-Dist"] != data["rows"]["MTI_lead w/ project"]["MM-Dist"]


def test_real_row_uses_ground_truth_captions_and_motions(runs, mti_setup):
  """Recompute the Real row from the seeded subset: caption embeddings vs ground-truth motions."""
  first = runs[0]
  _, embedder, batches, mean, std = mti_setup
  split = mti.select_subset(batches(SEED), mean, std, SIZE, SEED)
  assert [m["caption"] for m in first["motions"]] == split.captions
  text = embedder.embed_text(split.batches[0])
  gt = embedder.embed_motion(split.gt_features, split.lengths)
  for rep in range(REPS):
    perm = np.random.default_rng(SEED + rep).permutation(SIZE)
    assert first["rows"]["Real"]["MM-Dist"][rep] == pytest.approx(
        metrics.mm_dist(text[perm], gt[perm], SIZE), rel=1e-5)
    assert first["rows"]["Real"]["R@3"][rep] == pytest.approx(
        metrics.r_precision(text[perm], gt[perm], 3, SIZE)[2])


def test_tokens_do_not_leak_between_motions(runs, mti_setup):
  _, _, concepts, (calls, encodes) = runs
  pipe = mti_setup[0]
  assert [c.token for c in concepts] == ["<mti-0>", "<mti-1>", "<mti-2>"]
  emb = np.stack([c.embedding for c in concepts])
  for a in range(SIZE):
    for b in range(a + 1, SIZE):
      assert not np.allclose(emb[a], emb[b]), "tokens learnt from different motions coincide"
  # Motion k's prompt is encoded once, with motion k's concept alone (learnt embedding included).
  assert len(encodes) == SIZE
  for k, enc in enumerate(encodes):
    assert enc["texts"] == [f"a person <mti-{k}>"]
    (given,) = enc["concepts"]
    assert given.token == f"<mti-{k}>"
    np.testing.assert_array_equal(given.embedding[None], emb[k][None])
    for j in range(SIZE):
      assert f"<mti-{j}>" not in enc["vocab"]                # the encoder itself never learns one
  assert len(calls) == 2 * SIZE                               # without / with the projector
  for i, call in enumerate(calls):
    k = i // 2
    assert call["texts"] == [f"a person <mti-{k}>"]
    assert call["kwargs"]["use_projector"] == bool(i % 2)
    assert call["kwargs"]["num_samples"] == REPS
    assert "concepts" not in call["kwargs"]                   # the embedding carries the concept
    assert call["kwargs"]["prompt_embeddings"] is encodes[k]["embeddings"]
  assert "<mti-0>" not in pipe.text_encoder.tokenizer.get_vocab()
  # Generating with motion 2's concept alone, after everything else ran, gives the same motions.
  call = calls[-1]
  kwargs = {k: v for k, v in call["kwargs"].items() if k != "prompt_embeddings"}
  alone = pipe.generate(call["texts"], call["lengths"], call["key"], **kwargs,
                        concepts=[concepts[2]])
  np.testing.assert_allclose(alone["features"], call["features"], atol=1e-5)


def test_select_subset_is_seeded_and_uniform(mti_setup):
  _, _, batches, mean, std = mti_setup
  whole = protocol.collect_split(batches(0), mean, std)
  everything = mti.select_subset(batches(0), mean, std, 10, 0)
  assert everything.captions == whole.captions
  np.testing.assert_array_equal(everything.lengths, whole.lengths)
  for row, length in enumerate(whole.lengths):
    np.testing.assert_array_equal(everything.gt_features[row, :length],
                                  whole.gt_features[row, :length])
    assert not everything.gt_features[row, length:].any()
  picks = [tuple(mti.select_subset(batches(0), mean, std, 2, s).captions) for s in range(12)]
  assert picks[0] == tuple(mti.select_subset(batches(0), mean, std, 2, 0).captions)
  assert len(set(picks)) > 1 and all(len(p) == 2 for p in picks)


def test_mti_flags_are_checked(tmp_path, capsys):
  rc = cli.main(["evaluate", "--workdir", str(tmp_path / "none"), "--evaluator", str(tmp_path),
                 "--out", str(tmp_path / "out"), "--mti", "--mti-template", "a person walks"])
  assert rc == 2 and "<*>" in capsys.readouterr().err
  rc = cli.main(["evaluate", "--workdir", str(tmp_path / "none"), "--evaluator", str(tmp_path),
                 "--out", str(tmp_path / "out"), "--mti", "--mti-size", "1"])
  assert rc == 2 and "--mti-size" in capsys.readouterr().err
