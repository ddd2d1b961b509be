"""profile=fast end to end: a smoke run trains on CPU and lands in its own run directory, and the report keeps fast
runs apart from the paper's (and smoke runs apart from both). The switches themselves: tests/unit/test_config.py
(composed) and tests/unit/test_trainer.py (inside the step)."""

from __future__ import annotations

import pandas as pd
import pytest

from adala_bench.config import is_fast_tag
from adala_bench.report.cli import main as report
from adala_bench.runner import train_one
from adala_bench.store import RunDir

from helpers import compose, run_path, write_run

SMOKE_VALUES = ("epochs=1", "batch_size=32", "device=cpu", "data.source=synthetic", "data.synthetic.n_train=256",
                "data.synthetic.n_test=128", "task.width=0.125")


def test_a_fast_smoke_run_trains_on_cpu_in_its_own_run_directory(data_root, tmp_path):
    # compile=false here: compiling on CPU costs ~20 s; the switch itself is checked below, and benchmarks/bench_fast.py
    # trains compiled.
    overrides = ("task=cifar10_vgg11", "optimizer=adala", f"data.root={data_root}", f"results.root={tmp_path}", *SMOKE_VALUES)
    fast = compose("profile=fast", "trainer.compile=false", *overrides)
    paper = compose(*overrides)
    assert train_one(fast) == "completed"
    fast_dir, paper_dir = run_path(fast), run_path(paper)
    assert is_fast_tag(fast_dir.parent.name) and not is_fast_tag(paper_dir.parent.name)
    assert fast_dir.parent.name.startswith("lr0.001-betas0.9,0.999-eps1e-08-weight_decay0.0005-residuallookahead-"
                                           "lookahead_batchnext-fast-")
    (row,) = RunDir(fast_dir).read_metrics()
    assert row["grad_evals"] == 16 and 0 <= row["test_acc"] <= 100 and row["train_loss"] == pytest.approx(2.3, abs=0.2)


def test_the_report_tabulates_paper_or_fast_runs_never_both(tmp_path):
    runs = tmp_path / "runs"
    for tag, accuracy in (("lr0.1-abc12345", 90.0), ("lr0.1-fast-abc67890", 80.0)):
        for seed in (0, 1):
            write_run(runs, "cifar10_vgg11", "sgd", tag, seed, [{"epoch": 0, "grad_evals": 1, "wall_s": 1.0,
                                                                 "test_acc": accuracy + seed}])
    for profile, mean in (("paper", 90.5), ("fast", 80.5)):
        out = tmp_path / profile
        assert report(["--runs", str(runs), "--out", str(out), "--what", "tables", "--profile", profile]) == 0
        table = pd.read_csv(out / "table2.csv").set_index(["model", "optimizer"])
        assert table.loc[("VGG11", "sgd"), "mean"] == mean and table.loc[("VGG11", "sgd"), "n"] == 2


def test_smoke_runs_are_kept_apart_and_flagged_beside_the_paper(tmp_path, capsys):
    """A report tabulates one profile, read from each run's own config; smoke cells name their profile and carry a
    flag beside the paper's value; the other profile's runs are named in one note, never averaged in."""
    runs = tmp_path / "runs"
    for profile, accuracy in (("paper", 90.0), ("smoke", 10.0)):
        for seed in (0, 1):
            write_run(runs, "cifar10_vgg11", "sgd", f"lr0.1-{profile}tag", seed,
                      [{"epoch": 0, "grad_evals": 1, "wall_s": 1.0, "test_acc": accuracy + seed}], profile=profile)
    assert report(["--runs", str(runs), "--out", str(tmp_path / "paper"), "--what", "tables"]) == 0
    assert "2 run(s) of profile smoke are not in this report (adala-report --profile smoke tabulates them)" in \
        capsys.readouterr().err
    paper = pd.read_csv(tmp_path / "paper" / "table2.csv", keep_default_na=False).set_index(["model", "optimizer"])
    assert (float(paper.loc[("VGG11", "sgd"), "mean"]), paper.loc[("VGG11", "sgd"), "profile"]) == (90.5, "paper")
    assert "profile" not in paper.loc[("VGG11", "sgd"), "flags"]
    assert report(["--runs", str(runs), "--out", str(tmp_path / "smoke"), "--what", "tables", "--profile",
                   "smoke"]) == 0
    smoke = pd.read_csv(tmp_path / "smoke" / "table2.csv", keep_default_na=False).set_index(["model", "optimizer"])
    cell = smoke.loc[("VGG11", "sgd")]
    assert (float(cell["mean"]), cell["profile"], float(cell["paper"])) == (10.5, "smoke", 90.11)
    assert "profile smoke: synthetic data and tiny networks, not comparable with the paper's value" in cell["flags"]
    assert "profile smoke" in (tmp_path / "smoke" / "table2.md").read_text()
