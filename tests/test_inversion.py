"""Motion textual inversion: the three objectives, frozen-everything-but-v*, concept files, CLI.

Tiny stages with random parameters (tests/gen_stages.py); example motions are random features
(the inversion only sees them through the frozen VAE).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import inversion as inversion_config
from gen_stages import write_tiny_bert, write_tiny_clip, write_tiny_stages
from lead_jax import cli
from lead_jax.errors import ConfigError, InputError, WeightsError
from lead_jax.generate import Pipeline
from lead_jax.text.base import TokenBatch
from lead_jax.text.concepts import Concept, load_concept
from lead_jax.train import inversion
from lead_jax.train.state import TrainState

pytest.importorskip("torch")
STEPS = 4


@pytest.fixture(scope="module")
def bert_stages(tmp_path_factory):
  root = tmp_path_factory.mktemp("inv_bert")
  return write_tiny_stages(root / "runs", text_encoder_path=write_tiny_bert(root / "bert"),
                           text_dim=32)


@pytest.fixture(scope="module")
def clip_stages(tmp_path_factory):
  root = tmp_path_factory.mktemp("inv_clip")
  return write_tiny_stages(root / "runs", text_encoder_path=write_tiny_clip(root / "clip", 24),
                           text_dim=24, kind="clip")


@pytest.fixture(scope="module")
def motions():
  rng = np.random.default_rng(0)
  return [rng.normal(size=(40, 263)).astype(np.float32),
          rng.normal(size=(20, 263)).astype(np.float32)]


def settings(space, steps):
  return inversion.InversionSettings.from_config(
      inversion_config.get_config(), space=space, steps=steps, learning_rate=0.1,
      segment_frames=24, t_max=300)


def template_tokens(pipe, token, extra):
  """The first 4 templates with `token`, trimmed to 16 token positions."""
  batch = pipe.text_encoder.tokenize([t.replace("<*>", token) for t in inversion.TEMPLATES[:4]],
                                     extra)
  return TokenBatch(ids=jnp.asarray(batch.ids[:, :16]),
                    attention_mask=jnp.asarray(batch.attention_mask[:, :16]),
                    eos_index=jnp.asarray(batch.eos_index))


@pytest.mark.parametrize("space", ["lead", "mld", "feat"])
def test_step_decreases_the_objective(bert_stages, space):
  """On a fixed batch (segments, t, noise), the jitted step's Adam updates of v* lower the loss."""
  pipe = Pipeline.from_workdir(bert_stages["projector"])
  extra = pipe.text_encoder.new_tokens(["<dance-x>"], "walk")
  token_id = pipe.text_encoder.vocab_size
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(4, 24, 263)).astype(np.float32)
  mask = np.arange(24)[None] < np.asarray([24, 20, 16, 24])[:, None]
  inverter = inversion.Inverter(pipe, settings(space, 6))
  v = jnp.asarray(extra.embedding("<dance-x>"))
  frozen, tokens = inversion.frozen_inputs(pipe, extra), template_tokens(pipe, "<dance-x>", extra)
  state = TrainState.create(v, inverter.program.optimizer, rng=jax.random.key(0))
  batch = inversion.make_batch(feats, mask, tokens)
  losses = []
  for _ in range(6):
    state, metrics = inverter.program.step(state, batch, frozen, jax.random.key(0))
    losses.append(float(metrics["loss"]))
  assert np.all(np.diff(losses) < 0), losses
  assert losses[-1] < 0.98 * losses[0], losses
  # The objective is the paper's: recompute the first loss by hand for the eps-MSE space.
  if space == "mld":
    from lead_jax.diffusion import schedulers
    v0 = jnp.asarray(extra.embedding("<dance-x>"))
    enc = pipe.text_encoder
    emb = enc.embed_tokens(enc.params, tokens.ids, extra.embeddings)
    emb = jnp.where((tokens.ids == token_id)[..., None], v0, emb)
    text = enc.encode_embeddings(enc.params, emb, tokens)[0]
    _, mu, _ = pipe.vae.apply({"params": pipe.params["vae"]}, feats, mask,
                              method=pipe.vae.encode)
    _, k_t, k_noise = jax.random.split(jax.random.key(0), 3)
    t = jax.random.randint(k_t, (4,), 0, 300, jnp.int32)
    eps = jax.random.normal(k_noise, mu.shape)
    state = schedulers.make_ddpm()
    abar = state.alphas_cumprod[t][:, None, None]
    z_t = jnp.sqrt(abar) * mu + jnp.sqrt(1 - abar) * eps
    eps_hat = pipe.denoiser.apply({"params": pipe.params["denoiser"]}, z_t, t, text)
    np.testing.assert_allclose(losses[0], float(jnp.mean((eps_hat - eps) ** 2)), rtol=1e-4)


def snapshot(pipe):
  return jax.tree.map(np.array, {"models": pipe.params, "text": pipe.text_encoder.params})


def test_invert_changes_only_the_token_and_concepts_round_trip(bert_stages, motions, tmp_path):
  pipe = Pipeline.from_workdir(bert_stages["projector"])
  plain_before = pipe.generate(["a person walks forward."], [16], jax.random.key(5), steps=STEPS)
  before = snapshot(pipe)
  vocabulary = dict(pipe.text_encoder.tokenizer.get_vocab())
  run = inversion.invert(pipe, motions, "<dance-x>", "walk", settings("mld", steps=3))
  assert run.losses.shape == (3,) and np.isfinite(run.losses).all()
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(snapshot(pipe))):
    np.testing.assert_array_equal(a, b)  # every frozen parameter bitwise identical
  assert pipe.text_encoder.tokenizer.get_vocab() == vocabulary  # the encoder learnt nothing
  table = np.asarray(pipe.text_encoder.params["word_embeddings"]["embedding"])
  init = table[pipe.text_encoder.tokenizer("walk", add_special_tokens=False)["input_ids"]].mean(0)
  np.testing.assert_array_equal(pipe.text_encoder.initial_embedding("walk"), init)
  learnt = run.concept.embedding
  assert learnt.shape == (32,) and np.abs(learnt - init).max() > 1e-3
  assert run.concept.settings["space"] == "mld" and run.concept.encoder == "minilm"

  path = run.concept.save(tmp_path / "dance.npz")
  prompts = ["a person <dance-x>", "a person walks forward."]
  with_learnt = pipe.generate(prompts, [16, 16], jax.random.key(5), steps=STEPS,
                              concepts=[run.concept])
  fresh = Pipeline.from_workdir(bert_stages["projector"])
  concept = load_concept(path)
  loaded = fresh.generate(prompts, [16, 16], jax.random.key(5), steps=STEPS, concepts=[concept])
  np.testing.assert_array_equal(loaded["features"], with_learnt["features"])
  # A prompt without the token: bitwise the motion generated before any concept existed.
  alone = fresh.generate(["a person walks forward."], [16], jax.random.key(5), steps=STEPS)
  np.testing.assert_array_equal(alone["features"], plain_before["features"])
  # The token matters: the same prompt with the init word instead differs.
  init_out = fresh.generate(["a person walk", "a person walks forward."], [16, 16],
                            jax.random.key(5), steps=STEPS)
  assert np.abs(init_out["features"][0] - loaded["features"][0]).max() > 1e-4

  # Several concepts at once; a concept of another encoder is refused.
  second = Concept(token="<limp>", embedding=np.ones(32, np.float32), encoder="minilm",
                   token_dim=32, embed_dim=32, vocab_size=fresh.text_encoder.vocab_size)
  both = fresh.generate(["a person <dance-x> <limp>", "a person walks forward."], [16, 16],
                        jax.random.key(5), steps=STEPS, concepts=[concept, second])
  assert np.isfinite(both["features"]).all()
  np.testing.assert_array_equal(both["features"][1], loaded["features"][1])
  wrong = Concept(token="<x>", embedding=np.ones(32, np.float32), encoder="clip",
                  token_dim=32, embed_dim=24, vocab_size=49408)
  with pytest.raises(WeightsError, match="learnt with text encoder"):
    fresh.generate(prompts, [16, 16], jax.random.key(5), steps=STEPS, concepts=[concept, wrong])


def test_clip_encoder_inversion(clip_stages, motions):
  pipe = Pipeline.from_workdir(clip_stages["projector"])
  run = inversion.invert(pipe, motions, "<dance-x>", "walk", settings("lead", steps=2))
  assert np.isfinite(run.losses).all() and np.isfinite(run.eval_losses).all()
  extra = pipe.text_encoder.new_tokens(["<dance-x>"], "walk")
  batch = pipe.text_encoder.tokenize(["someone <dance-x>."], extra)
  token_id = int(batch.ids[0][batch.ids[0] >= pipe.text_encoder.vocab_size][0])
  assert (batch.ids == token_id).sum() == 1
  # The placeholder's id is above end-of-text; pooling still reads the first end-of-text.
  assert token_id == pipe.text_encoder.vocab_size and batch.ids.max() == token_id
  assert batch.ids[0, batch.eos_index[0]] == pipe.text_encoder.eos_token_id
  assert run.concept.encoder == "clip" and (run.concept.token_dim, run.concept.embed_dim) == (32, 24)
  assert np.abs(run.concept.embedding - extra.embedding("<dance-x>")).max() > 0  # it learnt


def test_concept_file_contents(tmp_path):
  concept = Concept(token="<d>", embedding=np.arange(4, dtype=np.float32),
                              encoder="minilm", token_dim=4, embed_dim=8, vocab_size=10,
                              init_word="walk", settings={"space": "lead", "steps": 20},
                              losses=np.asarray([2.0, 1.0], np.float32))
  loaded = load_concept(concept.save(tmp_path / "d.npz"))
  assert (loaded.token, loaded.encoder, loaded.token_dim, loaded.embed_dim, loaded.vocab_size,
          loaded.init_word, loaded.settings) == ("<d>", "minilm", 4, 8, 10, "walk",
                                                 {"space": "lead", "steps": 20})
  np.testing.assert_array_equal(loaded.embedding, concept.embedding)
  np.testing.assert_array_equal(loaded.losses, [2.0, 1.0])
  np.save(tmp_path / "bad.npy", np.zeros(3))
  with pytest.raises(InputError):
    load_concept(tmp_path / "bad.npy")


def test_bad_settings_and_motions(bert_stages, tmp_path):
  with pytest.raises(ConfigError, match="space"):
    inversion.InversionSettings.from_config(inversion_config.get_config(), space="latent")
  with pytest.raises(ConfigError, match="<\\*>"):
    inversion.InversionSettings.from_config(inversion_config.get_config(),
                                            templates=("a person walks",))
  np.save(tmp_path / "m.npy", np.zeros((10, 12), np.float32))
  with pytest.raises(InputError, match="expected features"):
    inversion.load_motion_features(tmp_path / "m.npy")
  mld = Pipeline.from_workdir(bert_stages["denoiser"])
  with pytest.raises(ConfigError, match="projector"):
    inversion.invert(mld, [np.zeros((30, 263), np.float32)], "<z>", "walk", settings("lead", 1))


def test_joints_input_and_invert_then_sample_commands(bert_stages, humanml3d_dir, tmp_path):
  joints = np.load(humanml3d_dir / "new_joints" / "012314.npy")[:40]
  np.save(tmp_path / "j.npy", joints)
  feats = inversion.load_motion_features(tmp_path / "j.npy")
  assert feats.shape == (39, 263)
  out = tmp_path / "c.npz"
  rc = cli.main(["invert", "--workdir", str(bert_stages["projector"]), "--motion",
                 str(tmp_path / "j.npy"), str(humanml3d_dir / "new_joint_vecs" / "000000.npy"),
                 "--token", "<wave-x>", "--init-word", "wave", "--space", "lead", "--steps", "2",
                 "--segment-frames", "24", "--out", str(out)])
  assert rc == 0
  concept = load_concept(out)
  assert concept.token == "<wave-x>" and concept.losses.shape == (2,)
  assert concept.settings["segment_frames"] == 24 and concept.settings["batch_size"] == 4
  rc = cli.main(["sample", "--workdir", str(bert_stages["projector"]), "--concept", str(out),
                 "--prompt", "someone <wave-x>", "--length", "8", "--steps", "2", "--no-bvh",
                 "--no-animation", "--out", str(tmp_path / "gen")])
  assert rc == 0 and (tmp_path / "gen" / "features" / "P0000_S00.npy").is_file()
