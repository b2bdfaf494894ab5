"""Shared test fixtures: the real data under ../shared/data (skipped with a message when absent)."""

import atexit
import os
import pathlib
import shutil
import tempfile

import pytest

# One XLA compilation cache for the whole session (this process, its pytest-xdist workers, which
# inherit the variable, and the CLI subprocesses the tests start): the suite builds many identical
# programs (a Pipeline or trainer per test, the same tiny configs), and the persistent cache
# compiles each once. A fresh directory per session, removed at exit, so no executable outlives the
# code that built it; JAX_COMPILATION_CACHE_DIR set by the caller is used as is. Set before JAX is
# imported anywhere.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix="lead_jax_test_xla_cache_")
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ.update(JAX_COMPILATION_CACHE_DIR=_CACHE, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.1",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")

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
