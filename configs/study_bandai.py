"""The Bandai Namco study (`lead-jax study bandai`): which clips, how they are split, the held-out
style, and the sizes shared by its stage configs (`configs/study_bandai_{evaluator,vae,denoiser,
projector,lcm}.py`), and what the evaluation steps run (Tables 1, 5, 6, Fig. 2, Tables 3/4).
The denoiser, projector and LCM stages train on the latent cache (`crops_per_clip` crops per
clip encoded once). Two scales, `get_config('full')` (default) and `get_config('quick')`:

  full   every clip: dataset-1 (174) and dataset-2 (the 210 loose files and the 2,552 of
         dataset-2-more.tar.xz, unpacked into OUT/raw), about 3.8 hours of capture; the
         2-hour study on 2 CPU cores.
  quick  the 210 loose dataset-2 files (3 clips per content x style, nothing to unpack), tiny
         models, a few dozen steps, 2 replications, Table 5 at 4 steps only, one ablation (noALIGN,
         5 steps), 3 inversion steps: the path a test runs in CI (every step in a few minutes).

Clip lengths (at 20 fps after resampling from the files' 30 fps): dataset-2's raise-up clips are
short (median 48 frames, 35% under 40, a few under 24), walks and waves long (140-310); dataset-1
clips are 1-5 s, one dance 63 s. `min_len` is 24 frames (1.2 s; HumanML3D's 40 would drop a third
of the raise-up clips), a multiple of the crop unit 4; `max_len` 120 frames (6 s) crops the long
clips (`data.max_clip_len` None: long clips are cropped to a random window, never dropped).

Held out of all training: every clip of style `heldout_style` (dataset-2's `elderly`) and of its
`heldout_aliases` (dataset-1's `old`, the same style under another name). They are written to the
dataset folder but listed in none of train/val/test (nor in Mean/Std): `heldout_examples.txt`
holds `heldout_examples` clips (one per `heldout_example_contents`, for motion textual
inversion), `heldout_test.txt` the other `heldout_style` clips, `heldout_aliases.txt` the alias
clips.

Splits: by take (one source file; a mirrored copy follows its take), 80/10/10 by a hash of the
file name salted with `seed` (`lead_jax.io.dataset_writer.assign_splits`), so no take is in two
splits and adding clips never moves one.
"""

import ml_collections

# Model and training sizes per scale, shared by the stage configs (see their docstrings for the
# measured seconds per step these were chosen from).
SIZES = {
    "full": {
        "latent_dim": 128, "num_tokens": 8, "max_len": 120, "batch_size": 32,
        # VAE dropout off: on 2 CPU cores the threefry dropout masks cost 30% of the VAE step
        # (fwd+bwd 1.43 s with 0.1, 1.00 s without, batch 32 x 120 frames, measured quiet).
        "vae": {"ff_size": 256, "num_layers": 5, "num_heads": 4, "dropout": 0.0},
        "denoiser": {"ff_size": 512, "num_layers": 5, "num_heads": 4, "dropout": 0.1},
        "projector": {"width": 128, "ff_size": 512, "num_layers": 3, "num_heads": 4,
                      "dropout": 0.1, "mlp_layers": 3},
        "evaluator": {"movement_hidden": 128, "movement_out": 128, "motion_hidden": 256,
                      "text_hidden": 256, "output_dim": 256},
        "steps": {"evaluator": 3000, "vae": 1200, "denoiser": 8000, "projector": 3000,
                  "lcm": 1500},
        "learning_rate": {"evaluator": 1e-3, "vae": 5e-4, "denoiser": 5e-4, "projector": 5e-4,
                          "lcm": 2e-4},
        "cond_proj_dim": 256, "crops_per_clip": 8,
    },
    "quick": {
        "latent_dim": 32, "num_tokens": 4, "max_len": 64, "batch_size": 16,
        "vae": {"ff_size": 64, "num_layers": 1, "num_heads": 2, "dropout": 0.1},
        "denoiser": {"ff_size": 64, "num_layers": 1, "num_heads": 2, "dropout": 0.1},
        "projector": {"width": 32, "ff_size": 64, "num_layers": 1, "num_heads": 2,
                      "dropout": 0.1, "mlp_layers": 1},
        "evaluator": {"movement_hidden": 32, "movement_out": 32, "motion_hidden": 64,
                      "text_hidden": 64, "output_dim": 32},
        "steps": {"evaluator": 60, "vae": 40, "denoiser": 40, "projector": 30, "lcm": 10},
        "learning_rate": {"evaluator": 1e-3, "vae": 1e-3, "denoiser": 1e-3, "projector": 1e-3,
                          "lcm": 1e-3},
        "cond_proj_dim": 16, "crops_per_clip": 2,
    },
}
SCALES = tuple(SIZES)


def check_scale(scale: str) -> str:
  if scale not in SIZES:
    raise ValueError(f"study scale {scale!r}: expected one of {SCALES}")
  return scale


def get_config(scale: str = "full") -> ml_collections.ConfigDict:
  """The study section (clips, splits, held-out style, evaluation sizes) of `scale`."""
  check_scale(scale)
  quick = scale == "quick"
  return ml_collections.ConfigDict({
      "scale": scale,
      # Clip selection: which sources, and (0 = all) how many clips per (dataset, content, style),
      # taken in a seeded hash order.
      "sources": ("dataset-2",) if quick else ("dataset-1", "dataset-2"),
      "use_archive": not quick,           # dataset-2-more.tar.xz, unpacked into OUT/raw
      "archive": "dataset-2-more.tar.xz",
      "clips_per_group": 0,                # 0: every clip of a (content, style)
      # Import.
      "captions": "bandai_paraphrases",
      "joint_map": "bandai",
      "min_len": 24,
      "mirror": False,
      "workers": 1 if quick else 2,      # reader processes of the import
      # Splits (80/10/10 by take: `lead_jax.io.dataset_writer`'s default fractions).
      "seed": 0,
      "heldout_style": "elderly",
      "heldout_aliases": ("old",),
      "heldout_examples": 4,
      "heldout_example_contents": ("walk", "run", "wave-both-hands", "raise-up-both-hands"),
      # Evaluation (the protocol of `lead-jax evaluate`, one item per test clip).
      # Full scale: the paper's 20. Tables 1 and 5 share one protocol pass (same captions, crops
      # and Real row); a replication (255 test items, MLD and LEAD at DDIM 50, six LCM rows,
      # MultiModality) takes about a minute on 2 cores once its programs are compiled.
      "replications": 2 if quick else 20,
      "knn_k": 5,
      "ddim_steps": 5 if quick else 50,     # MLD / LEAD rows (Table 1)
      "guidance_scale": 7.5,
      "eval_batch_size": 32,
      "mm_prompts": 0 if quick else 20,     # MultiModality: prompts x repeats (0 = skipped;
      "mm_repeats": 10,                     # the paper: 100 x 30)
      "lcm_steps": (4,) if quick else (1, 2, 4),   # Table 5 rows (quick: one, to stay short)
      # Table 6: projector variants (the study projector config with one override each), scored
      # with LEAD rows at `ablation_replications`. Names: lead_jax.recipes.bandai_study.ABLATIONS
      # (transformer, skip, mlp, noKL, noREC, noALIGN).
      # Full scale: all six (~3 min each), 'transformer' being the study projector retrained at the
      # ablation budget, the baseline the others compare with (the LEAD row trains 3x longer).
      "ablations": ("noALIGN",) if quick else ("noALIGN", "noKL", "noREC", "mlp", "skip",
                                                "transformer"),
      "ablation_steps": 5 if quick else 1000,
      "ablation_replications": 2 if quick else 5,   # LEAD row only, no MultiModality
      # Fig. 2: t-SNE of the test clips' VAE and projector latents.
      "tsne_max_motions": 500,
      "tsne_iters": 300 if quick else 1000,
      # Tables 3/4: motion textual inversion of the held-out style from heldout_examples.txt.
      "mti_spaces": ("lead", "mld", "feat"),
      "mti_token": "<heldout>",
      "mti_init_word": "",                  # '' = mean of the token table (no style hint)
      "mti_steps": 3 if quick else 50,
      "mti_samples": 2,     # generations per (prompt, space, projector on/off)
      "mti_ddim_steps": 5 if quick else 50,
      # The stage configs, relative to the repository root, called with `scale`.
      "stage_configs": {
          "evaluator": "configs/study_bandai_evaluator.py",
          "vae": "configs/study_bandai_vae.py",
          "denoiser": "configs/study_bandai_denoiser.py",
          "projector": "configs/study_bandai_projector.py",
          "lcm": "configs/study_bandai_lcm.py",
      },
  })


def study_models(config: ml_collections.ConfigDict, scale: str) -> ml_collections.ConfigDict:
  """Sets the model sections present in a stage config to the sizes of `scale`."""
  sizes = SIZES[check_scale(scale)]
  latent = sizes["latent_dim"]
  if "vae" in config:
    config.vae.update(latent_dim=latent, max_len=500, **sizes["vae"])
  if "denoiser" in config:
    config.denoiser.update(latent_dim=latent, max_len=16, **sizes["denoiser"])
  if "projector" in config:
    config.projector.update(latent_dim=latent, num_tokens=sizes["num_tokens"],
                            **sizes["projector"])
  if "evaluator" in config:
    config.evaluator.update(**sizes["evaluator"])
  return config


def study_training(config: ml_collections.ConfigDict, stage: str,
                   scale: str) -> ml_collections.ConfigDict:
  """The data and training-loop fields of `stage` at `scale`. `data.dir` is set by the study
  runner (OUT/data); on the command line pass `--config.data.dir=OUT/data`."""
  sizes = SIZES[check_scale(scale)]
  steps = sizes["steps"][stage]
  quick = scale == "quick"
  config.data.update(builder="motion_folder", min_len=24, max_len=sizes["max_len"],
                     unit_length=4, batch_size=sizes["batch_size"], split="train",
                     eval_split="val", prefetch=0 if quick else 2)
  config.optimizer.update(learning_rate=sizes["learning_rate"][stage], grad_clip_norm=1.0)
  if stage in ("denoiser", "projector", "lcm"):  # cached VAE posteriors (lead_jax.train.latents)
    config.latent_cache.crops_per_clip = sizes["crops_per_clip"]
  config.train.update(num_steps=steps, log_every=10 if quick else 100,
                      checkpoint_every=steps if quick else 1000, eval_every=steps,
                      eval_batches=2 if quick else 8, progress=True)
  return config
