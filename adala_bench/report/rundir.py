"""The run directory format the runner writes, seen from the report: file names, and a writer for fixtures,
benchmarks and for turning published curves into runs.

    <runs>/<task>/<optimizer>/<hparams>/seed=<n>/{config.yaml, metrics.jsonl, status.json, samples/final.png}
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import yaml

from adala_bench.store import CONFIG_FILE as CONFIG
from adala_bench.store import RunDir, layout_path

SAMPLES = "samples/final.png"


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
    """Write one run directory through the run store; `epochs` are the metrics.jsonl records in order."""
    records = list(epochs)
    run = RunDir(layout_path(runs_dir, task, optimizer, hparams, seed))
    run.path.mkdir(parents=True, exist_ok=True)
    config = {
        "task": {"name": task, "family": family, "model": model},
        "optimizer": {"name": optimizer},
        "seed": seed,
        "epochs": len(records),
    }
    (run.path / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    run.write_metrics(records)
    extra = {"diverged_at": dict(diverged_at)} if diverged_at is not None else {}
    run.write_status(state, reason=reason, epochs_done=len(records), device="cpu", **extra)
    return run.path
