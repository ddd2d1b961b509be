#!/usr/bin/env bash
# The CPU demo: every task of Tables 2-4 (three CIFAR-10 models, three PTB depths, WGAN and WGAN-GP) with AdaLA and
# three baselines, and AdaLA at lookahead_weight 0.5 (the fix the paper proposes), two seeds, the smoke profile
# (synthetic data in the official on-disk formats, narrow networks, CPU, a CPU-sized FID for the GANs) stretched to
# 4 epochs, then the report on those runs. The GANs' FID uses an
# Inception network with RANDOM weights written here (no download): the report flags those numbers as not a real
# FID. Minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/demo
export TORCH_HOME="$out/torch_home"
.venv/bin/adala-data inception --random --torch-home "$TORCH_HOME"
.venv/bin/adala-train --multirun profile=smoke epochs=4 'task.schedule.milestones=[3]' \
  task=cifar10_vgg11,cifar10_resnet34,cifar10_densenet121,ptb_lstm1,ptb_lstm2,ptb_lstm3 \
  optimizer=adala,adabelief,sgd,adam seed=0,1 \
  data.root="$out/data" results.root="$out/runs"
# The GANs keep the protocol's constant lr (the smoke profile gives them no decay).
.venv/bin/adala-train --multirun profile=smoke epochs=4 \
  task=gan_wgan,gan_wgan_gp optimizer=adala,adabelief,sgd,adam seed=0,1 \
  data.root="$out/data" results.root="$out/runs"
# The fix the paper proposes (§7), at one weight between AdaBelief's residual (w = 0) and AdaLA's (w = 1): the
# claims_mix experiment at w = 0.5 only (it sweeps 0, 0.25, 0.5, 0.75 and 1), for the report's claims view.
.venv/bin/adala-train --multirun +experiment=claims_mix optimizer.lookahead_weight=0.5 profile=smoke epochs=4 \
  'task.schedule.milestones=[3]' task=cifar10_vgg11,cifar10_resnet34,cifar10_densenet121,ptb_lstm1,ptb_lstm2,ptb_lstm3 \
  seed=0,1 data.root="$out/data" results.root="$out/runs"
.venv/bin/adala-train --multirun +experiment=claims_mix optimizer.lookahead_weight=0.5 profile=smoke epochs=4 \
  task=gan_wgan,gan_wgan_gp seed=0,1 data.root="$out/data" results.root="$out/runs"
# 4-epoch runs beside 200-epoch published curves would only mislead: --no-published.
.venv/bin/adala-report --runs "$out/runs" --out "$out/report" --profile smoke --no-published
echo
echo "demo runs:   $out/runs"
