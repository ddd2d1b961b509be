"""The GAN's costs on CPU: pytorch-fid's InceptionV3 features per second at batch 32 (2048-d, 64x64 inputs resized
to 299 inside the network, as FID runs it), and one GAN epoch at the demo's width (profile=smoke, the demo's FID
settings), training and FID separately, for WGAN and WGAN-GP with AdaLA and Adam.

The Inception network gets random weights written to a temporary TORCH_HOME (the same computation as the real
weights; nothing is downloaded). Figures only, no goal: they size the demo and tell what FID costs.
Run: .venv/bin/python benchmarks/bench_gan.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import compose_config  # noqa: E402

from adala_bench.metrics.fid import InceptionFeatures, write_random_inception_weights  # noqa: E402
from adala_bench.runner import optimizer_spec, trainer_settings  # noqa: E402
from adala_bench.tasks import build_task  # noqa: E402
from adala_bench.trainer import Progress, Schedule, Trainer  # noqa: E402

BATCH, REPEATS = 32, 2
# scripts/demo.sh's GAN settings.
CURVE_SAMPLES = 32
DEMO_FID = ["++task.fid.dims=64", "++task.fid.every=1", f"++task.fid.curve_samples={CURVE_SAMPLES}",
            "++task.fid.final_samples=64", "++task.fid.real_images=256"]


def inception_images_per_second() -> float:
    features = InceptionFeatures("cpu", dims=2048, batch_size=BATCH)
    images = torch.rand(BATCH, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    features.features(images)  # warm-up
    best = min(_seconds(lambda: features.features(images)) for _ in range(REPEATS))
    return BATCH / best


def gan_epoch_seconds(task: str, optimizer: str, root: Path) -> tuple[float, float, int]:
    """(training seconds, FID seconds, generator + critic steps) of the first epoch at the demo's settings."""
    cfg = compose_config("profile=smoke", f"task={task}", f"optimizer={optimizer}", "epochs=4",
                         "task.schedule.milestones=[]", f"data.root={root}", *DEMO_FID)
    torch.manual_seed(0)
    device = torch.device("cpu")
    built = build_task(cfg, device)
    trainer = Trainer(built, {player: optimizer_spec(cfg) for player in built.players}, epochs=cfg.epochs,
                      schedule=Schedule(), device=device, settings=trainer_settings(cfg))
    progress = Progress()
    trainer.train_epoch(progress)
    fid_s = _seconds(lambda: built.evaluate(0))
    return progress.wall_s, fid_s, progress.step


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
                train_s, fid_s, steps = gan_epoch_seconds(task, optimizer, Path(tmp) / "data")
                print(f"gan: one {task} epoch at the demo's width ({optimizer}, {steps} steps, CPU): "
                      f"training {train_s:.2f} s, FID ({CURVE_SAMPLES} fakes, 64-d) {fid_s:.2f} s")


if __name__ == "__main__":
    main()
