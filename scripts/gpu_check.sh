#!/usr/bin/env bash
# The GPU check, under 8 minutes on one GPU: one epoch of each model in `paper` and `fast` (images/s, tokens/s,
# GAN steps/s), CUDA resume equality, AdaLA foreach vs per-tensor on CUDA. Writes results/reference/gpu_timings.md.
#   bash scripts/gpu_check.sh            (on a GPU box, after make install)
#   bash scripts/gpu_check.sh --device cpu --tiny   (checks the script itself, anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/gpu_check.py "$@"
