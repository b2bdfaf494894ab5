"""Generation pipeline: loading stage workdirs, the jitted generate program, `lead-jax sample`.

Stages are tiny (configs/test_*.py sizes) with random parameters saved through lead_jax.checkpoints;
the text encoder is a tiny 2-layer BERT (MiniLM layout) written to a tmp dir.
"""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_stages import write_tiny_bert, write_tiny_clip, write_tiny_stages
from lead_jax import cli
from lead_jax.diffusion import schedulers
from lead_jax.errors import ConfigError, InputError, MissingFileError
from lead_jax.generate import Pipeline, prompts, synthesis

pytest.importorskip("torch")
STEPS = 4


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
  root = tmp_path_factory.mktemp("gen")
  bert = write_tiny_bert(root / "bert")
  return write_tiny_stages(root / "runs", text_encoder_path=bert, text_dim=32, ema=True)


@pytest.fixture(scope="module")
def pipe(stages):
  return Pipeline.from_workdir(stages["projector"])


def test_from_workdir_loads_ema_and_dependencies(stages, pipe):
  from lead_jax import checkpoints
  assert pipe.has_projector and pipe.max_frames == 32 and pipe.joints_num == 22
  for stage in ("vae", "denoiser", "projector"):
    ema = checkpoints.load_params(stages[stage], "ema_params")
    raw = checkpoints.load_params(stages[stage], "params")
    for got, want, other in zip(jax.tree.leaves(pipe.params[stage]), jax.tree.leaves(ema),
                                jax.tree.leaves(raw)):
      np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
      assert not np.array_equal(np.asarray(got), np.asarray(other))
  np.testing.assert_array_equal(pipe.mean, np.load(stages["data"] / "Mean.npy"))
  mld = Pipeline.from_workdir(stages["denoiser"], params_item="params")
  assert not mld.has_projector
  for got, want in zip(jax.tree.leaves(mld.params["vae"]),
                       jax.tree.leaves(checkpoints.load_params(stages["vae"], "params"))):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_generate_shapes_masks_mixed_lengths(pipe):
  out = pipe.generate(["a person walks forward.", "someone jumps"], [20, 32], jax.random.key(0),
                      steps=STEPS, num_samples=2)
  assert out["features"].shape == (4, 32, 263) and out["joints"].shape == (4, 32, 22, 3)
  np.testing.assert_array_equal(out["lengths"], [20, 20, 32, 32])
  assert out["texts"] == ["a person walks forward."] * 2 + ["someone jumps"] * 2
  np.testing.assert_array_equal(out["sample_index"], [0, 1, 0, 1])
  np.testing.assert_array_equal(out["mask"].sum(1), [20, 20, 32, 32])
  assert np.all(out["features"][:2, 20:] == 0) and np.all(out["joints"][:2, 20:] == 0)
  assert np.all(np.abs(out["features"][:, :20]).sum(-1) > 0)
  assert np.isfinite(out["features"]).all() and out["projector"]
  # Two samples of one prompt differ; the joints are recover_from_ric of the features.
  assert not np.allclose(out["features"][0], out["features"][1])
  from lead_jax.motion import recover_from_ric
  np.testing.assert_allclose(out["joints"][2], recover_from_ric(out["features"][2]), atol=1e-5)


def test_same_seed_same_motion_and_no_recompile_for_other_lengths(pipe):
  a = pipe.generate(["a man walks", "the robot dances"], [16, 24], jax.random.key(3), steps=STEPS)
  compiled = pipe.num_compiled()
  b = pipe.generate(["a man walks", "the robot dances"], [16, 24], jax.random.key(3), steps=STEPS)
  np.testing.assert_array_equal(a["features"], b["features"])
  c = pipe.generate(["a man walks", "the robot dances"], [9, 31], jax.random.key(3), steps=STEPS)
  assert pipe.num_compiled() == compiled  # other lengths: same program
  d = pipe.generate(["a man walks", "the robot dances"], [16, 24], jax.random.key(4), steps=STEPS)
  assert not np.allclose(a["features"], d["features"])
  assert c["features"].shape == (2, 31, 263) and np.all(c["features"][0, 9:] == 0)
  assert np.abs(c["features"][0, :9] - a["features"][0, :9]).max() > 0  # decoded to 9 frames
  # A motion depends on its key, prompt position and sample only, not on the rest of the batch.
  e = pipe.generate(["a man walks"], [16], jax.random.key(3), steps=STEPS, num_samples=3)
  # A different batch size changes XLA's float32 reduction order: equal to ~1e-5.
  np.testing.assert_allclose(e["features"][0], a["features"][0, :16], atol=1e-4)


def test_guidance_projector_scheduler_change_the_motion(pipe):
  args = (["a person walks forward."], [24], jax.random.key(1))
  base = pipe.generate(*args, steps=STEPS)["features"]
  no_cfg = pipe.generate(*args, steps=STEPS, guidance_scale=1.0)["features"]
  no_proj = pipe.generate(*args, steps=STEPS, use_projector=False)
  ddpm = pipe.generate(*args, steps=STEPS, scheduler="ddpm")["features"]
  assert not no_proj["projector"]
  for other in (no_cfg, no_proj["features"], ddpm):
    assert np.abs(base - other).max() > 1e-3
  np.testing.assert_array_equal(ddpm, pipe.generate(*args, steps=STEPS, scheduler="ddpm")["features"])


def test_scan_matches_python_loop_of_guided_ddim(pipe):
  """The scanned sampler equals MLD's loop: doubled batch (uncond first), eps_u + s (eps_c - eps_u),
  DDIM eta=0 steps over [..., 1], z_T = normal(key_i)."""
  state = schedulers.make_ddim(num_inference_steps=5)
  keys = jax.random.split(jax.random.key(7), 3)
  cond = jax.random.normal(jax.random.key(8), (3, 32))
  uncond = jax.random.normal(jax.random.key(9), (32,))
  den, params = pipe.denoiser, pipe.params["denoiser"]
  got = synthesis.sample(den, params, keys, cond, uncond, jnp.float32(7.5), state)
  z = jnp.stack([jax.random.normal(k, (1, 32)) for k in keys])
  for t, prev in zip(np.asarray(state.timesteps), np.asarray(state.prev_timesteps)):
    tt = jnp.full((6,), t)
    eps = den.apply({"params": params}, jnp.concatenate([z, z]), tt,
                    jnp.concatenate([jnp.broadcast_to(uncond, cond.shape), cond]))
    eps = eps[:3] + 7.5 * (eps[3:] - eps[:3])
    abar = state.alphas_cumprod[t]
    abar_prev = state.alphas_cumprod[prev] if prev >= 0 else state.final_alpha_cumprod
    x0 = (z - jnp.sqrt(1 - abar) * eps) / jnp.sqrt(abar)
    z = jnp.sqrt(abar_prev) * x0 + jnp.sqrt(1 - abar_prev) * eps
  np.testing.assert_allclose(np.asarray(got), np.asarray(z), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("texts,lengths,match", [
    (["a person walks"], [0], "lengths must be integers in \\[1, 32\\]"),
    (["a person walks"], [33], "\\[1, 32\\]"),
    (["a person walks"], [12.5], "integers"),
    (["a person walks", "someone"], [12], "2 integers"),
    ([""], [12], "non-empty"),
    (["   "], [12], "non-empty"),
    ("a person walks", [12], "list of prompts"),
    ([], [], "at least one prompt"),
])
def test_bad_inputs_raise_input_error(pipe, texts, lengths, match):
  with pytest.raises(InputError, match=match):
    pipe.generate(texts, lengths, jax.random.key(0), steps=STEPS)


def test_bad_settings_and_missing_projector(stages, pipe):
  with pytest.raises(InputError, match="steps"):
    pipe.generate(["a man walks"], 8, jax.random.key(0), steps=0)
  with pytest.raises(InputError, match="scheduler"):
    pipe.generate(["a man walks"], 8, jax.random.key(0), scheduler="euler")
  with pytest.raises(InputError, match="num_samples"):
    pipe.generate(["a man walks"], 8, jax.random.key(0), num_samples=0)
  mld = Pipeline.from_workdir(stages["denoiser"])
  with pytest.raises(ConfigError, match="no projector"):
    mld.generate(["a man walks"], 8, jax.random.key(0), use_projector=True)
  with pytest.raises(MissingFileError):
    Pipeline.from_workdir(stages["projector"], denoiser_workdir=str(stages["data"] / "nope"))


def test_bfloat16_matmuls_stay_close_to_float32(stages, pipe):
  fast = Pipeline.from_workdir(stages["projector"], matmul_dtype="bfloat16")
  assert fast.matmul_dtype == "bfloat16" and pipe.matmul_dtype == "float32"
  kernel = fast.compute_params["vae"]["final_layer"]["kernel"]
  assert kernel.dtype == jnp.bfloat16 and fast.params["vae"]["final_layer"]["kernel"].dtype == jnp.float32
  assert fast.compute_params is fast.compute_params  # cast once
  args = (["a person walks forward.", "someone jumps"], [24, 32], jax.random.key(5))
  a = pipe.generate(*args, steps=STEPS)
  b = fast.generate(*args, steps=STEPS)
  assert b["features"].dtype == np.float32
  np.testing.assert_array_equal(b["mask"], a["mask"])
  assert np.all(b["features"][0, 24:] == 0)
  rel = np.linalg.norm(b["features"] - a["features"]) / np.linalg.norm(a["features"])
  assert 1e-6 < rel < 5e-2, rel
  with pytest.raises(ConfigError, match="matmul dtype"):
    Pipeline.from_workdir(stages["projector"], matmul_dtype="float16")
  # The command-line flag reaches the pipeline.
  import argparse
  from lead_jax.commands import pipeline_args, sample
  parser = argparse.ArgumentParser()
  sample.add_arguments(parser)
  args = parser.parse_args(["--workdir", str(stages["projector"]), "--prompt", "x", "--out", "o",
                            "--matmul-dtype", "bfloat16"])
  assert pipeline_args.load_pipeline(args).matmul_dtype == "bfloat16"


def test_long_prompt_is_truncated_and_flagged(pipe):
  long = " ".join(["a person walks forward slowly"] * 10)
  out = pipe.generate([long, "a man walks"], [8, 8], jax.random.key(0), steps=STEPS)
  np.testing.assert_array_equal(out["truncated"], [True, False])
  assert np.isfinite(out["features"]).all()


def test_from_mld_checkpoint(tmp_path):
  torch = pytest.importorskip("torch")
  from benchmarks.torch_reference import MLDModel
  clip = write_tiny_clip(tmp_path / "clip", projection_dim=24)
  torch.manual_seed(0)
  model = MLDModel(263, 24, d=32, ff=64, num_layers=3, heads=2).eval()
  torch.save(model.state_dict(), tmp_path / "mld.ckpt")
  mean, std = np.zeros(263, np.float32), np.ones(263, np.float32)
  np.save(tmp_path / "Std.npy", std)
  pipe = Pipeline.from_mld_checkpoint(tmp_path / "mld.ckpt", clip, mean, tmp_path / "Std.npy",
                                      num_heads=2, max_frames=40)
  assert not pipe.has_projector and pipe.vae.num_layers == 3 and pipe.denoiser.text_dim == 24
  out = pipe.generate(["a person walks"], [40], jax.random.key(0), steps=STEPS)
  assert out["features"].shape == (1, 40, 263) and not out["projector"]
  # The decode is MLD's: compare with the PyTorch VAE on the same latent (recovered by re-running
  # the sampler through the pipeline pieces).
  tokens, _ = prompts.tokenize_prompts(pipe.text_encoder, ["a person walks"],
                                       pipe.text_encoder.no_extra_tokens())
  emb = pipe.text_encoder.embed_tokens(pipe.text_encoder.params, tokens.ids)
  pooled = pipe.text_encoder.encode_embeddings(pipe.text_encoder.params, emb, tokens)[0]
  from lead_jax.diffusion import motion_keys
  keys = motion_keys(jax.random.key(0), np.zeros(1, int), np.zeros(1, int))
  z0 = synthesis.sample(pipe.denoiser, pipe.params["denoiser"], keys, pooled[0:1],
                        pipe.uncond_embedding, jnp.float32(7.5), pipe.scheduler_state("ddim", STEPS))
  with torch.no_grad():
    ref = model.vae.decode(torch.from_numpy(np.array(z0)).permute(1, 0, 2),
                           torch.tensor([40]), 40).numpy()
  np.testing.assert_allclose(out["features"], ref, atol=2e-3)


def test_sample_command_writes_index(stages, tmp_path):
  prompts = tmp_path / "prompts.txt"
  prompts.write_text("# MLD example format\n12 a person walks forward.\n\nsomeone jumps\n")
  out = tmp_path / "out"
  rc = cli.main(["sample", "--workdir", str(stages["projector"]), "--prompts", str(prompts),
                 "--length", "10", "--num-samples", "2", "--steps", str(STEPS), "--out", str(out),
                 "--batch-size", "2"])
  assert rc == 0
  index = json.loads((out / "index.json").read_text())
  assert [(e["prompt"], e["sample"], e["length"]) for e in index] == [
      ("a person walks forward.", 0, 12), ("a person walks forward.", 1, 12),
      ("someone jumps", 0, 10), ("someone jumps", 1, 10)]
  for e in index:
    assert e["projector"] is True
    for field in ("features", "joints", "bvh", "animation"):
      assert (out / e[field]).is_file(), e[field]
  assert np.load(out / index[2]["features"]).shape == (10, 263)
  assert np.load(out / index[2]["joints"]).shape == (10, 22, 3)
  # Batching (2 motions per call) gives the motions of one big call.
  pipe = Pipeline.from_workdir(stages["projector"])
  big = pipe.generate(["a person walks forward.", "someone jumps"], [12, 10], jax.random.key(0),
                      steps=STEPS, num_samples=2)
  np.testing.assert_allclose(np.load(out / index[3]["features"]), big["features"][3, :10],
                             atol=1e-4)
  # A bad length in the file: exit status 2, message names the problem.
  prompts.write_text("500 a person walks\n")
  assert cli.main(["sample", "--workdir", str(stages["projector"]), "--prompts", str(prompts),
                   "--out", str(out), "--steps", "2"]) == 2


def test_prompt_embeddings_skip_the_text_program_and_give_the_same_motions(pipe):
  texts = ["a person walks forward.", "someone jumps", "a man waves"]
  emb = pipe.encode_prompts(texts)
  assert emb.shape == (3, 32) and emb.dtype == np.float32
  # The embeddings are the text encoder's pooled features (here a MiniLM-layout BERT).
  np.testing.assert_allclose(emb, pipe.text_encoder.encode(texts), atol=1e-5)
  args = (texts, [16, 24, 32], jax.random.key(7))
  want = pipe.generate(*args, steps=STEPS, num_samples=2)
  text_calls = pipe.text_program._cache_size()  # pylint: disable=protected-access
  got = pipe.generate(*args, steps=STEPS, num_samples=2, prompt_embeddings=emb)
  np.testing.assert_allclose(got["features"], want["features"], atol=1e-5)
  assert got["texts"] == want["texts"]
  np.testing.assert_array_equal(got["truncated"], want["truncated"])
  assert pipe.text_program._cache_size() == text_calls  # pylint: disable=protected-access
  # Other embeddings, other motions: the motion program reads them.
  other = pipe.generate(*args, steps=STEPS, num_samples=2, prompt_embeddings=emb[::-1].copy())
  assert np.abs(other["features"][0] - want["features"][0]).max() > 1e-3
  np.testing.assert_allclose(other["features"][2:4], want["features"][2:4], atol=1e-5)


@pytest.mark.parametrize("embeddings, match", [
    (np.zeros((2, 32), np.float32), r"shape \[3, 32\]"),
    (np.zeros((3, 16), np.float32), r"shape \[3, 32\]"),
    (np.zeros((3, 32), np.int32), "float array"),
    (np.full((3, 32), np.nan, np.float32), r"rows \[0, 1, 2\] are not finite"),
])
def test_bad_prompt_embeddings_raise_input_error(pipe, embeddings, match):
  with pytest.raises(InputError, match=match):
    pipe.generate(["a", "b", "c"], 8, jax.random.key(0), steps=STEPS, prompt_embeddings=embeddings)


def test_concepts_belong_to_encode_prompts_not_beside_embeddings(pipe):
  from lead_jax.text.concepts import Concept
  enc = pipe.text_encoder
  concept = Concept("<x>", np.ones(enc.token_dim, np.float32), enc.name, enc.token_dim,
                    enc.embed_dim, enc.vocab_size)
  emb = pipe.encode_prompts(["a person <x>"], [concept])
  assert not np.allclose(emb, pipe.encode_prompts(["a person <x>"]), atol=1e-3)
  with pytest.raises(InputError, match="concepts belong to encode_prompts"):
    pipe.generate(["a person <x>"], 8, jax.random.key(0), steps=STEPS, prompt_embeddings=emb,
                  concepts=[concept])


def test_prompt_embedding_table_encodes_each_caption_once(pipe):
  from lead_jax.evaluation import protocol
  table = protocol.PromptEmbeddings(pipe, batch_size=4)
  calls = []
  encode = pipe.encode_prompts
  pipe.encode_prompts = lambda texts: calls.append(list(texts)) or encode(texts)
  try:
    captions = ["a man walks", "someone jumps", "a man walks", "a girl runs", "he sits",
                "she waves", "a man walks"]
    got = table(captions)
    again = table(["she waves", "a man walks"])
  finally:
    del pipe.encode_prompts
  # Five distinct captions: one full chunk of 4, then one padded by repeating its caption.
  assert calls == [["a man walks", "someone jumps", "a girl runs", "he sits"], ["she waves"] * 4]
  assert len(table) == 5 and got.shape == (7, 32)
  np.testing.assert_allclose(got, pipe.text_encoder.encode(captions), atol=1e-5)
  np.testing.assert_array_equal(again, got[[5, 6]])
  assert table([]).shape == (0, 32)
  # A generator over the table gives the motions of the uncached pipeline.
  gen = protocol.pipeline_generator(pipe, True, steps=STEPS, batch_size=4, prompt_embeddings=table)
  lengths = np.array([16, 24, 8, 32, 12, 20, 28])
  feats = gen(captions, lengths, jax.random.key(2))
  want = pipe.generate(captions[:4], lengths[:4], jax.random.fold_in(jax.random.key(2), 0),
                       steps=STEPS)["features"]
  np.testing.assert_allclose(feats[:4, :32], want, atol=1e-5)
  assert feats.shape == (7, 32, 263) and len(table) == 5
  with pytest.raises(ConfigError, match="another pipeline"):
    protocol.pipeline_generator(types.SimpleNamespace(text_encoder=object()), True,
                                prompt_embeddings=table)
