"""Packaging: every package folder of lead_jax/ is installed, data_pipeline/ under a namespaced
name, and the repository's generic top-level folders (configs/, benchmarks/) are not installed."""

import pathlib
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_installed_packages_cover_the_library_and_nothing_generic():
  setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
  folders = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "lead_jax").rglob("__init__.py")}
  packages = set(setup["packages"])
  assert folders <= packages, sorted(folders - packages)
  assert packages - folders == {"lead_jax_data_pipeline"}
  assert setup["package-dir"] == {"lead_jax_data_pipeline": "data_pipeline"}
  assert not {"configs", "data_pipeline", "benchmarks"} & packages
