"""The GPU check (scripts/gpu_check.sh): one epoch of each model in `paper` and `fast` with its throughput, CUDA resume
equality of one short run, and AdaLA's foreach path against its per-tensor path on the device; the figures go to
results/reference/gpu_timings.md with the command, the device and the versions.

The device machine has no internet: data is the synthetic stand-in at the real sizes (throughput does not depend on
the pixels or the words), and the FID network has random weights (the GAN line times training and the FID code path,
not a real FID). `--tiny` runs the same code at smoke sizes on any device, to check the script itself.

    python scripts/gpu_check.py [--device cuda] [--tiny] [--out results/reference/gpu_timings.md]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from adala_bench import optim
from adala_bench.catalog import TASKS
from adala_bench.config import RunConfig, compose
from adala_bench.runner import build_trainer, train_one
from adala_bench.seeding import seed_everything
from adala_bench.store import RunDir
from adala_bench.trainer import Progress

ROOT = Path(__file__).resolve().parents[1]
# One model per family is enough for PTB (the deepest) and the GANs (the penalised one, the costlier step).
CHECKED = ("cifar10_vgg11", "cifar10_resnet34", "cifar10_densenet121", "ptb_lstm3", "gan_wgan_gp")
PROFILES = ("paper", "fast")
REAL_SIZES = ["data.synthetic.n_train=50000", "data.synthetic.n_test=10000", "task.synthetic.n_train=929589",
              "task.synthetic.n_valid=73760", "task.synthetic.n_test=82430", "task.synthetic.vocab_size=10000"]
TINY_SIZES = ["data.synthetic.n_train=256", "data.synthetic.n_test=128", "task.width=0.125", "batch_size=32"]


def size_overrides(task: str, tiny: bool) -> list[str]:
    family = TASKS[task].family.name
    sizes = TINY_SIZES if tiny else REAL_SIZES
    keep = {"cifar10": "data.", "gan": "data.", "ptb": "task.synthetic"}[family]
    chosen = [o for o in sizes if o.startswith(keep) or o.startswith(("task.width", "batch_size"))]
    if family == "gan":  # a cheap FID path: random Inception weights, few samples (tiny: against all 256 images)
        chosen += ["task.fid.dims=64", "task.fid.final_samples=32", "task.fid.real_images=64"] if tiny else \
            ["task.fid.dims=2048", "task.fid.final_samples=512", "task.fid.real_images=1024"]
    return chosen


def one_epoch(task: str, profile: str, device: str, root: Path, tiny: bool) -> str:
    run = RunConfig.of(compose(f"task={task}", "optimizer=adala", f"profile={profile}", "epochs=2",
                               f"device={device}", "data.source=synthetic", f"data.root={root}",
                               *size_overrides(task, tiny)))
    seed_everything(0)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = run.trainer.fast
    trainer = build_trainer(run, dev)
    built = trainer.task
    started = time.perf_counter()
    progress = Progress()
    trainer.train_epoch(progress)
    total = time.perf_counter() - started
    if trainer.settings.compile:  # that epoch compiled the models: time the next one for the throughput
        progress = Progress(epoch=1)
        trainer.train_epoch(progress)
    family = TASKS[task].family.name
    if family == "cifar10":
        amount = f"{len(built.train.labels) / progress.wall_s:,.0f} images/s"
    elif family == "ptb":
        amount = f"{built.train_data.numel() / progress.wall_s:,.0f} tokens/s"
    else:
        amount = f"{progress.step / progress.wall_s:,.1f} critic steps/s"
    return (f"| {task} | {profile} | {progress.wall_s:.1f} | {total:.1f} | {amount} |")


def resume_equality(device: str, root: Path) -> str:
    """A 2-epoch AdaLA run straight, and interrupted after epoch 1 then resumed: the same checkpoint bits?"""
    from adala_bench import trainer as trainer_module

    def run(results: Path, interrupt: bool) -> str:
        cfg = compose("profile=smoke", "task=cifar10_resnet34", "optimizer=adala", f"device={device}",
                      f"data.root={root}", f"results.root={results}")
        original = trainer_module.Trainer.train_epoch
        if interrupt:
            def stop_at_1(self, progress):
                if progress.epoch == 1:
                    raise KeyboardInterrupt
                return original(self, progress)
            trainer_module.Trainer.train_epoch = stop_at_1
            try:
                train_one(cfg)
            except KeyboardInterrupt:
                pass
            finally:
                trainer_module.Trainer.train_epoch = original
        train_one(cfg)
        checkpoint = RunDir(RunConfig.of(cfg).path).load_checkpoint()
        digest = hashlib.sha256()
        for tensor in checkpoint["models"]["model"].values():
            digest.update(tensor.cpu().numpy().tobytes())
        return digest.hexdigest()

    straight, resumed = run(root / "straight", False), run(root / "resumed", True)
    return f"resume after an interruption equals the straight run, bit for bit: {straight == resumed}"


def foreach_against_per_tensor(device: str) -> str:
    torch.manual_seed(0)
    shapes = [(64, 3, 3, 3), (64,), (128, 64, 3, 3), (10, 512)]
    base = [torch.randn(shape, device=device) for shape in shapes]
    results = []
    for foreach in (True, False):
        params = [b.clone().requires_grad_(True) for b in base]
        opt = optim.build("adala", params, lr=1e-3, weight_decay=5e-4, foreach=foreach)
        for step in range(10):
            generator = torch.Generator(device=device).manual_seed(step)
            for p in params:
                p.grad = torch.randn(p.shape, device=device, generator=generator)

            def closure():
                for p in params:
                    p.grad = (p.detach() * 0.1).clone()
                return torch.zeros(())
            opt.step(closure)
        results.append(params)
    worst = max(float((a - b).abs().max()) for a, b in zip(*results))
    equal = all(torch.equal(a, b) for a, b in zip(*results))
    return f"AdaLA foreach vs per-tensor on {device}, 10 steps: bit-identical {equal}, max |diff| {worst:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="smoke sizes (to check the script itself)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "reference" / "gpu_timings.md")
    parser.add_argument("--tasks", default=",".join(CHECKED), help="comma-separated tasks to time (default: %(default)s)")
    parser.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated (default: %(default)s)")
    args = parser.parse_args()
    tasks, profiles = args.tasks.split(","), args.profiles.split(",")
    for name, allowed in (*((task, TASKS) for task in tasks), *((profile, PROFILES) for profile in profiles)):
        if name not in allowed:
            sys.exit(f"gpu_check: error: {name!r} is not allowed; allowed: {', '.join(allowed)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_check: error: no CUDA device here; use --device cpu --tiny to check the script")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["TORCH_HOME"] = str(root / "torch_home")
        from adala_bench.metrics.fid import write_random_inception_weights
        write_random_inception_weights(root / "torch_home")
        lines = ["| task | profile | train s (epoch, no eval; `fast`: the 2nd epoch) | first epoch s, incl. eval and compile | throughput |", "|---|---|---:|---:|---:|"]
        for task in tasks:
            for profile in profiles:
                lines.append(one_epoch(task, profile, args.device, root / "data", args.tiny))
                print(lines[-1], flush=True)
        checks = [resume_equality(args.device, root / "resume"), foreach_against_per_tensor(args.device)]
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor() or platform.machine()
    text = "\n".join([
        "# GPU check", "",
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        f"- device: {args.device} ({name}); torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version()}",
        f"- data: synthetic stand-ins at {'smoke' if args.tiny else 'the real'} sizes; FID with random Inception weights",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
        *lines, "", *[f"- {check}" for check in checks], "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
