#!/usr/bin/env bash
# The CPU demo: every task of Tables 2-4 (three CIFAR-10 models, three PTB depths, WGAN and WGAN-GP) with AdaLA and
# three baselines, two seeds, the smoke profile (synthetic data in the official on-disk formats, narrow networks,
# CPU) stretched to 4 epochs, then the report on those runs. The GANs' FID uses an Inception network with RANDOM
# weights written here (no download): the report flags those numbers as not a real FID. Minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/demo
.venv/bin/adala-train --multirun profile=smoke epochs=4 'task.schedule.milestones=[3]' \
  task=cifar10_vgg11,cifar10_resnet34,cifar10_densenet121,ptb_lstm1,ptb_lstm2,ptb_lstm3 \
  optimizer=adala,adabelief,sgd,adam seed=0,1 \
  data.root="$out/data" results.root="$out/runs"
# The GANs: constant lr as the protocol, a cheap FID (64-d features, few samples) every epoch for the curve
# (`++`: a multirun checks overrides against the default task too, which has no fid block).
export TORCH_HOME="$out/torch_home"
.venv/bin/python -c "from adala_bench.metrics.fid import write_random_inception_weights as w; w('$TORCH_HOME')"
.venv/bin/adala-train --multirun profile=smoke epochs=4 'task.schedule.milestones=[]' \
  task=gan_wgan,gan_wgan_gp optimizer=adala,adabelief,sgd,adam seed=0,1 \
  ++task.fid.dims=64 ++task.fid.every=1 ++task.fid.curve_samples=32 ++task.fid.final_samples=64 ++task.fid.real_images=256 \
  data.root="$out/data" results.root="$out/runs"
.venv/bin/adala-report --runs "$out/runs" --out "$out/report" --no-published  # 4-epoch runs beside 200-epoch curves would only mislead
echo
echo "demo runs:   $out/runs"
echo "demo report: $out/report (index.md lists the tables and figures)"
