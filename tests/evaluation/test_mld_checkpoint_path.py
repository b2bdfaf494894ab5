"""From MLD's published checkpoint to LEAD numbers, end to end through the CLI.

A random-weight checkpoint in MLD's exact key layout (benchmarks/torch_reference.MLDModel, saved as
a Lightning checkpoint), a tiny CLIP text tower, a random T2M evaluator in the `finest.tar` layout
with GloVe files, all written here; the 4-clip HumanML3D folder of the training tests:
import mld -> stage workdirs -> 2 projector steps -> sample -> evaluate (twice: the caption caches
are reused); a corrupt and a pickle-needing checkpoint are refused with a clear message.
"""

import argparse
import json
import pathlib
import pickle

import jax
import numpy as np
import pytest

from gen_stages import write_tiny_clip
from lead_jax import cli, workdir
from lead_jax.convert.mld_ckpt import state_dict_to_params
from lead_jax.data.text_cache import TextEmbeddingCache
from lead_jax.evaluation import items as mld_items
from lead_jax.text import load_text_encoder

torch = pytest.importorskip("torch")
from benchmarks import torch_reference  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
SMALL = dict(d=32, ff=64, num_layers=1, heads=2)
WORDS = ["sos", "eos", "unk", "a", "man", "kick", "left", "leg", "person", "walk", "forward"]


@pytest.fixture(scope="module")
def mld_run(tiny_dataset, tmp_path_factory):
  root = tmp_path_factory.mktemp("mld_path")
  clip = write_tiny_clip(root / "clip", projection_dim=24)
  torch.manual_seed(0)
  model = torch_reference.MLDModel(263, 24, **SMALL).eval()
  state = model.state_dict()
  torch.save({"state_dict": state, "epoch": 1999, "global_step": 7}, root / "mld.ckpt")
  # A T2M evaluator in the finest.tar layout, and GloVe files.
  nets = torch_reference.t2m_evaluator(263, seed=2)
  torch.save({**{k: v.state_dict() for k, v in nets.items()}, "epoch": 28}, root / "finest.tar")
  glove = root / "glove"
  glove.mkdir()
  np.save(glove / "our_vab_data.npy",
          np.random.default_rng(0).normal(size=(len(WORDS), 300)).astype(np.float32))
  (glove / "our_vab_words.pkl").write_bytes(pickle.dumps(WORDS))
  (glove / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(WORDS)}))
  return {"root": root, "clip": clip, "state": state, "data": tiny_dataset, "glove": glove}


def _import(run, out, *extra):
  return cli.main(["import", "mld", str(run["root"] / "mld.ckpt"), "--out", str(out), "--clip",
                   str(run["clip"]), "--data-dir", str(run["data"]), "--num-heads", "2", *extra])


def test_import_train_sample_evaluate(mld_run, capsys):
  root = mld_run["root"]
  assert _import(mld_run, root / "mld") == 0
  vae, den = workdir.load_stage(root / "mld" / "vae"), workdir.load_stage(root / "mld" / "denoiser")
  want_vae, want_den = state_dict_to_params(mld_run["state"], num_heads=2)
  for got, want in ((vae.params, want_vae), (den.params, want_den)):
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), got, want)
  assert (vae.kind, den.kind, vae.step, den.step) == ("vae", "denoiser", 0, 0)
  assert dict(vae.config.vae) == {"nfeats": 263, "latent_dim": 32, "latent_size": 1, "ff_size": 64,
                                  "num_layers": 1, "num_heads": 2, "dropout": 0.1, "max_len": 500}
  assert den.config.denoiser.text_dim == 24 and den.config.text_encoder.kind == "clip"
  assert den.config.dependencies.vae_workdir == str((root / "mld" / "vae").resolve())
  assert json.loads((root / "mld" / "import.json").read_text())["dataset"] == "humanml3d"

  lead = root / "lead"
  assert cli.main(["train", f"--config={REPO / 'configs' / 'test_projector.py'}",
                   f"--workdir={lead}", f"--config.data.dir={mld_run['data']}",
                   f"--config.dependencies.vae_workdir={root / 'mld' / 'vae'}",
                   f"--config.dependencies.denoiser_workdir={root / 'mld' / 'denoiser'}",
                   "--config.text_encoder.kind=clip", "--config.text_encoder.dim=24",
                   f"--config.dependencies.text_encoder_path={mld_run['clip']}",
                   "--config.vae.max_len=500"]) == 0
  assert workdir.load_stage(lead).step == 2
  gen = root / "gen"
  assert cli.main(["sample", "--workdir", str(lead), "--prompt", "a man kicks", "--length", "40",
                   "--steps", "2", "--no-bvh", "--no-animation", "--out", str(gen)]) == 0
  assert np.load(gen / "features" / "P0000_S00.npy").shape == (40, 263)

  ev = root / "t2m_evaluator"
  assert cli.main(["import", "t2m-evaluator", str(root / "finest.tar"), "--glove",
                   str(mld_run["glove"]), "--mean", str(mld_run["data"] / "Mean.npy"), "--std",
                   str(mld_run["data"] / "Std.npy"), "--out", str(ev)]) == 0
  cache = root / "cache"
  capsys.readouterr()
  assert cli.main(["evaluate", "--workdir", str(lead), "--evaluator", str(ev), "--steps", "2",
                   "--mm-prompts", "2", "--mm-repeats", "2", "--batch-size", "4", "--cache-dir",
                   str(cache), "--replications", "2", "--out", str(root / "eval")]) == 0
  assert "protocol mld: 4 items from 4 clips" in capsys.readouterr().out
  table = json.loads((root / "eval" / "table.json").read_text())
  assert list(table["rows"]) == ["Real", "MLD", "LEAD"]
  assert all(len(v) == 2 and np.isfinite(v).all() for v in table["rows"]["LEAD"].values())
  s = table["settings"]
  assert (s["protocol"], s["items"], s["evaluator"]["kind"], s["evaluator"]["batching"]) == (
      "mld", 4, "t2m", "per_sequence")
  items = json.loads((root / "eval" / "items.json").read_text())
  assert len(items) == 7 and {i["clip"] for i in items} == {"000000", "012314", "007005", "M010968"}
  md = (root / "eval" / "table.md").read_text()
  assert "| LEAD |" in md and "Protocol mld (4 items" in md
  # Another evaluation encodes no caption again: both caches are read from disk.
  files = sorted(cache.glob("*.npz"))
  assert len(files) == 2 and any(f.name.startswith("t2m-text-") for f in files)
  items = mld_items.mld_items(mld_run["data"], "test", min_len=16)
  drawn = [item.captions[c] for seed in (0, 1, 1_000_003, 1_000_004)   # replications, Real rows
           for item, c in zip(items, mld_items.draw(items, np.random.default_rng(seed)).caption)]
  embedder, _ = workdir.load_evaluator(ev, None, None, cache_dir=cache)
  embedder._text_cache.compute = lambda tokens: pytest.fail(f"encoded again: {tokens}")
  text = embedder.embed_text({"tokens": [c.tokens_string for c in drawn[:8]]})  # replications
  assert text.shape == (8, 512) and np.isfinite(text).all()
  cond = TextEmbeddingCache(load_text_encoder("clip", mld_run["clip"]), cache)
  cond.compute = lambda texts: pytest.fail(f"encoded again: {texts}")
  assert cond.embed([c.text for c in drawn]).shape == (16, 24)

  # Table 5: MotionLCM's checkpoint (same VAE) imported, its rows beside MLD's and LEAD's.
  torch.manual_seed(1)
  lcm_model = torch_reference.MotionLCMModel(263, 24, time_cond_proj_dim=16, **SMALL).eval()
  lcm_state = {**lcm_model.state_dict(),
               **{k: v for k, v in mld_run["state"].items() if k.startswith("vae.")}}
  torch.save({"state_dict": lcm_state}, root / "motionlcm.ckpt")
  assert cli.main(["import", "motionlcm", str(root / "motionlcm.ckpt"), "--out",
                   str(root / "motionlcm"), "--clip", str(mld_run["clip"]), "--data-dir",
                   str(mld_run["data"]), "--num-heads", "2"]) == 0
  assert cli.main(["evaluate", "--workdir", str(lead), "--lcm-workdir",
                   str(root / "motionlcm" / "lcm"), "--lcm-steps", "2", "--evaluator",
                   str(ev), "--steps", "2", "--mm-prompts", "0", "--batch-size", "4",
                   "--replications", "2", "--cache-dir", str(cache),
                   "--out", str(root / "eval5")]) == 0
  table = json.loads((root / "eval5" / "table.json").read_text())
  assert list(table["rows"]) == ["Real", "MLD", "LEAD", "MotionLCM (2 steps)",
                                 "LEAD-MotionLCM (2 steps)"]
  fids = [table["rows"][r]["FID"][0] for r in table["rows"] if "MotionLCM" in r]
  assert np.isfinite(fids).all() and len(set(fids)) == 2


def test_corrupt_and_pickle_needing_checkpoints_are_refused(mld_run, tmp_path, capsys):
  junk = tmp_path / "junk.ckpt"
  junk.write_bytes(b"\x80\x02not a checkpoint at all")
  args = argparse.Namespace  # any object that needs pickle to load
  assert cli.main(["import", "mld", str(junk), "--out", str(tmp_path / "a"), "--clip",
                   str(mld_run["clip"]), "--data-dir", str(mld_run["data"])]) == 2
  err = capsys.readouterr().err
  assert "junk.ckpt" in err and "Traceback" not in err
  torch.save({"state_dict": mld_run["state"], "hyper_parameters": args(lr=1e-4)},
             tmp_path / "pickled.ckpt")
  run = {**mld_run, "root": tmp_path}
  (tmp_path / "mld.ckpt").write_bytes((tmp_path / "pickled.ckpt").read_bytes())
  assert _import(run, tmp_path / "refused") == 2
  assert "--allow-pickle" in capsys.readouterr().err
  assert not (tmp_path / "refused" / "vae").exists()
  assert _import(run, tmp_path / "accepted", "--allow-pickle") == 0
