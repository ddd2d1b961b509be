"""runner.job_result: what a job hands Hydra's sweeper. The basic sweeper (and SLURM's launcher) gets the run's
state; an adaptive sweeper (hydra-optuna-sweeper) gets the run's validation value as the tuning view counts it: the
best over epochs, the task's worst value where the run diverged."""

from __future__ import annotations

import math

import pytest

from adala_bench.config import RunConfig
from adala_bench.runner import job_result
from helpers import compose, write_run

OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@pytest.mark.parametrize("task, rows, state, objective", [
    ("cifar10_vgg11", [("val_acc", 12.5), ("val_acc", 31.25), ("val_acc", 20.0)], "completed", 31.25),
    ("ptb_lstm1", [("val_ppl", 300.0), ("val_ppl", 180.5), ("val_ppl", 190.0)], "completed", 180.5),
    ("ptb_lstm1", [("val_ppl", 300.0)], "diverged", math.inf),
    ("cifar10_vgg11", [("val_acc", 50.0)], "diverged", 0.0),
])
def test_an_adaptive_sweeper_gets_the_runs_validation_value(tmp_path, task, rows, state, objective):
    cfg = compose(f"task={task}", "optimizer=adam", "profile=smoke", f"results.root={tmp_path}",
                  *(["data.val_size=64"] if task.startswith("cifar10") else []))
    run = RunConfig.of(cfg)
    metric = "test_acc" if task.startswith("cifar10") else "test_ppl"
    write_run(tmp_path, task, "adam", run.tag, 0, [{"epoch": e, "grad_evals": e + 1, "wall_s": 1.0, "lr": 0.1,
                                                    key: value, metric: value - 1}
                                                   for e, (key, value) in enumerate(rows)], state=state)
    assert job_result(cfg, state, OPTUNA) == objective
    assert job_result(cfg, state, BASIC) == state
