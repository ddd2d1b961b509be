"""trackers.py's own functions (the trackers at work on real runs: tests/e2e/test_trackers.py): what a sweep's tracker
runs are grouped by, read from the job's Hydra config as a running job has it."""

from __future__ import annotations

import pytest

from helpers import compose


@pytest.mark.parametrize("overrides,name", [
    (("hydra.mode=RUN",), None),  # a single run belongs to no sweep
    (("hydra.mode=MULTIRUN", "hydra.sweep.dir=/x/outputs/multirun/2026-01-02_03-04-05"), "2026-01-02_03-04-05"),
    (("hydra.mode=MULTIRUN", "hydra.sweep.dir=/x/results/sweep-logs/lr-probe/worker3"), "lr-probe"),  # adala-sweep's
    (("hydra.mode=MULTIRUN", "+experiment=table3", "hydra.sweep.dir=/x/results/sweep-logs/t/worker0"), "table3"),
])
def test_a_sweep_is_named_by_its_experiment_else_by_its_folder(monkeypatch, overrides, name):
    """What groups a sweep's tracker runs, read from the job's Hydra config as a running job has it."""
    from hydra.core.hydra_config import HydraConfig

    from adala_bench.trackers import sweep_name

    hydra = HydraConfig.instance()
    monkeypatch.setattr(hydra, "cfg", hydra.cfg)  # put back after the test
    hydra.set_config(compose("task=cifar10_vgg11", "optimizer=adam", *overrides, hydra=True))
    assert sweep_name() == name
