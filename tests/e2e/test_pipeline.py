"""Runner → run directories → report: the report reads exactly what the runner wrote."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest

from adala_bench.report.cli import main as report_main
from adala_bench.runner import train_one
from adala_bench.store import RunDir
from helpers import run_path


def test_report_tabulates_the_runners_runs(smoke, tmp_path):
    best = {}
    for optimizer in ("adala", "adabelief"):
        for seed in (0, 1):
            cfg = smoke("task=cifar10_vgg11", f"optimizer={optimizer}", f"seed={seed}", "batch_size=16",
                        "task.schedule.milestones=[]")  # 16 steps an epoch at a constant lr: the seeds learn apart
            assert train_one(cfg) == "completed"
            best.setdefault(optimizer, []).append(max(r["test_acc"] for r in RunDir(run_path(cfg)).read_metrics()))

    out = tmp_path / "report"
    assert report_main(["--runs", str(tmp_path / "runs"), "--out", str(out), "--what", "tables", "--profile", "smoke"]) == 0
    table = pd.read_csv(out / "table2.csv")
    assert len({*best["adala"], *best["adabelief"]}) > 1  # seeds and optimizers really differ
    for optimizer, label in (("adala", "AdaLA"), ("adabelief", "AdaBelief")):
        cell = table[(table["optimizer"] == optimizer) & (table["model"] == "VGG11")].iloc[0]
        assert cell["label"] == label
        assert cell["n"] == 2
        assert cell["mean"] == pytest.approx(statistics.mean(best[optimizer]))
        assert cell["std"] == pytest.approx(statistics.stdev(best[optimizer]))
    comparison = pd.read_csv(out / "adala_vs_adabelief.csv")
    row = comparison[comparison["model"] == "VGG11"].iloc[0]
    assert row["diff"] == pytest.approx(statistics.mean(best["adala"]) - statistics.mean(best["adabelief"]))
