"""An adaptive search with Hydra's Optuna sweeper (TPE), for a user's own optimizer, apart from the equal-budget
comparison: each job hands the sweeper its run's validation value, and the study's best is the best of the runs.
Runs only where the optional extra is installed (pip install -e '.[optuna]'); the test extra leaves it out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from helpers import REPO

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")


def test_optunas_tpe_steers_on_each_runs_validation_value(tmp_path, data_root):
    runs = tmp_path / "runs"
    args = ["--multirun", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.direction=maximize",
            "hydra.sweeper.sampler.seed=0", f"hydra.sweep.dir={tmp_path / 'sweep'}", "task=cifar10_vgg11",
            "optimizer=custom", "optimizer._target_=torch.optim.Adamax", "optimizer.lr=tag(log,interval(2e-4,2e-2))",
            "profile=smoke", "epochs=1", "data.val_size=64", f"results.root={runs}", f"data.root={data_root}"]
    result = subprocess.run([sys.executable, "-c", "from adala_bench.runner import main; main()", *args],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    best = {}
    for metrics in runs.glob("cifar10_vgg11/torch.optim.Adamax/*/seed=0/metrics.jsonl"):
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        lr = yaml.safe_load((metrics.parent / "config.yaml").read_text())["optimizer"]["lr"]
        assert 2e-4 <= lr <= 2e-2
        best[lr] = max(row["val_acc"] for row in rows)
    assert 1 <= len(best) <= 3
    study = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert study["best_value"] == max(best.values())
