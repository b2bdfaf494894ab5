"""The generation program packs prompts and motions: its motions equal an unpacked reference built
from the same parameters and keys, and random evaluation-like batches compile a few programs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_stages import WORDS, write_tiny_bert, write_tiny_clip, write_tiny_stages
from lead_jax.diffusion import motion_keys
from lead_jax.generate import Pipeline, prompts, synthesis
from lead_jax.models.motion_vae import first_block_table
from lead_jax.text.base import token_row_bucket
from lead_jax.text.concepts import Concept, as_extra_tokens

pytest.importorskip("torch")
STEPS = 3


@pytest.fixture(scope="module", params=["minilm", "clip"])
def pipe(request, tmp_path_factory):
  root = tmp_path_factory.mktemp(f"packed_{request.param}")
  if request.param == "minilm":
    text = write_tiny_bert(root / "bert")
  else:
    text = write_tiny_clip(root / "clip", projection_dim=32)
  stages = write_tiny_stages(root / "runs", text_encoder_path=text, text_dim=32,
                             kind=request.param)
  return Pipeline.from_workdir(stages["projector"])


def _unpacked_reference(pipe, texts, lengths, key, num_samples, concepts, steps):
  """`generate`'s motions computed without packing: the padded token batch through
  `encode_embeddings`, and `synthesize` with the motions' lengths (dense decode)."""
  enc = pipe.text_encoder
  extra = as_extra_tokens(concepts, enc)
  tokens, _ = prompts.tokenize_prompts(enc, texts, extra)
  emb = enc.embed_tokens(enc.params, tokens.ids, extra.embeddings)
  pooled = jax.jit(enc.encode_embeddings)(enc.params, emb, tokens)[0]
  prompt_pos = np.repeat(np.arange(len(texts)), num_samples)
  samples = np.tile(np.arange(num_samples), len(texts))
  motion_lengths = np.repeat(lengths, num_samples)
  frames = prompts.frame_bucket(max(lengths), pipe.max_frames)
  state = pipe.scheduler_state(pipe.default_scheduler(), steps)
  run = jax.jit(lambda params, cond, lens, keys: synthesis.synthesize(
      pipe.vae, pipe.denoiser, pipe.projector, params, cond, jnp.asarray(pipe.uncond_embedding),
      lens, keys, jnp.float32(7.5), state, jnp.asarray(pipe.mean), jnp.asarray(pipe.std), frames,
      pipe.joints_num))
  return run(pipe.compute_params, pooled[prompt_pos], jnp.asarray(motion_lengths, jnp.int32),
             motion_keys(key, prompt_pos, samples))


def test_generate_equals_unpacked_reference(pipe):
  enc = pipe.text_encoder
  concept = Concept(token="<dance-x>",
                    embedding=np.random.default_rng(0).normal(size=enc.token_dim).astype(np.float32),
                    encoder=enc.name, token_dim=enc.token_dim, embed_dim=enc.embed_dim,
                    vocab_size=enc.vocab_size)
  texts = ["a person walks forward.", "the man <dance-x>", "someone jumps", "a man walks slowly",
           "the robot <dance-x> forward"]
  lengths = [32, 9, 20, 17, 26]
  key = jax.random.key(11)
  out = pipe.generate(texts, lengths, key, steps=STEPS, num_samples=2, concepts=[concept])
  features, joints = _unpacked_reference(pipe, texts, lengths, key, 2, [concept], STEPS)
  assert out["features"].shape == (10, 32, 263) and out["projector"]
  np.testing.assert_allclose(out["features"], np.asarray(features), atol=1e-4, rtol=0)
  # The joints integrate the features over time (root rotation and position): with these random
  # stages a 1e-5 perturbation of the features moves them by ~1e-3.
  np.testing.assert_allclose(out["joints"], np.asarray(joints), atol=1e-3, rtol=0)
  assert np.all(out["features"][2:4, 9:] == 0) and np.abs(out["features"][2, :9]).sum(-1).min() > 0
  # The concept row reaches the motions: without it the placeholder prompts change, the others not.
  plain = pipe.generate(texts[:1] + ["the man dances"], lengths[:2], key, steps=STEPS,
                        num_samples=2)
  np.testing.assert_allclose(plain["features"][:2], out["features"][:2], atol=1e-4, rtol=0)
  assert np.abs(plain["features"][2:4, :9] - out["features"][2:4, :9]).max() > 1e-3


def test_first_block_table_computed_once_per_parameters(pipe):
  table = pipe.first_block
  assert table.shape == (pipe.max_frames, pipe.max_frames, pipe.vae.latent_dim)
  assert pipe.first_block is table  # cached
  np.testing.assert_allclose(np.asarray(table), np.asarray(first_block_table(
      pipe.vae, pipe.compute_params["vae"], pipe.max_frames)), atol=1e-6, rtol=0)
  old = pipe.params
  pipe.params = jax.tree.map(lambda x: x * 1.01, old)  # new parameters: a new table
  try:
    assert pipe.first_block is not table
    assert np.abs(np.asarray(pipe.first_block) - np.asarray(table)).max() > 1e-4
  finally:
    pipe.params = old


def test_random_evaluation_batches_compile_few_programs(pipe):
  """Batches of 32 random prompts and lengths (HumanML3D's 40-196 frames scaled to 6-32): the
  packed layouts differ from batch to batch, their bucketed shapes repeat, and each of the two
  programs (text, motion) compiles once per bucketed shape of its own input."""
  rng = np.random.default_rng(3)
  words = [w for w in WORDS if not w.startswith("#") and w != "."]
  enc = pipe.text_encoder
  before = pipe.num_compiled()
  text_shapes, motion_shapes, text_layouts, motion_layouts = set(), set(), set(), set()
  for batch in range(8):
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 9))) for _ in range(32)]
    lengths = rng.integers(6, pipe.max_frames + 1, size=32)
    out = pipe.generate(texts, lengths.tolist(), jax.random.key(batch), steps=1)
    assert out["features"].shape[0] == 32 and np.isfinite(out["features"]).all()
    np.testing.assert_array_equal(out["mask"].sum(1), lengths)
    tokens = prompts.pack_prompts(enc, texts, enc.no_extra_tokens())[0]
    motions = prompts.pack_motions(lengths, pipe.max_frames)
    text_shapes.add((tokens.shape, tokens.packing.num_tokens))
    motion_shapes.add((motions.shape, motions.num_tokens))
    # What each layout really uses: rows and real tokens (frames).
    text_layouts.add((len(set(tokens.packing.item_row.tolist())),
                      int((tokens.packing.segment_ids >= 0).sum())))
    motion_layouts.add((len(set(motions.item_row.tolist())), int(lengths.sum())))
  # One text program per packed prompt shape plus one motion program per packed motion shape:
  # the two counts add, they do not multiply.
  assert pipe.num_compiled() - before == len(text_shapes) + len(motion_shapes)
  assert len(text_shapes) <= 4 and len(motion_shapes) <= 5
  # Buckets absorb the variety: fewer shapes than distinct layouts.
  assert len(text_shapes) < len(text_layouts) and len(motion_shapes) < len(motion_layouts)


def test_row_rules():
  # Tokens per row: 64, or fewer when everything fits, or the longest prompt's bucket.
  assert token_row_bucket(np.array([5, 9]), 77) == 16
  assert token_row_bucket(np.array([12] * 4), 77) == 48
  assert token_row_bucket(np.array([14] * 32), 77) == 64
  assert token_row_bucket(np.array([14] * 31 + [70]), 77) == 72
  # Motions: rows of the frame bucket, the row count a multiple of N/8.
  motions = prompts.pack_motions(np.array([196] * 3 + [90] * 2 + [0] * 27), 196)
  assert motions.shape == (4, 196) and motions.item_row[:5].tolist() == [0, 1, 2, 3, 3]
  motions = prompts.pack_motions(np.array([196] * 3 + [90] * 2 + [150] + [0] * 26), 196)
  assert motions.shape == (8, 196)  # 5 rows used, bucketed to a multiple of 32 / 8
  assert motions.item_row[:6].tolist() == [0, 1, 2, 4, 4, 3]
  motions = prompts.pack_motions(np.array([20, 10, 12, 0]), 196)  # rows of frame_bucket(20) = 32
  assert motions.shape == (2, 32) and motions.item_row.tolist() == [0, 1, 0, 0]  # 20 + 12, 10
