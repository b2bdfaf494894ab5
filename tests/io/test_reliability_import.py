"""Import and file faults (docs/reliability.md): adding to an existing dataset, failed imports that
change nothing, duplicate file stems, garbage and NaN files named in one printable line."""

import errno
import hashlib
import json
import os

import numpy as np
import pytest

from lead_jax import cli
from lead_jax.io import dataset_writer
from lead_jax.io.bvh import read_bvh
from lead_jax.motion.normalize import compute_mean_std

# Short clips (41-64 frames at 20 fps): one compiled feature-extraction bucket serves them all.
A, B, C, D = ("dataset-2_run_active_005", "dataset-2_run_active_042",
                          "dataset-2_run_normal_001", "dataset-2_run_normal_007")


def _import(out, *files, flags=()):
  return cli.main(["import", "bvh", *map(str, files), "--map", "bandai", "--template", "bandai",
                   "--out", str(out), *flags])


def _snapshot(folder):
  """{relative path: sha1} of every file under `folder`."""
  return {os.path.relpath(os.path.join(root, name), folder):
          hashlib.sha1(open(os.path.join(root, name), "rb").read()).hexdigest()
          for root, _, names in os.walk(folder) for name in names}


def _splits(folder):
  return {s: (folder / f"{s}.txt").read_text().split() for s in dataset_writer.SPLITS}


def test_imports_add_to_a_dataset_and_failed_ones_change_nothing(bandai_dir, tmp_path,
                                                                 monkeypatch, capsys):
  src = bandai_dir / "dataset-2" / "data"
  out = tmp_path / "ds"
  assert _import(out, *(src / f"{s}.bvh" for s in (A, C, D))) == 0
  before, splits = _snapshot(out), _splits(out)
  # A truncated file alone: nothing kept, the dataset untouched (it used to empty every list).
  trunc = tmp_path / "trunc.bvh"
  whole = (src / f"{B}.bvh").read_bytes()
  trunc.write_bytes(whole[:len(whole) // 2])
  assert _import(out, trunc) == 1
  assert f"no clip written; {out} is unchanged" in capsys.readouterr().err
  assert _snapshot(out) == before
  # A failure while writing (a full disk): nothing changes, no staging folder is left.
  real = dataset_writer.process_clip
  calls = []

  def disk_full(joints):
    calls.append(1)
    if len(calls) == 2:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(joints)

  monkeypatch.setattr(dataset_writer, "process_clip", disk_full)
  assert _import(out, src / f"{B}.bvh", src / f"{C}.bvh") == 2
  assert "No space left on device; the disk is full" in capsys.readouterr().err
  assert _snapshot(out) == before and sorted(os.listdir(tmp_path)) == ["ds", "trunc.bvh"]
  monkeypatch.undo()
  # One good clip and a truncated file of the same stem, plus a clip already there: the good one
  # is added (its stem is never reported as failed), the truncated one fails under its path, the
  # clip already there keeps its split, every split keeps its clips.
  dup = tmp_path / "copy" / f"{B}.bvh"
  dup.parent.mkdir()
  dup.write_bytes(trunc.read_bytes())
  assert _import(out, src / f"{B}.bvh", dup, src / f"{C}.bvh") == 0
  report = json.loads((out / "import_report.json").read_text())
  assert sorted(report["kept"]) == sorted([B, C]) and report["replaced"] == [C]
  assert list(report["failures"]) == [str(dup)] and "truncated" in report["failures"][str(dup)]
  after = _splits(out)
  for name, ids in splits.items():
    assert set(ids) <= set(after[name])
  assert sorted(sum(after.values(), [])) == sorted([A, B, C, D])
  # Statistics: recomputed over every train clip, old and new, not the new batch only.
  train = [np.load(out / "new_joint_vecs" / f"{i}.npy") for i in after["train"]]
  mean, _ = compute_mean_std(train)
  np.testing.assert_allclose(np.load(out / "Mean.npy"), mean, rtol=1e-6, atol=1e-7)
  assert report["stats"] == "recomputed" and report["mean_std_clips"] == len(train)
  # --keep-stats keeps them.
  stats = _snapshot(out)["Mean.npy"]
  assert _import(out, src / f"{A}.bvh", flags=["--keep-stats"]) == 0
  assert _snapshot(out)["Mean.npy"] == stats
  assert json.loads((out / "import_report.json").read_text())["stats"] == "kept"


def test_garbage_bvh_is_named_without_raw_bytes(tmp_path):
  rng = np.random.default_rng(0)
  garbage = tmp_path / "garbage.bvh"
  garbage.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
  with pytest.raises(cli.LeadJaxError, match=r"garbage.bvh: not a BVH text file \(binary data"):
    read_bvh(garbage)
  odd = tmp_path / "odd.bvh"
  odd.write_bytes(b"HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 \xff\xfe\x1b[31m\n")
  with pytest.raises(cli.LeadJaxError) as err:
    read_bvh(odd)
  message = str(err.value)
  assert message.startswith(f"{odd}: line 4: expected a number for OFFSET of 'Hips'")
  assert message.isprintable() and "\\ufffd" in message and "\\x1b" in message


def test_export_bvh_names_the_file_with_nan(tmp_path, capsys):
  features = np.zeros((10, 263), np.float32)
  features[4, 7] = np.nan
  np.save(tmp_path / "m.npy", features)
  assert cli.main(["export-bvh", str(tmp_path / "m.npy"), "--out", str(tmp_path / "m.bvh")]) == 2
  err = capsys.readouterr().err
  assert f"{tmp_path / 'm.npy'}: NaN or infinite values in 1 of 10 frame(s), first frame 4" in err
  assert not (tmp_path / "m.bvh").exists()
  assert cli.main(["export-bvh", str(tmp_path / "m.npy"), "--out", str(tmp_path / "m.bvh"),
                   "--fps", "0"]) == 2
  assert "--fps must be positive" in capsys.readouterr().err
