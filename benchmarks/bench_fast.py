"""profile=fast against profile=paper: training steps per second of the smoke ResNet34 (AdaLA), same run, same data.

Each setting trains one warm-up epoch (compilation happens there, not timed) and then one timed epoch through the
trainer. On CPU there is no goal (bf16 autocast and inductor's CPU code are not what the switches are for); the GPU
figure is scripts/gpu_check.sh's.

    .venv/bin/python benchmarks/bench_fast.py
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from adala_bench.config import RunConfig, compose
from adala_bench.runner import build_trainer
from adala_bench.trainer import Progress


def steps_per_second(profile: str, root: Path) -> float:
    overrides = ["task=cifar10_resnet34", "optimizer=adala", "batch_size=32", "device=cpu", "data.source=synthetic",
                 "data.synthetic.n_train=256", "data.synthetic.n_test=128", "task.width=0.125", f"data.root={root}"]
    run = RunConfig.of(compose(f"profile={profile}", "epochs=2", *overrides))
    torch.manual_seed(0)
    trainer = build_trainer(run, torch.device("cpu"))
    trainer.train_epoch(Progress())  # warm-up: compilation, allocator
    progress = Progress(epoch=1)
    trainer.train_epoch(progress)
    return progress.step / progress.wall_s  # wall_s: the epoch's training time, evaluation excluded


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        paper = steps_per_second("paper", Path(tmp))
        fast = steps_per_second("fast", Path(tmp))
    print(f"fast profile: smoke ResNet34 + AdaLA on CPU (2 threads), batch 32: fast {fast:.2f} steps/s vs paper "
          f"{paper:.2f} steps/s: ratio {fast / paper:.2f} (no goal on CPU; training time only, evaluation excluded)")


if __name__ == "__main__":
    main()
