"""CIFAR-10 results do not move: smoke runs recorded before the trainer/store redesign (tests/data, written by
tests/record_cifar10_reference.py) come out the same, bit for bit on CPU, and every run keeps its directory."""

from __future__ import annotations

import json

import pytest

from adala_bench.runner import train_one
from adala_bench.store import RunDir, run_path

from record_cifar10_reference import OPTIMIZERS, REFERENCE, TASKS, tensor_digest

RECORDED = json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("name", sorted(RECORDED["runs"]))
def test_smoke_run_equals_the_recorded_one(smoke, tmp_path, name):
    recorded = RECORDED["runs"][name]
    cfg = smoke(*recorded["overrides"])
    assert train_one(cfg) == "completed"
    run = RunDir(run_path(cfg))
    assert str(run.path.relative_to(tmp_path / "runs")) == recorded["run_dir"]
    assert [{k: v for k, v in row.items() if k != "wall_s"} for row in run.read_metrics()] == recorded["metrics"]
    assert tensor_digest(run.load_checkpoint()["models"]["model"]) == recorded["model_digest"]


def test_every_table2_run_keeps_its_directory(smoke, tmp_path):
    from conftest import compose_config

    for task in TASKS:
        for optimizer in OPTIMIZERS:
            path = run_path(smoke(f"task={task}", f"optimizer={optimizer}"))
            assert str(path.relative_to(tmp_path / "runs")) == RECORDED["run_dirs"][f"{task}/{optimizer}"]
    paper = run_path(compose_config("task=cifar10_resnet34", "optimizer=adala", f"results.root={tmp_path}"))
    assert str(paper.relative_to(tmp_path)) == RECORDED["run_dirs"]["paper:cifar10_resnet34/adala"]
