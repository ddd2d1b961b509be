"""A smoke tuning sweep end to end, as a user runs it: `adala-plan` prints its runs and GPU-hours before it starts,
`adala-train --multirun +experiment=tune_cifar10 trials=4` (Hydra's own basic sweeper resolving range(0,${trials}))
trains K = 4 trials of AdaLA and AdaBelief on two seeds. The defaults track, a custom optimizer with its own space and
the sweep's second start (which trains nothing) go through the same jobs (sweep_jobs, each composed and handed to the
runner's train_one in this process, to spare interpreter starts: Hydra's own sweeper has named the same runs once).
`adala-report --tuning` holds the numbers that the runs' metrics.jsonl give, computed here independently (a
brute-force average over every k-subset)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from adala_bench import search_space
from adala_bench.plan import main as plan
from adala_bench.overrides import sweep_jobs
from adala_bench.report.cli import main as report
from adala_bench.runner import train_one
from adala_bench.sweep_runs import sweep_paths
from helpers import BIN, REPO, compose

K = 4
SIDES = ("adala", "adabelief")
ADAMAX_SPACE = "lr: {low: 0.1, high: 10, scale: log, relative: true}\nweight_decay: {low: 0.0, high: 1.0e-3}\n"


def train(*args: str, cwd) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(BIN / "adala-train"), "--multirun", *args], capture_output=True, text=True, cwd=cwd,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def train_here(*args: str) -> str:
    """Each job of `adala-train --multirun ARGS`, composed and trained in this process; what the runner printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for job in sweep_jobs(list(args)):
            assert train_one(compose(*job)) == "completed"
    return printed.getvalue()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, data_root):
    tmp = tmp_path_factory.mktemp("tuning")
    runs, out = tmp / "runs", tmp / "report"
    common = ["profile=smoke", "epochs=1", "task=cifar10_vgg11", "data.val_size=64", f"results.root={runs}",
              f"data.root={data_root}"]
    tune = ["+experiment=tune_cifar10", f"trials={K}", "optimizer=adala,adabelief", "seed=0,1", *common]
    planned = io.StringIO()
    with contextlib.redirect_stdout(planned):
        assert plan([*tune, "--summary"]) == 0
    names = sweep_paths(tune)
    first = train(*tune, cwd=tmp)
    train_here("+experiment=defaults_cifar10", "optimizer=adala,adabelief", "seed=0,1", *common)
    (tmp / "adamax.yaml").write_text(ADAMAX_SPACE)
    custom = ["+experiment=tune_cifar10", "trials=2", "optimizer=custom", "optimizer._target_=torch.optim.Adamax",
              "optimizer.lr=2e-3", "+optimizer.weight_decay=0.0", f"space={tmp / 'adamax.yaml'}", "seed=0", *common]
    train_here(*custom)
    stamps = {path: (path / "metrics.jsonl").stat().st_mtime_ns for path in names}
    second = train_here(*tune)
    assert report(["--runs", str(runs), "--out", str(out), "--tuning", "--profile", "smoke"]) == 0
    return {"runs": runs, "out": out, "plan": planned.getvalue(), "names": names, "first": first, "second": second,
            "stamps": stamps, "custom": sweep_paths(custom)}


def test_the_plan_lists_every_trial_and_its_gpu_hours_before_the_sweep_starts(sweep):
    assert f"{2 * K * 2} runs: 0 done, {2 * K * 2} left" in sweep["plan"]
    assert "est. GPU-hours left: " in sweep["plan"]
    assert all(f"trial={i}" in sweep["plan"] for i in range(K))


def test_the_trials_are_distinct_complete_runs_named_by_their_values(sweep):
    names = sweep["names"]
    assert len(names) == len(set(names)) == 2 * K * 2
    assert sorted(p for p in sweep["runs"].glob("cifar10_vgg11/ada*/*/seed=*") if "weight_decay0-" not in str(p)) \
        == sorted(names)  # what the plan named is what Hydra's sweeper trained (the defaults runs aside)
    for path in names:
        assert json.loads((path / "status.json").read_text())["state"] == "completed"
        config = _config(path)
        trial = config["tuning"]["trial"]
        u = search_space.sobol_point(trial)
        assert config["optimizer"]["lr"] == pytest.approx(1e-3 * 0.1 * 100 ** u[0])  # the as-run lr is 1e-3
        assert config["optimizer"]["eps"] == pytest.approx(1e-16 * 1e10 ** u[1])
        assert f"lr{config['optimizer']['lr']:g}-" in path.parent.name
    assert len({p.parent for p in names}) == 2 * K  # one tag per (optimizer, trial), both seeds in it


def test_a_second_start_trains_nothing(sweep):
    assert sweep["first"].count(" completed: ") == 2 * K * 2
    assert "starting" not in sweep["second"] and sweep["second"].count("is already completed") == 2 * K * 2
    assert all((path / "metrics.jsonl").stat().st_mtime_ns == stamp for path, stamp in sweep["stamps"].items())


def test_the_tuning_view_holds_the_numbers_the_runs_give(sweep):
    """Every k of tuning.csv against an independent computation from the metrics.jsonl files: each run's best
    val_acc and the test_acc of its first best epoch, each trial's mean over the seeds, and the average over every
    k-subset of the trials."""
    curves = pd.read_csv(sweep["out"] / "tuning.csv").set_index(["optimizer", "k"])
    comparison = pd.read_csv(sweep["out"] / "tuning_adala_vs_adabelief.csv").set_index("budget")
    chosen = {}
    for optimizer in SIDES:
        val, test = _trials(sweep["runs"], optimizer)
        assert len(val) == K
        for k in range(1, K + 1):
            subsets = list(itertools.combinations(range(K), k))
            best = np.mean([max(val[i] for i in s) for s in subsets])
            picked = np.mean([test[max(s, key=lambda i: (val[i], -i))] for s in subsets])
            row = curves.loc[(optimizer, k)]
            assert row["expected_best_val"] == pytest.approx(best, rel=1e-12)
            assert row["chosen_test"] == pytest.approx(picked, rel=1e-12)
            assert (row["trials"], row["seeds"]) == (K, 2)
            chosen[(optimizer, k)] = picked
        defaults = _defaults(sweep["runs"], optimizer)
        assert curves.loc[(optimizer, 1), "defaults_val"] == pytest.approx(np.mean([v for v, _ in defaults]))
        assert curves.loc[(optimizer, 1), "defaults_test"] == pytest.approx(np.mean([t for _, t in defaults]))
    for k in (1, K):
        assert float(comparison.loc[str(k), "diff"]) == pytest.approx(chosen[("adala", k)] - chosen[("adabelief", k)])
    page = (sweep["out"] / "tuning.md").read_text()
    assert "## AdaLA against AdaBelief at equal budgets" in page and "| AdaLA | 4 (2) |" in page
    assert (sweep["out"] / "tuning_expected_best_vgg11.png").is_file()
    assert (sweep["out"] / "tuning_lr_vgg11.png").is_file()


def test_a_custom_optimizer_with_its_own_space_goes_the_same_way(sweep):
    for path in sweep["custom"]:
        config = _config(path)
        u = search_space.sobol_point(config["tuning"]["trial"])
        assert config["optimizer"]["name"] == "torch.optim.Adamax"
        assert config["optimizer"]["lr"] == pytest.approx(2e-3 * 0.1 * 100 ** u[0])
        assert config["optimizer"]["weight_decay"] == pytest.approx(1e-3 * u[1])
        assert json.loads((path / "status.json").read_text())["state"] == "completed"
    trials = pd.read_csv(sweep["out"] / "tuning_trials.csv")
    assert sorted(trials.loc[trials["optimizer"] == "torch.optim.Adamax", "trial"]) == [0, 1]
    assert (pd.read_csv(sweep["out"] / "tuning.csv")["optimizer"] == "torch.optim.Adamax").sum() == 2


def _config(path):
    import yaml

    return yaml.safe_load((path / "config.yaml").read_text())


def _values(path) -> tuple[float, float]:
    """One run's best val_acc and the test_acc of the first epoch that reaches it, from its metrics.jsonl."""
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    best = max(row["val_acc"] for row in rows)
    return best, next(row["test_acc"] for row in rows if row["val_acc"] == best)


def _trials(runs, optimizer) -> tuple[list[float], list[float]]:
    """Per trial (in trial order) the mean over its seeds of the runs' values."""
    by_trial = {}
    for path in runs.glob(f"cifar10_vgg11/{optimizer}/*/seed=*"):
        tuning = _config(path).get("tuning", {})
        if tuning.get("track") == "tuned":
            by_trial.setdefault(tuning["trial"], []).append(_values(path))
    return ([float(np.mean([v for v, _ in by_trial[t]])) for t in sorted(by_trial)],
            [float(np.mean([t for _, t in by_trial[t]])) for t in sorted(by_trial)])


def _defaults(runs, optimizer) -> list[tuple[float, float]]:
    return [_values(path) for path in runs.glob(f"cifar10_vgg11/{optimizer}/*/seed=*")
            if _config(path).get("tuning", {}).get("track") == "defaults"]


def test_a_full_report_of_tuning_runs_shows_them_in_its_page_and_never_in_tables_2_to_4(sweep, tmp_path):
    out = tmp_path / "full"
    assert report(["--runs", str(sweep["runs"]), "--out", str(out), "--profile", "smoke", "--what", "tables"]) == 0
    page = (out / "index.md").read_text()
    assert "## Tuning at an equal budget" in page and "### VGG11 (cifar10_vgg11)" in page
    assert f"The {2 * K * 2 + 4 + 2} runs of tuning sweeps and the defaults track are in the tuning view below" in page
    assert pd.read_csv(out / "table2.csv")["n"].sum() == 0  # the trials are not the paper's as-run protocol
    assert pd.read_csv(out / "tuning.csv").equals(pd.read_csv(sweep["out"] / "tuning.csv"))
