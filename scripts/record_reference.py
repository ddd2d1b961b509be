"""Record the smoke runs that later versions are held to (tests/e2e/test_behaviour_pinned.py), bit for bit on CPU.

Run it only when a change is *meant* to move results (and say so in the commit), or to add this machine's platform:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/record_reference.py
It trains each run of RUNS (CIFAR-10, PTB and GAN smoke runs) through the runner, in-process on CPU, and writes into
tests/data/smoke_reference.json, under this machine's platform fingerprint, every metrics row (without wall_s) and a
digest of each final model. CPU float results depend on the CPU and its maths library (the same run on an AMD and an
Intel machine differs after a few steps), so each platform keeps its own recording. The run directory names do not
depend on the platform: they are recorded once, for every task × optimizer of the smoke and paper profiles and a few
variants (RUN_DIRS).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "smoke_reference.json"
TASKS = ("cifar10_vgg11", "cifar10_resnet34", "cifar10_densenet121", "ptb_lstm1", "ptb_lstm2", "ptb_lstm3",
         "gan_wgan", "gan_wgan_gp")
OPTIMIZERS = ("fromage", "adamw", "radam", "msvag", "adam", "yogi", "adabound", "sgd", "adabelief", "adala")
# The smoke GAN's FID sized for CPU and its constant lr: what profile=smoke gives a GAN since the redesign
# (before it, these had to be given on the command line).
SMOKE_GAN = ["task.fid.dims=64", "task.fid.every=1", "task.fid.curve_samples=16", "task.fid.final_samples=32",
             "task.fid.real_images=64", "task.schedule.milestones=[]"]
RUNS = {
    "vgg11_adala_next": ["task=cifar10_vgg11", "optimizer=adala"],
    "resnet34_adala_same": ["task=cifar10_resnet34", "optimizer=adala", "trainer.lookahead_batch=same"],
    "resnet34_sgd": ["task=cifar10_resnet34", "optimizer=sgd"],
    "densenet121_adam": ["task=cifar10_densenet121", "optimizer=adam", "batch_size=64"],
    "vgg11_yogi_val": ["task=cifar10_vgg11", "optimizer=yogi", "data.val_size=64"],
    "lstm1_adala": ["task=ptb_lstm1", "optimizer=adala"],
    "lstm2_sgd": ["task=ptb_lstm2", "optimizer=sgd", "epochs=3"],
    "lstm3_adabelief_recurrent": ["task=ptb_lstm3", "optimizer=adabelief", "task.lstm.train_recurrent=true"],
    "wgan_adala": ["task=gan_wgan", "optimizer=adala", *SMOKE_GAN],
    "wgan_gp_adam": ["task=gan_wgan_gp", "optimizer=adam", *SMOKE_GAN],
}
# Run directories beyond the task × optimizer grid: named variants of one run each.
VARIANTS = {
    "adala_same": ["task=cifar10_vgg11", "optimizer=adala", "trainer.lookahead_batch=same"],
    "lr_scale": ["task=ptb_lstm2", "optimizer=sgd", "lr_scale=3"],
    "custom": ["task=cifar10_vgg11", "optimizer=custom", "optimizer._target_=torch.optim.Adamax", "optimizer.lr=2e-3"],
    "fast": ["task=cifar10_resnet34", "optimizer=adala", "profile=fast"],
    "val_size": ["task=cifar10_vgg11", "optimizer=adam", "data.val_size=5000"],
    "recurrent": ["task=ptb_lstm1", "optimizer=adam", "task.lstm.train_recurrent=true"],
    "fid_curve": ["task=gan_wgan_gp", "optimizer=adala", "task.fid.every=10"],
}


def platform_fingerprint() -> str:
    """What CPU float results depend on: the CPU (vendor and model), torch's SIMD level and torch's version."""
    cpu = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("vendor_id", "model name") and key.strip() not in cpu:
                cpu[key.strip()] = value.strip()
    except OSError:
        pass
    return " / ".join([platform.machine(), cpu.get("vendor_id", "?"), cpu.get("model name", platform.processor()),
                       f"torch {torch.__version__}", torch.backends.cpu.get_cpu_capability()])


def tensor_digest(tree) -> str:
    """sha256 over every tensor's bytes, in a fixed order: equal digests mean bit-identical states."""
    digest = hashlib.sha256()

    def visit(value, key=""):
        if isinstance(value, torch.Tensor):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                visit(value[k], f"{key}/{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                visit(v, f"{key}/{i}")
        else:
            digest.update(f"{key}={value!r}".encode())

    visit(tree)
    return digest.hexdigest()


# -- the two calls into the package (the only lines to adapt when its API moves) ----------------------------------
def run_dir(root: Path, *overrides: str) -> Path:
    """The run directory adala-train would use for these overrides, relative to the results root."""
    from adala_bench.config import RunConfig, compose

    return RunConfig.of(compose(f"results.root={root}", *overrides)).path.relative_to(root)


def train(root: Path, *overrides: str, data: Path | None = None) -> tuple[Path, list[dict], dict]:
    """Train one run in-process; (run directory relative to the results root, metrics rows, checkpoint)."""
    from adala_bench.config import RunConfig, compose
    from adala_bench.runner import train_one
    from adala_bench.store import RunDir

    cfg = compose(f"results.root={root / 'runs'}", f"data.root={data or root / 'data'}", *overrides)
    assert train_one(cfg) == "completed"
    run = RunDir(RunConfig.of(cfg).path)
    return run.path.relative_to(root / "runs"), run.read_metrics(), run.load_checkpoint()


# -- recording ----------------------------------------------------------------------------------------------------
def record_run(root: Path, overrides: list[str], data: Path | None = None) -> dict:
    """One smoke run's record; `data`: a data root to share (its synthetic sets and FID statistics are reused)."""
    path, metrics, checkpoint = train(root, "profile=smoke", *overrides, data=data)
    return {
        "overrides": overrides,
        "run_dir": str(path),
        "metrics": [{k: v for k, v in row.items() if k != "wall_s"} for row in metrics],
        "model_digests": {name: tensor_digest(state) for name, state in checkpoint["models"].items()},
    }


def record_run_dirs(root: Path) -> dict[str, str]:
    dirs = {}
    for task in TASKS:
        for optimizer in OPTIMIZERS:
            gan = SMOKE_GAN if task.startswith("gan") else []
            dirs[f"smoke:{task}/{optimizer}"] = str(run_dir(root, "profile=smoke", f"task={task}",
                                                            f"optimizer={optimizer}", *gan))
            dirs[f"paper:{task}/{optimizer}"] = str(run_dir(root, f"task={task}", f"optimizer={optimizer}"))
    for name, overrides in VARIANTS.items():
        dirs[f"variant:{name}"] = str(run_dir(root, *overrides))
    return dirs


def main() -> None:
    torch.set_num_threads(1)
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {"run_dirs": {}, "platforms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from adala_bench.metrics.fid import write_random_inception_weights

        os.environ["TORCH_HOME"] = str(root / "torch_home")
        write_random_inception_weights(root / "torch_home")
        runs = {name: record_run(root, overrides) for name, overrides in RUNS.items()}
        dirs = record_run_dirs(root / "names")
    if reference["run_dirs"] and reference["run_dirs"] != dirs:
        changed = sorted(key for key in dirs if reference["run_dirs"].get(key) != dirs[key])
        print(f"run directory names changed for {len(changed)} entries, e.g. {changed[:3]}: recorded anew")
    reference["run_dirs"] = dirs
    reference["platforms"][platform_fingerprint()] = {"runs": runs}
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {REFERENCE} for platform {platform_fingerprint()!r}")


if __name__ == "__main__":
    main()
