"""Record CIFAR-10 smoke runs as the reference that `test_cifar10_unchanged.py` holds every later version to.

Run it only when a change is *meant* to move CIFAR-10 results (and say so in the commit):
    OMP_NUM_THREADS=1 .venv/bin/python tests/record_cifar10_reference.py
It trains each run below through the runner, in-process on CPU, and writes tests/data/cifar10_smoke_reference.json:
every metrics row (without wall_s), a digest of the final checkpoint's model and optimizer, and the run directory's
name for every task x optimizer of Table 2.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import compose_config  # noqa: E402

from adala_bench.runner import train_one  # noqa: E402
from adala_bench.store import RunDir, run_path  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "data" / "cifar10_smoke_reference.json"
RUNS = {
    "vgg11_adala_next": ["task=cifar10_vgg11", "optimizer=adala"],
    "resnet34_adala_same": ["task=cifar10_resnet34", "optimizer=adala", "trainer.lookahead_batch=same"],
    "resnet34_sgd": ["task=cifar10_resnet34", "optimizer=sgd"],
    "densenet121_adam": ["task=cifar10_densenet121", "optimizer=adam", "batch_size=64"],
    "vgg11_yogi_val": ["task=cifar10_vgg11", "optimizer=yogi", "data.val_size=64"],
}
TASKS = ("cifar10_vgg11", "cifar10_resnet34", "cifar10_densenet121")
OPTIMIZERS = ("fromage", "adamw", "radam", "msvag", "adam", "yogi", "adabound", "sgd", "adabelief", "adala")


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


def smoke(*overrides: str, root: Path) -> object:
    return compose_config("profile=smoke", f"data.root={root / 'data'}", f"results.root={root / 'runs'}", *overrides)


def record_run(overrides: list[str], root: Path) -> dict:
    cfg = smoke(*overrides, root=root)
    assert train_one(cfg) == "completed"
    run = RunDir(run_path(cfg))
    checkpoint = run.load_checkpoint()
    return {
        "overrides": overrides,
        "run_dir": str(run.path.relative_to(root / "runs")),
        "metrics": [{k: v for k, v in row.items() if k != "wall_s"} for row in run.read_metrics()],
        "model_digest": tensor_digest(checkpoint["models"]["model"]),
    }


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = {name: record_run(overrides, root) for name, overrides in RUNS.items()}
        tags = {f"{t}/{o}": str(run_path(smoke(f"task={t}", f"optimizer={o}", root=root)).relative_to(root / "runs"))
                for t in TASKS for o in OPTIMIZERS}
        tags["paper:cifar10_resnet34/adala"] = str(run_path(compose_config(
            "task=cifar10_resnet34", "optimizer=adala", f"results.root={root}")).relative_to(root))
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps({"runs": runs, "run_dirs": tags}, indent=1) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
