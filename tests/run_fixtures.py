"""A test helper that writes run directories through the run store itself, so fixtures and real runs share one
format: the report's tests, and the tests that turn published curves into runs, use it."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from omegaconf import OmegaConf

from adala_bench.store import RunDir, layout_path


def write_run(
    runs_dir: Path,
    task: str,
    optimizer: str,
    hparams: str,
    seed: int,
    epochs: Iterable[Mapping[str, float]],
    *,
    state: str = "completed",
    reason: str | None = None,
    family: str | None = None,
    model: str | None = None,
    diverged_at: Mapping[str, int] | None = None,
) -> Path:
    """Write one run directory; `epochs` are the metrics.jsonl records in order."""
    records = list(epochs)
    run = RunDir(layout_path(runs_dir, task, optimizer, hparams, seed))
    run.path.mkdir(parents=True, exist_ok=True)
    config = {
        "task": {"name": task, "family": family, "model": model},
        "optimizer": {"name": optimizer},
        "seed": seed,
        "epochs": len(records),
    }
    run.write_config(OmegaConf.create(config))
    run.write_metrics(records)
    extra = {"diverged_at": dict(diverged_at)} if diverged_at is not None else {}
    run.write_status(state, reason=reason, epochs_done=len(records), device="cpu", **extra)
    return run.path
