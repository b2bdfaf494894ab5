"""t-SNE, separation scores (silhouette, k-NN), caption labels and `lead-jax plot-latents` on
tiny random-parameter stages over windows of real HumanML3D clips."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import manifold, metrics

from lead_jax import cli
from lead_jax.errors import InputError
from lead_jax.evaluation import tsne


def _clusters(n_per=40, k=4, dim=10, spread=8.0, seed=0):
  rng = np.random.default_rng(seed)
  centres = spread * rng.normal(size=(k, dim))
  labels = np.repeat(np.arange(k), n_per)
  return (centres[labels] + rng.normal(size=(k * n_per, dim))).astype(np.float32), labels


def test_tsne_separates_gaussian_clusters():
  x, labels = _clusters()
  y, kl = tsne.tsne(x, 0, perplexity=20.0, num_iters=500)
  assert y.shape == (160, 2) and y.dtype == np.float32 and np.all(np.isfinite(y))
  assert tsne.knn_accuracy(y, labels, k=5) > 0.95
  assert tsne.silhouette_score(y, labels) > 0.5
  assert 0.0 < kl < 1.0  # a random embedding of these points scores about 2
  y_again, _ = tsne.tsne(x, 0, perplexity=20.0, num_iters=500)
  np.testing.assert_array_equal(y, y_again)
  assert not np.array_equal(tsne.tsne(x, 1, perplexity=20.0, num_iters=500)[0], y)
  # shuffled labels: no structure
  shuffled = np.random.default_rng(0).permutation(labels)
  assert tsne.knn_accuracy(y, shuffled, k=5) < 0.5


def test_kl_against_sklearn():
  x, _ = _clusters(n_per=30, k=3, spread=4.0)
  ours = tsne.tsne(x, 0, perplexity=15.0, num_iters=1000)[1]
  ref = manifold.TSNE(perplexity=15.0, method="exact", init="random", learning_rate="auto",
                      random_state=0).fit(x).kl_divergence_
  assert ours == pytest.approx(ref, rel=0.15, abs=0.03)


def test_tsne_input_errors():
  x, _ = _clusters(n_per=3, k=2)
  with pytest.raises(InputError, match="perplexity"):
    tsne.tsne(x, 0, perplexity=5.0)
  bad = x.copy()
  bad[0, 0] = np.nan
  with pytest.raises(InputError, match="non-finite"):
    tsne.tsne(bad, 0, perplexity=2.0)
  with pytest.raises(InputError, match=r"\[N, D\]"):
    tsne.tsne(x[0], 0, perplexity=2.0)
  with pytest.raises(InputError, match="num_iters > 250"):
    tsne.tsne(x, 0, perplexity=2.0, num_iters=250)


def _silhouette_loop(x, labels):
  x = np.asarray(x, np.float64)
  out = []
  for i in range(len(x)):
    d = np.linalg.norm(x - x[i], axis=1)
    same = (labels == labels[i]) & (np.arange(len(x)) != i)
    if not same.any():
      out.append(0.0)
      continue
    a = d[same].mean()
    b = min(d[labels == l].mean() for l in set(labels.tolist()) if l != labels[i])
    out.append((b - a) / max(a, b))
  return np.asarray(out)


def test_silhouette_hand_case_loop_and_sklearn():
  x = np.array([[0.0], [1.0], [4.0], [5.0]])
  s = tsne.silhouette_samples(x, ["a", "a", "b", "b"])
  np.testing.assert_allclose(s, [3.5 / 4.5, 2.5 / 3.5, 2.5 / 3.5, 3.5 / 4.5])
  x, labels = _clusters(n_per=9, k=3, dim=5, spread=1.5, seed=3)
  labels = labels.copy()
  labels[0] = 7  # a singleton cluster scores 0
  np.testing.assert_allclose(tsne.silhouette_samples(x, labels), _silhouette_loop(x, labels),
                             atol=1e-10)
  assert tsne.silhouette_samples(x, labels)[0] == 0.0
  with pytest.raises(InputError, match="labels"):
    tsne.silhouette_score(x, np.zeros(len(x)))
  assert tsne.silhouette_score(x, labels) == pytest.approx(metrics.silhouette_score(x, labels))


def test_knn_accuracy_hand_case():
  x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [0.15]])
  # 1-NN: 0.0 -> 0.1 (a, right), 0.1 -> 0.15 (b, wrong), 0.2 -> 0.15 (b, wrong), 5.0 <-> 5.1
  # (right, right), 0.15 -> 0.1 (a, wrong)
  assert tsne.knn_accuracy(x, ["a", "a", "a", "b", "b", "b"], k=1) == pytest.approx(3 / 6)
  assert tsne.knn_accuracy(x, ["a", "a", "a", "b", "b", "a"], k=1) == pytest.approx(1.0)
  # k=2 tie (one vote each): the nearest neighbour's label wins
  # 0 and 1 see one "a" and one "b" vote: their nearest neighbour (a "b") decides; 3 sees two "b"
  assert tsne.knn_accuracy(np.array([[0.0], [1.0], [3.0]]), ["b", "b", "a"], k=2) == pytest.approx(
      2 / 3)


def test_caption_verbs_and_content_labels(humanml3d_dir):
  from lead_jax.data import layout
  captions = layout.read_captions(humanml3d_dir / "texts" / "000000.txt")
  assert [tsne.caption_verb(c) for c in captions] == ["kick", "kick", "kick", "fly"]
  assert tsne.clip_verb(captions) == "kick"
  assert tsne.caption_verb("a person stands up and waves both hands.") == "wave"
  assert tsne.caption_verb("someone is walking.") == "walk"
  assert tsne.caption_verb("a person stands still.") == "stand"
  assert tsne.caption_verb("the left arm.") is None
  assert tsne.clip_verb(["a man runs.", "a man jumps.", "someone jumps high."]) == "jump"
  assert tsne.clip_verb(["the left arm."]) == "none"
  assert tsne.content_label("dataset-2_wave-left-hand_elderly_002") == "wave-left-hand"
  assert tsne.content_label("Mdataset-1_walk_happy_001") == "walk"
  assert tsne.content_label("humanoid3d_dance_a") == "dance_a"
  with pytest.raises(InputError, match="--label verb"):
    tsne.content_label("012314")
  assert tsne.top_labels(list("aabbbcd"), 2) == ["a", "a", "b", "b", "b", "other", "other"]


# ---- the command --------------------------------------------------------------------------------
WINDOW, STRIDE = 32, 24


@pytest.fixture(scope="module")
def windows_dataset(tiny_dataset, tmp_path_factory):
  """Windows of the 4 real clips of `tiny_dataset` (captions copied), all in the test split."""
  from lead_jax.data import layout
  root = tmp_path_factory.mktemp("windows")
  (root / "new_joint_vecs").mkdir()
  (root / "texts").mkdir()
  ids = []
  for clip in layout.iter_clips(tiny_dataset, "test", 263):
    for w, start in enumerate(range(0, clip.length - WINDOW + 1, STRIDE)):
      wid = f"{clip.id}_w{w}"
      np.save(root / "new_joint_vecs" / f"{wid}.npy", clip.motion[start:start + WINDOW])
      (root / "texts" / f"{wid}.txt").write_text((tiny_dataset / "texts" / f"{clip.id}.txt")
                                                 .read_text())
      ids.append(wid)
  for name in ("Mean.npy", "Std.npy"):
    (root / name).write_bytes((tiny_dataset / name).read_bytes())
  for split in ("train", "val", "test"):
    (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
  return root


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
  from gen_stages import write_tiny_stages
  # the figure needs no text encoder: the path is recorded in the configs but never read
  root = tmp_path_factory.mktemp("stages")
  return write_tiny_stages(root / "runs", text_encoder_path=root / "unused", text_dim=32, ema=True)


def test_plot_latents_command(stages, windows_dataset, tmp_path, capsys):
  from lead_jax import checkpoints
  from lead_jax.data import layout
  from lead_jax.models import MotionVAE, Projector, build_projector, build_vae
  out = tmp_path / "fig" / "latents.png"
  rc = cli.main(["plot-latents", "--workdir", str(stages["projector"]), "--data-dir",
                 str(windows_dataset), "--split", "test", "--max-motions", "18", "--out", str(out),
                 "--perplexity", "5", "--iterations", "300", "--seed", "3", "--batch-size", "8"])
  assert rc == 0
  printed = capsys.readouterr().out
  image = __import__("matplotlib.image", fromlist=["imread"]).imread(out)
  assert image.shape == (672, 1440, 4)
  summary = json.loads(out.with_suffix(".json").read_text())
  arrays = np.load(out.with_suffix(".npz"))
  all_ids = sorted(layout.read_split_ids(windows_dataset, "test"))
  ids = list(arrays["ids"])
  assert len(ids) == 18 == summary["num_motions"] and ids == sorted(ids) and set(ids) < set(all_ids)
  verbs = {"012314": "walk", "007005": "jump", "M010968": "wave", "000000": "kick"}
  assert list(arrays["labels"]) == [verbs[i.rsplit("_w", 1)[0]] for i in ids]
  assert arrays["vae"].shape == (18, 32) and arrays["projected"].shape == (18, 32)
  assert arrays["vae_tsne"].shape == arrays["projected_tsne"].shape == (18, 2)

  # latents = posterior means of the unpadded clips through each stage's EMA weights (the one
  # weight rule of lead_jax.workdir, for the VAE as for the projector)
  config = checkpoints.load_config(stages["projector"])
  vae, proj = build_vae(config["vae"]), build_projector(config["projector"])
  vae_params = checkpoints.load_params(stages["vae"], "ema_params")
  proj_params = checkpoints.load_params(stages["projector"], "ema_params")
  mean, std = layout.load_stats(windows_dataset, 263)
  for row in (0, 17):
    clip = layout.load_clip(windows_dataset, ids[row], 263)
    motion = jnp.asarray((clip.motion - mean) / std)[None]
    _, mu, _ = vae.apply({"params": vae_params}, motion, jnp.ones((1, WINDOW), bool),
                         method=MotionVAE.encode)
    np.testing.assert_allclose(arrays["vae"][row], np.asarray(mu[0, 0]), rtol=1e-4, atol=1e-5)
    z_proj = proj.apply({"params": proj_params}, mu, method=Projector.encode)
    np.testing.assert_allclose(arrays["projected"][row], np.asarray(z_proj[0]), rtol=1e-4,
                               atol=1e-5)

  for name in ("vae", "projected"):
    panel = summary["panels"][name]
    labels = list(arrays["labels"])
    assert panel["silhouette"] == pytest.approx(
        tsne.silhouette_score(arrays[f"{name}_tsne"], labels), abs=1e-9)
    assert panel["latent_silhouette"] == pytest.approx(
        tsne.silhouette_score(arrays[name], labels), abs=1e-9)
    assert 0.0 <= panel["knn_accuracy"] <= 1.0 and math.isfinite(panel["kl_divergence"])
    assert f"silhouette t-SNE {panel['silhouette']:.3f}" in printed
  assert sum(summary["label_counts"].values()) == 18


def test_plot_latents_errors(stages, windows_dataset, tmp_path, capsys):
  base = ["plot-latents", "--data-dir", str(windows_dataset), "--max-motions", "6"]
  assert cli.main(base + ["--workdir", str(stages["projector"]), "--out",
                          str(tmp_path / "a.jpg")]) == 2
  assert "--out must name a .png" in capsys.readouterr().err
  assert cli.main(base + ["--workdir", str(stages["vae"]), "--out", str(tmp_path / "a.png")]) == 2
  assert "not a projector stage" in capsys.readouterr().err
  assert cli.main(base + ["--workdir", str(stages["projector"]), "--label", "content",
                          "--out", str(tmp_path / "a.png")]) == 2
  assert "--label verb" in capsys.readouterr().err
