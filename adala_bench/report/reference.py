"""Published numbers: the AdaLA paper's Tables 2-4 and the curves of the AdaBelief (and AdaLA) repositories."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from adala_bench.catalog import TASKS

PAPER_TABLES = "paper_tables.csv"
PUBLISHED_CURVES = {
    # file: (metric column, source label)
    "cifar10_curves.csv": ("test_acc", "AdaBelief repo"),
    "ptb_lstm_curves.csv": ("test_ppl", "AdaBelief repo"),
    "adala_repo_resnet34_log.csv": ("test_acc", "AdaLA repo"),
}
_TASK_OF_MODEL = {t.model: t.name for t in TASKS.values()}


def _read(reference_dir: Path, name: str) -> pd.DataFrame:
    path = Path(reference_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"reference file {str(path)!r} does not exist (set --reference)")
    return pd.read_csv(path)


def paper_values(reference_dir: Path) -> pd.DataFrame:
    """Columns table, task, model, optimizer (run name, lowercase), label (paper spelling), value."""
    paper = _read(reference_dir, PAPER_TABLES)
    return pd.DataFrame({
        "table": paper["table"].astype(str),
        "task": paper["model"].map(_TASK_OF_MODEL),
        "model": paper["model"].astype(str),
        "optimizer": paper["optimizer"].str.lower(),
        "label": paper["optimizer"].astype(str),
        "value": paper["value"].astype(float),
    })


def published_curves(reference_dir: Path) -> pd.DataFrame:
    """Long frame of every published curve: task, optimizer, epoch, metric (test_acc or test_ppl), value, source.
    Files absent from the folder are skipped."""
    curves = []
    for name, (metric, source) in PUBLISHED_CURVES.items():
        if not (Path(reference_dir) / name).is_file():
            continue
        curve = _read(reference_dir, name)
        curves.append(pd.DataFrame({
            "task": curve["model"].map(_TASK_OF_MODEL),
            "optimizer": curve["optimizer"].str.lower(),
            "epoch": curve["epoch"].astype(int),
            "metric": metric,
            "value": curve[metric].astype(float),
            "source": source,
        }))
    if not curves:
        return pd.DataFrame(columns=["task", "optimizer", "epoch", "metric", "value", "source"])
    return pd.concat(curves, ignore_index=True)
