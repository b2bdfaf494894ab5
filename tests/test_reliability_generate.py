"""Generation faults (docs/reliability.md): non-finite motions are never written and are named,
one failing export does not lose the others, stages loaded with another VAE or other statistics
than they were trained with, and the smaller `sample` / `invert` checks. Tiny random stages as in
test_pipeline.py."""

import json
import shutil
import warnings

import jax
import numpy as np
import pytest

from gen_stages import write_tiny_bert, write_tiny_stages
from lead_jax import checkpoints, cli
from lead_jax import workdir as stage_io
from lead_jax.commands import pipeline_args
from lead_jax.errors import InputError, LeadJaxWarning
from lead_jax.fingerprints import tree_fingerprint
from lead_jax.generate import Pipeline
from lead_jax.io import generated
from lead_jax.text.concepts import Concept, load_concept
from lead_jax.train import inversion

pytest.importorskip("torch")
STEPS = 2
# Every generation here has these 2 prompts (the second longer than the tiny encoder's 32-token
# context) and lengths <= 32 frames: one compiled program serves the whole module.
LONG = " ".join(["a person walks forward slowly"] * 10)
PROMPTS = ["someone jumps", LONG]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp("rel_gen")
  bert = write_tiny_bert(root / "bert")
  return write_tiny_stages(root / "runs", text_encoder_path=bert, text_dim=32)


@pytest.fixture(scope="module")
def pipe(tiny):
  return Pipeline.from_workdir(tiny["projector"])


@pytest.fixture(scope="module")
def good(pipe):
  return pipe.generate(PROMPTS, [24, 24], jax.random.key(0), steps=STEPS)


@pytest.fixture
def loaded(pipe, monkeypatch):
  """`lead-jax sample` / `invert` use the module's pipeline (compiled once) instead of loading
  their own from the workdir."""
  monkeypatch.setattr(pipeline_args, "load_pipeline", lambda args: pipe)


def _sample(tiny, out, *extra):
  return cli.main(["sample", "--workdir", str(tiny["projector"]), "--steps", str(STEPS),
                   "--out", str(out), "--no-animation", *extra])


def test_generate_flags_non_finite_motions(pipe, good):
  assert good["finite"].tolist() == [True, True]
  bad = pipe.generate(PROMPTS, [24, 24], jax.random.key(0), steps=STEPS, guidance_scale=1e38)
  assert bad["finite"].tolist() == [False, False]
  assert not np.isfinite(bad["features"]).all()


def test_sample_with_an_absurd_guidance_scale_writes_no_nan_and_names_the_prompts(
    tiny, loaded, tmp_path, capsys):
  out = tmp_path / "gen"
  assert _sample(tiny, out, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "--length", "24",
                 "--guidance-scale", "1e38") == 1
  err = capsys.readouterr().err
  assert f"prompt {PROMPTS[0]!r} sample 0: the generated motion is not finite" in err
  assert f"prompt {PROMPTS[1]!r} sample 0" in err
  index = json.loads((out / "index.json").read_text())
  assert [e["features"] for e in index] == [None, None] and all(e["error"] for e in index)
  assert not list((out / "features").iterdir()) and not list((out / "bvh").iterdir())


def test_one_bad_motion_or_export_keeps_the_others(good, tmp_path, monkeypatch):
  twice = lambda a: np.concatenate([a, a])
  result = dict(good, texts=good["texts"] * 2, **{k: twice(good[k]) for k in (
      "features", "joints", "lengths", "finite", "prompt_index", "sample_index")})
  result["sample_index"] = np.array([0, 0, 1, 1])
  result["features"][0, 3] = np.nan  # motion 0: non-finite
  result["finite"][0] = False
  real = generated.features_to_bvh

  def flaky_bvh(features, path, **kwargs):
    if "P0001_S00" in str(path):  # motion 1: its BVH export fails
      raise InputError("degenerate pose")
    return real(features, path, **kwargs)

  monkeypatch.setattr(generated, "features_to_bvh", flaky_bvh)
  entries = generated.save_generation(result, tmp_path, animation=False)
  assert [bool(e["error"]) for e in entries] == [True, True, False, False]
  assert entries[0]["features"] is None and not (tmp_path / "features" / "P0000_S00.npy").exists()
  assert "BVH export failed (degenerate pose)" in entries[1]["error"]
  assert entries[1]["bvh"] is None
  np.testing.assert_array_equal(np.load(tmp_path / entries[1]["features"]),
                                result["features"][1, :24])
  for e in entries[2:]:
    assert (tmp_path / e["features"]).is_file() and (tmp_path / e["bvh"]).is_file()
  assert [e["sample"] for e in entries] == [0, 0, 1, 1]
  assert generated.failed_entries(entries) == entries[:2]


def test_sample_defaults_warnings_and_early_argument_checks(tiny, loaded, tmp_path, capsys):
  out = tmp_path / "gen"
  with pytest.warns(LeadJaxWarning, match="prompt 1 is longer than the text encoder's context"):
    assert _sample(tiny, out, "--prompt", PROMPTS[0], "--prompt", LONG, "--no-bvh") == 0
  index = json.loads((out / "index.json").read_text())
  assert [e["length"] for e in index] == [32, 32]  # the stages' data.max_len, not 196
  assert [e["truncated"] for e in index] == [False, True]
  prompts = tmp_path / "prompts.txt"
  prompts.write_text(f"8 {PROMPTS[0]}\n32 {LONG}\n")
  with pytest.warns(LeadJaxWarning, match=r"1 length\(s\) below 16 frames, the shortest clip "
                                          r"the stages trained on .*: prompt 0 \(8\)"):
    assert _sample(tiny, out, "--prompts", str(prompts), "--no-bvh") == 0
  assert [e["length"] for e in json.loads((out / "index.json").read_text())] == [8, 32]
  # Bad arguments fail before anything loads (the workdir does not even exist).
  a_file = tmp_path / "a_file"
  a_file.write_text("")
  for args, message in ((["--out", str(a_file)], "is a file; give a folder"),
                        (["--out", str(tmp_path / "o"), "--fps", "0"], "--fps must be positive")):
    assert cli.main(["sample", "--workdir", str(tmp_path / "absent"), "--prompt", "x",
                     *args]) == 2
    assert message in capsys.readouterr().err


def test_invert_with_a_non_finite_loss_writes_nothing(tiny, loaded, tmp_path, monkeypatch,
                                                      capsys):
  # What `--lr 1e30` gives (measured: loss 0.058 -> nan): the run's losses and embedding.
  def diverged(pipe, motions, token, init_word, settings, progress=False):
    concept = Concept(token=token, embedding=np.full(8, np.nan, np.float32), encoder="minilm",
                      token_dim=8, embed_dim=32, vocab_size=10)
    return inversion.InversionRun(concept=concept, losses=np.array([0.058, np.inf, np.nan]),
                                  eval_losses=np.array([0.058, np.nan]), seconds_per_step=0.1,
                                  compile_seconds=1.0)

  monkeypatch.setattr(inversion, "invert", diverged)
  np.save(tmp_path / "m.npy", np.zeros((24, 263), np.float32))
  out = tmp_path / "c.npz"
  rc = cli.main(["invert", "--workdir", str(tiny["projector"]), "--motion", str(tmp_path / "m.npy"),
                 "--token", "<x>", "--steps", "3", "--lr", "1e30", "--out", str(out)])
  assert rc == 2 and not out.exists()
  err = capsys.readouterr().err
  assert ("concept '<x>': the training loss became non-finite at step 2 of 3 (inf) with learning "
          f"rate 1e+30 (fixed-batch loss 0.058 -> nan); nothing written to {out}") in err
  # A NaN motion file is named.
  np.save(tmp_path / "m.npy", np.full((24, 22, 3), np.nan, np.float32))
  assert cli.main(["invert", "--workdir", str(tiny["projector"]), "--motion",
                   str(tmp_path / "m.npy"), "--token", "<x>", "--out", str(out)]) == 2
  assert f"{tmp_path / 'm.npy'}: extract_features: joints contain NaN or inf in 24 frame(s)" in (
      capsys.readouterr().err)


def _resave(workdir, step, meta, offset=0.0, config=None):
  """Saves the stage's latest weights (+ offset) at `step` with `meta` (what the trainers record)
  and its config (or `config`)."""
  params = jax.tree.map(lambda x: x + offset, checkpoints.load_params(workdir))
  config = config or checkpoints.load_config(workdir)
  with checkpoints.Checkpointer(workdir) as ckpt:
    ckpt.save(step, {"params": params}, meta=meta, config=config)
  return tree_fingerprint(params)


@pytest.fixture
def recorded(tiny, tmp_path):
  """A copy of the tiny stages whose denoiser and projector record the VAE (run 'A', step 3) and
  the statistics they were trained with, as `lead-jax train` saves them."""
  runs = tmp_path / "runs"
  shutil.copytree(tiny["vae"].parent, runs)
  configs = {}
  for name in ("vae", "denoiser", "projector"):  # point the configs at the copies
    config = checkpoints.load_config(runs / name)
    config["data"]["dir"] = str(runs / "data")
    deps = config["dependencies"]
    deps.update({k: str(runs / k.split("_")[0]) for k in ("vae_workdir", "denoiser_workdir")
                 if deps[k]})
    configs[name] = config
  vae_fp = _resave(runs / "vae", 3, {"run_id": "A"}, config=configs["vae"])
  stats = stage_io.stats_record(np.load(runs / "data" / "Mean.npy"),
                                np.load(runs / "data" / "Std.npy"), str(runs / "data"))
  provenance = {"stats": stats, "dependencies": {"vae": {
      "workdir": str(runs / "vae"), "step": 3, "run_id": "A", "fingerprint": vae_fp}}}
  for name in ("denoiser", "projector"):
    _resave(runs / name, 3, {"run_id": name, "provenance": provenance}, config=configs[name])
  return runs


def test_pipeline_checks_what_the_stages_were_trained_with(recorded, pipe, tmp_path, capsys):
  load = lambda **kw: Pipeline.from_workdir(recorded / "projector",
                                            text_encoder=pipe.text_encoder, **kw)
  with warnings.catch_warnings():
    warnings.simplefilter("error", stage_io.DependencyWarning)
    load()  # as trained: silent
  # 100 more steps of the same VAE run: a warning naming both steps.
  _resave(recorded / "vae", 4, {"run_id": "A"}, offset=1e-3)
  with pytest.warns(stage_io.DependencyWarning, match=r"trained with the vae at step 3 .* now its "
                                                      r"step 4"):
    load()
  # Another VAE (another run): an error, unless accepted.
  _resave(recorded / "vae", 5, {"run_id": "B"}, offset=2e-3)
  with pytest.raises(stage_io.DependencyChangedError,
                     match=r"the vae loaded \(.*step 5\) is not the one it was trained with"):
    load()
  with pytest.warns(stage_io.DependencyWarning, match=r"\(accepted\)"):
    load(allow_changed_dependencies=True)
  # Re-imported data (other Mean/Std) with the original VAE back.
  shutil.rmtree(recorded / "vae" / "checkpoints" / "5")
  shutil.rmtree(recorded / "vae" / "checkpoints" / "4")
  np.save(recorded / "data" / "Std.npy", np.load(recorded / "data" / "Std.npy") * 1.5)
  args = ["sample", "--workdir", str(recorded / "projector"), "--prompt", "x", "--out",
          str(tmp_path / "gen")]
  assert cli.main(args) == 2
  err = capsys.readouterr().err
  assert "dataset statistics (Mean/Std of" in err and "--allow-dependency-change" in err
  parsed = cli.build_parser("sample").parse_args(args + ["--allow-dependency-change"])
  with pytest.warns(stage_io.DependencyWarning, match=r"statistics .*\(accepted\)"):
    assert pipeline_args.load_pipeline(parsed).has_projector


def test_truncated_or_non_finite_concept_files_are_refused(tmp_path):
  concept = Concept(token="<x>", embedding=np.ones(8, np.float32), encoder="minilm", token_dim=8,
                    embed_dim=32, vocab_size=10)
  path = concept.save(tmp_path / "c.npz")
  data = path.read_bytes()
  (tmp_path / "cut.npz").write_bytes(data[:len(data) // 2])
  with pytest.raises(InputError, match=r"cut.npz: not a readable concept .npz file"):
    load_concept(tmp_path / "cut.npz")
  concept.embedding = np.full(8, np.nan, np.float32)
  with pytest.raises(InputError, match=r"'<x>': the learnt embedding is not finite.*nothing "
                                       r"written"):
    concept.save(tmp_path / "nan.npz")
  with np.load(path) as archive:
    fields = dict(archive)
  np.savez(tmp_path / "nan.npz", **dict(fields, embedding=np.full(8, np.nan, np.float32)))
  with pytest.raises(InputError, match=r"nan.npz: the concept's embedding is not finite"):
    load_concept(tmp_path / "nan.npz")
