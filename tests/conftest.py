"""Shared test fixtures: the real data under ../shared/data (skipped with a message when absent)."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("LEAD_JAX_SHARED_DATA", REPO.parent / "shared" / "data"))


def _require(path: pathlib.Path) -> pathlib.Path:
  if not path.exists():
    pytest.skip(f"real data not found at {path} (set LEAD_JAX_SHARED_DATA or place ../shared/data)")
  return path


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def humanml3d_dir() -> pathlib.Path:
  return _require(SHARED_DATA / "humanml3d")


@pytest.fixture(scope="session")
def bandai_dir() -> pathlib.Path:
  return _require(SHARED_DATA / "bandai")
