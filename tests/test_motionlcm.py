"""MotionLCM on our stack: its checkpoint imported as workdirs, parity with its PyTorch modules and
its sampling loop (diffusers' LCMScheduler, MotionLCM's `_diffusion_reverse`) on random weights;
the consistency model through `Pipeline` and `lead-jax sample`, with and without the projector.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_stages import write_tiny_clip, write_tiny_stages
from lead_jax import cli
from lead_jax import workdir as stage_io
from lead_jax.convert import motionlcm_ckpt
from lead_jax.diffusion import motion_keys
from lead_jax.errors import ConfigError, InputError, WeightsError
from lead_jax.generate import Pipeline
from lead_jax.train.imported import import_checkpoint

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
from benchmarks import torch_reference as ref  # noqa: E402  (needs torch)

TEXT_DIM, COND_DIM = 24, 16
SIZES = dict(d=32, ff=64, num_layers=3, heads=2)
TEXTS = ["a person walks forward.", "someone jumps", "the man dances"]
LENGTH = 40


def _motionlcm_model():
  torch.manual_seed(0)
  model = ref.MotionLCMModel(263, TEXT_DIM, time_cond_proj_dim=COND_DIM, **SIZES).eval()
  with torch.no_grad():  # a trained student's guidance embedding is not zero
    model.denoiser.time_embedding.cond_proj.weight.normal_(0, 0.3)
  return model


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  root = tmp_path_factory.mktemp("motionlcm")
  model = _motionlcm_model()
  state = dict(model.state_dict())
  state["t2m_textencoder.input_emb.weight"] = torch.zeros(2, 2)  # evaluator keys are dropped
  torch.save({"state_dict": state}, root / "motionlcm.ckpt")
  clip = write_tiny_clip(root / "clip", projection_dim=TEXT_DIM)
  data = root / "data"
  data.mkdir()
  np.save(data / "Mean.npy", np.zeros(263, np.float32))
  np.save(data / "Std.npy", np.ones(263, np.float32))
  assert cli.main(["import", "motionlcm", str(root / "motionlcm.ckpt"), "--out", str(root / "out"),
                   "--clip", str(clip), "--data-dir", str(data), "--num-heads",
                   str(SIZES["heads"])]) == 0
  dirs = {"vae": root / "out" / "vae", "lcm": root / "out" / "lcm"}
  return {"model": model, "clip": clip, "root": root, "data": data, **dirs}


@pytest.fixture(scope="module")
def pipe(imported):
  return Pipeline.from_workdir(imported["lcm"])


def test_import_writes_an_lcm_and_a_vae_workdir(imported):
  lcm = stage_io.load_stage(imported["lcm"])
  assert lcm.kind == "lcm" and lcm.item == "params"
  assert lcm.module.cond_proj_dim == COND_DIM and lcm.module.num_layers == 3
  assert stage_io.load_stage(imported["lcm"], "denoiser").kind == "lcm"  # serves as a denoiser
  assert stage_io.load_stage(imported["vae"]).kind == "vae"
  assert lcm.config.dependencies.vae_workdir == str(imported["vae"])
  assert lcm.config.lcm.w_min == 5.0 and lcm.config.lcm.num_ddim_timesteps == 50
  kernel = np.asarray(lcm.params["time_embedding"]["cond_proj"]["kernel"])
  want = imported["model"].denoiser.time_embedding.cond_proj.weight.detach().numpy().T
  np.testing.assert_array_equal(kernel, want)
  assert lcm.config.denoiser.cond_proj_dim == COND_DIM and lcm.config.scheduler.beta_end == 0.012
  with pytest.raises(InputError, match="already holds checkpoints"):
    import_checkpoint("motionlcm", imported["root"] / "motionlcm.ckpt", imported["root"] / "out",
                      text_encoder_kind="clip", text_encoder_path=str(imported["clip"]),
                      data_dir=str(imported["data"]), num_heads=SIZES["heads"])


def test_mld_checkpoint_is_refused(tmp_path):
  torch.manual_seed(0)
  torch.save(ref.MLDModel(263, TEXT_DIM, **SIZES).state_dict(), tmp_path / "mld.ckpt")
  with pytest.raises(WeightsError, match="no denoiser.time_embedding.cond_proj.weight"):
    motionlcm_ckpt.read_motionlcm_checkpoint(tmp_path / "mld.ckpt", num_heads=2)


def test_denoiser_with_guidance_matches_motionlcm(imported, pipe):
  rng = np.random.default_rng(0)
  z = rng.normal(size=(3, 1, 32)).astype(np.float32)
  t = np.array([999, 259, 0])
  text = rng.normal(size=(3, TEXT_DIM)).astype(np.float32)
  w = np.array([6.5, 0.0, 14.0], np.float32)
  got = pipe.denoiser.apply({"params": pipe.params["denoiser"]}, jnp.asarray(z), jnp.asarray(t),
                            jnp.asarray(text), True, jnp.asarray(w))
  with torch.no_grad():
    want = imported["model"].denoiser(torch.from_numpy(z), torch.from_numpy(t),
                                      torch.from_numpy(text)[:, None],
                                      ref.guidance_scale_embedding(torch.from_numpy(w), COND_DIM))
  # 1e-4, not 1e-5: the embedding is a float32 sinusoid of 1000 w (arguments up to 14,000 rad, where
  # one float32 ulp is ~1e-3 rad), so XLA's and PyTorch's float32 sin/exp differ by ~5e-4 there.
  np.testing.assert_allclose(np.asarray(got), want.numpy(), atol=1e-4)
  with torch.no_grad():  # without the guidance term the two agree to float32 roundoff
    plain = imported["model"].denoiser.time_embedding.cond_proj.weight.clone()
    imported["model"].denoiser.time_embedding.cond_proj.weight.zero_()
    want0 = imported["model"].denoiser(torch.from_numpy(z), torch.from_numpy(t),
                                       torch.from_numpy(text)[:, None],
                                       ref.guidance_scale_embedding(torch.from_numpy(w), COND_DIM))
    imported["model"].denoiser.time_embedding.cond_proj.weight.copy_(plain)
  params0 = jax.tree.map(lambda x: x, pipe.params["denoiser"])
  params0["time_embedding"] = dict(params0["time_embedding"],
                                   cond_proj={"kernel": jnp.zeros((COND_DIM, TEXT_DIM))})
  got0 = pipe.denoiser.apply({"params": params0}, jnp.asarray(z), jnp.asarray(t),
                             jnp.asarray(text), True, jnp.asarray(w))
  np.testing.assert_allclose(np.asarray(got0), want0.numpy(), atol=1e-5)


def _motionlcm_reverse(denoiser, z, text, steps, scale, noises, monkeypatch):
  """MotionLCM's `_diffusion_reverse` with its scheduler (diffusers.LCMScheduler, V1 settings):
  no CFG doubling, w = scale - 1 embedded; the re-noising draws are `noises` (patched in)."""
  import diffusers.schedulers.scheduling_lcm as lcm_module
  draws = iter(noises)
  monkeypatch.setattr(lcm_module, "randn_tensor", lambda *a, **k: next(draws))
  scheduler = diffusers.LCMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                     beta_schedule="scaled_linear", clip_sample=False,
                                     set_alpha_to_one=False, original_inference_steps=50)
  scheduler.set_timesteps(steps)
  cond = ref.guidance_scale_embedding(torch.full((z.shape[0],), scale - 1.0), COND_DIM)
  with torch.no_grad():
    for t in scheduler.timesteps:
      eps = denoiser(z, t, text, cond)
      z = scheduler.step(eps, t, z).prev_sample
  return z, [int(t) for t in scheduler.timesteps]


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_sampling_matches_motionlcm_loop(imported, pipe, steps, monkeypatch):
  """Latents to 1e-4 and motions through MotionLCM's VAE decode, from the same initial noise and
  re-noising draws (ours: normal(key_i) and normal(fold_in(key_i, step + 1)))."""
  out = pipe.generate(TEXTS, LENGTH, jax.random.key(3), steps=steps, guidance_scale=7.5)
  keys = motion_keys(jax.random.key(3), np.arange(3), np.zeros(3, int))
  draw = lambda k: np.asarray(jax.random.normal(k, (1, 32)))
  z_init = torch.from_numpy(np.stack([draw(k) for k in keys]))
  noises = [torch.from_numpy(np.stack([draw(jax.random.fold_in(k, s + 1)) for k in keys]))
            for s in range(steps)]
  text = torch.from_numpy(pipe.text_encoder.encode(TEXTS))[:, None]
  den = imported["model"].denoiser
  z0, timesteps = _motionlcm_reverse(den, z_init, text, steps, 7.5, noises, monkeypatch)
  assert timesteps == {1: [999], 2: [999, 499], 4: [999, 759, 499, 259]}[steps]
  with torch.no_grad():  # our PyTorch re-statement (benchmarks) is the same loop
    abar = torch.from_numpy(np.array(pipe.scheduler_state("lcm").alphas_cumprod))
    restated = ref.lcm_sample(den, z_init, text, torch.full((3,), 6.5), timesteps, abar, noises)
    feats = imported["model"].vae.decode(z0.permute(1, 0, 2), torch.full((3,), LENGTH), LENGTH)
  np.testing.assert_allclose(restated.numpy(), z0.numpy(), rtol=1e-5, atol=1e-5)
  from lead_jax.generate import synthesis
  ours = synthesis.sample(pipe.denoiser, pipe.params["denoiser"], keys,
                          jnp.asarray(text.numpy()[:, 0]), None, jnp.float32(7.5),
                          pipe.scheduler_state("lcm", steps))
  # Random weights give latents of magnitude ~40 (x0 from t=999 is eps / sqrt(abar_999) ~ 15 eps):
  # agreement to 1e-4 of the largest value.
  assert np.abs(np.asarray(ours) - z0.numpy()).max() <= 1e-4 * np.abs(z0.numpy()).max()
  assert np.abs(out["features"] - feats.numpy()).max() <= 1e-4 * np.abs(feats.numpy()).max()


def test_lcm_pipeline_refuses_ddim_and_takes_w(pipe):
  assert pipe.is_consistency_model and pipe.default_scheduler() == "lcm"
  with pytest.raises(ConfigError, match="use --scheduler lcm"):
    pipe.generate(TEXTS, LENGTH, jax.random.key(0), scheduler="ddim")
  a = pipe.generate(TEXTS, LENGTH, jax.random.key(0))["features"]          # 1 step, s = 7.5
  b = pipe.generate(TEXTS, LENGTH, jax.random.key(0), guidance_scale=3.0)["features"]
  assert np.abs(a - b).max() > 1e-4  # the scale is an input of the consistency model


def test_lead_on_motionlcm_and_sample_command(imported, pipe, tmp_path):
  """The projector of another run (same VAE shapes) reused unchanged on the LCM student."""
  stages = write_tiny_stages(tmp_path / "runs", text_encoder_path=imported["clip"],
                             text_dim=TEXT_DIM, kind="clip")
  lead = Pipeline.from_workdir(stages["projector"], denoiser_workdir=str(imported["lcm"]),
                               vae_workdir=str(imported["vae"]))
  assert lead.has_projector and lead.is_consistency_model
  on = lead.generate(TEXTS[:1], LENGTH, jax.random.key(0), steps=2)
  off = lead.generate(TEXTS, LENGTH, jax.random.key(0), steps=2, use_projector=False)
  plain = pipe.generate(TEXTS, LENGTH, jax.random.key(0), steps=2)
  np.testing.assert_allclose(off["features"], plain["features"], atol=1e-5)
  assert on["projector"] and np.abs(on["features"][0] - off["features"][0]).max() > 1e-3
  out = tmp_path / "gen"
  rc = cli.main(["sample", "--workdir", str(stages["projector"]), "--denoiser-workdir",
                 str(imported["lcm"]), "--vae-workdir", str(imported["vae"]), "--scheduler", "lcm",
                 "--steps", "2", "--prompt", TEXTS[0], "--length", str(LENGTH), "--out", str(out),
                 "--no-bvh", "--no-animation"])
  assert rc == 0
  index = json.loads((out / "index.json").read_text())
  assert index[0]["projector"] is True
  np.testing.assert_allclose(np.load(out / index[0]["features"]), on["features"][0], atol=1e-4)
  # Table 5's rows for `lead-jax evaluate`: MotionLCM and LEAD-MotionLCM at each step count.
  from lead_jax.evaluation import protocol
  methods = protocol.lcm_methods(lead, steps=(2,))
  assert list(methods) == ["MotionLCM (2 steps)", "LEAD-MotionLCM (2 steps)"]
  got = methods["LEAD-MotionLCM (2 steps)"]([TEXTS[0]], np.array([LENGTH]), jax.random.key(0))
  want = lead.generate(TEXTS[:1], LENGTH, jax.random.fold_in(jax.random.key(0), 0), steps=2)
  # Equal up to float32 noise: the protocol batches the captions in its own padded shapes.
  np.testing.assert_allclose(got, want["features"], rtol=0, atol=1e-5)
  assert list(protocol.lcm_methods(pipe, steps=(1, 4))) == ["MotionLCM (1 step)",
                                                           "MotionLCM (4 steps)"]
  with pytest.raises(ConfigError, match="consistency-distilled"):
    protocol.lcm_methods(Pipeline.from_workdir(stages["projector"]))
  # `--workdir` of the LCM stage itself: the consistency model and its VAE, no projector.
  import argparse
  from lead_jax.commands import pipeline_args, sample
  parser = argparse.ArgumentParser()
  sample.add_arguments(parser)
  args = parser.parse_args(["--workdir", str(imported["lcm"]), "--scheduler", "lcm", "--steps",
                            "4", "--prompt", "x", "--out", "o"])
  loaded = pipeline_args.load_pipeline(args)
  assert loaded.is_consistency_model and not loaded.has_projector
