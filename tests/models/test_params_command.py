"""`lead-jax params` output and the config loader's override semantics."""

import pathlib

import pytest

from lead_jax import cli
from lead_jax.config_loader import apply_overrides, load_config
from lead_jax.errors import ConfigError, MissingFileError

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"


def _run(capsys, *argv):
  rc = cli.main(["params", *argv])
  out, err = capsys.readouterr()
  return rc, out.splitlines(), err


def test_vae_configs_print_exact_counts(capsys):
  rc, lines, _ = _run(capsys, f"--config={CONFIGS / 'vae_humanml3d.py'}")
  assert rc == 0 and lines == ["vae 18032135", "total 18032135"]
  rc, lines, _ = _run(capsys, f"--config={CONFIGS / 'vae_kit.py'}")
  assert rc == 0 and lines == ["vae 18025979", "total 18025979"]


def test_denoiser_config_and_overrides(capsys):
  rc, lines, _ = _run(capsys, f"--config={CONFIGS / 'denoiser_humanml3d.py'}")
  assert rc == 0 and lines[:2] == ["vae 18032135", "denoiser 8221184"]
  counts = dict(line.split() for line in lines)
  assert int(counts["total"]) == sum(int(v) for k, v in counts.items() if k != "total")
  rc, lines, _ = _run(capsys, f"--config={CONFIGS / 'denoiser_humanml3d.py'}",
                      "--config.denoiser.cond_proj_dim=256", "--config.vae.nfeats", "251")
  assert rc == 0 and lines[:2] == ["vae 18025979", "denoiser 8417792"]


def test_projector_config_and_errors(capsys):
  rc, lines, _ = _run(capsys, f"--config={CONFIGS / 'projector_humanml3d.py'}", "--config.projector.arch=mlp")
  assert rc == 0 and lines[2] == "projector 6298624"
  rc, _, err = _run(capsys, f"--config={CONFIGS / 'projector_humanml3d.py'}", "--config.projector.depth=3")
  assert rc == 2 and "projector has no field 'depth'" in err


def test_load_config_coercion_and_links():
  config = load_config(str(CONFIGS / "projector_humanml3d.py"),
                       ["--config.text_encoder.dim=384", "--config.projector.dropout=0",
                        "--config.denoiser.flip_sin_to_cos=false", "--config.projector.arch", "skip"])
  assert config.projector.text_dim == 384 and config.denoiser.text_dim == 384  # linked fields
  assert config.projector.dropout == 0.0 and isinstance(config.projector.dropout, float)
  assert config.denoiser.flip_sin_to_cos is False and config.projector.arch == "skip"
  with pytest.raises(ConfigError, match="expected a int"):
    apply_overrides(config, ["--config.vae.num_layers=nine"])
  with pytest.raises(ConfigError, match="unknown config field --config.optim.lr"):
    apply_overrides(config, ["--config.optim.lr=1"])
  with pytest.raises(ConfigError, match="is a section"):
    apply_overrides(config, ["--config.vae=1"])
  with pytest.raises(MissingFileError):
    load_config("configs/none.py")


def test_load_config_from_any_directory_with_typed_overrides(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # config files import `configs.*`: found from the file's repository
  config = load_config(str(CONFIGS / "test_vae.py"),
                       ["--config.data.text_cache_dir=/tmp/cache", "--config.data.max_clip_len=64",
                        "--config.train.resume=false", "--config.mesh.fsdp", "2"])
  assert config.data.text_cache_dir == "/tmp/cache" and config.data.max_clip_len == 64
  assert config.train.resume is False and config.mesh.fsdp == 2
  with pytest.raises(ConfigError, match="expected a bool"):
    apply_overrides(config, ["--config.train.resume=maybe"])
  with pytest.raises(ConfigError, match=r"unexpected argument\(s\) \['false'\]"):
    apply_overrides(config, ["--config.train.resume", "false"])
  (tmp_path / "arg_config.py").write_text(
      "import ml_collections\n"
      "def get_config(arg):\n"
      "  return ml_collections.ConfigDict({'name': arg, 'size': 1})\n")
  config = load_config("arg_config.py:kit", ["--config.size=3"])
  assert config.name == "kit" and config.size == 3

