#!/usr/bin/env bash
# The CPU demo: every CIFAR-10 model and every PTB depth with AdaLA and three baselines, two seeds, the smoke profile
# (synthetic data in the official on-disk formats, narrow networks, CPU) stretched to 4 epochs with the lr decay at
# epoch 3, then the report on those runs. About 4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/demo
.venv/bin/adala-train --multirun profile=smoke epochs=4 'task.schedule.milestones=[3]' \
  task=cifar10_vgg11,cifar10_resnet34,cifar10_densenet121,ptb_lstm1,ptb_lstm2,ptb_lstm3 \
  optimizer=adala,adabelief,sgd,adam seed=0,1 \
  data.root="$out/data" results.root="$out/runs"
.venv/bin/adala-report --runs "$out/runs" --out "$out/report" --no-published  # 4-epoch runs beside 200-epoch curves would only mislead
echo
echo "demo runs:   $out/runs"
echo "demo report: $out/report (index.md lists the tables and figures)"
