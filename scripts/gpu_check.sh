#!/usr/bin/env bash
# The first script a new GPU box runs: correctness first (device and driver, resume equality in a fresh process under
# trainer.deterministic=true, the CUDA RNG across visible GPUs, AdaLA foreach vs per-tensor, the PTB LSTM's dtype and
# the GAN's epoch sums under fast, FID on the GPU against the CPU), then one timed epoch per model. Every step's result
# goes to results/reference/gpu_timings.md and .json as soon as it is known (a rehearsal's to results/gpu_check/);
# exit status 1 if any check failed.
#   bash scripts/gpu_check.sh            (on a GPU box, after make install: under 8 minutes on one H100)
#   bash scripts/gpu_check.sh --quick    (the correctness steps alone: under 3 minutes)
#   bash scripts/gpu_check.sh --device cpu --tiny [--quick]   (rehearses the script itself, anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/gpu_check.py "$@"
