"""The GAN's costs on CPU: pytorch-fid's InceptionV3 features per second at batch 32 (2048-d, 64x64 inputs resized
to 299 inside the network, as FID runs it), and one GAN epoch at the demo's width (profile=smoke, the demo's FID
settings), training and FID separately, for WGAN and WGAN-GP with AdaLA and Adam.

The Inception network gets random weights written to a temporary TORCH_HOME (the same computation as the real
weights; nothing is downloaded). Figures only, no goal: they size the demo and tell what FID costs.
Run: .venv/bin/python benchmarks/bench_gan.py
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from adala_bench.config import RunConfig, compose
from adala_bench.metrics.fid import InceptionFeatures, write_random_inception_weights
from adala_bench.runner import build_trainer
from adala_bench.trainer import Progress

BATCH, REPEATS = 32, 2


def inception_images_per_second() -> float:
    features = InceptionFeatures("cpu", dims=2048, batch_size=BATCH)
    images = torch.rand(BATCH, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    features.features(images)  # warm-up
    best = min(_seconds(lambda: features.features(images)) for _ in range(REPEATS))
    return BATCH / best


def gan_epoch_seconds(task: str, optimizer: str, root: Path) -> tuple[float, float, int, int]:
    """(training seconds, FID seconds, generator + critic steps, fakes of the FID) of the first epoch at the demo's
    settings (the smoke profile's GAN: its curve FID every epoch)."""
    run = RunConfig.of(compose("profile=smoke", f"task={task}", f"optimizer={optimizer}", "epochs=4",
                               f"data.root={root}"))
    torch.manual_seed(0)
    trainer = build_trainer(run, torch.device("cpu"))
    progress = Progress()
    trainer.train_epoch(progress)
    fid_s = _seconds(lambda: trainer.task.evaluate(0))
    return progress.wall_s, fid_s, progress.step, run.task_settings.fid.curve_samples


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCH_HOME"] = str(Path(tmp) / "torch_home")
        write_random_inception_weights(os.environ["TORCH_HOME"])
        rate = inception_images_per_second()
        print(f"gan: pytorch-fid InceptionV3 (2048-d, random weights) on CPU (2 threads), batch {BATCH}: "
              f"{rate:.1f} images/s ({50_000 / rate / 3600:.1f} h for the 50,000 real images of the paper protocol)")
        for task in ("gan_wgan", "gan_wgan_gp"):
            for optimizer in ("adam", "adala"):
                train_s, fid_s, steps, fakes = gan_epoch_seconds(task, optimizer, Path(tmp) / "data")
                print(f"gan: one {task} epoch at the demo's width ({optimizer}, {steps} steps, CPU): "
                      f"training {train_s:.2f} s, FID ({fakes} fakes, 64-d) {fid_s:.2f} s")


if __name__ == "__main__":
    main()
