"""The compute-matched view under each selection rule (issue 17, path 5), against values computed here from the
curves as written: cut each run at its task's budget, then take the best test value (paper) or the value at the last
epoch left, or at the best validation epoch left where the run logged one (clean).

The curves are made so that within every budget the best epoch and the last one differ, and so do the best test and
the best validation epoch, so each rule gives its own number and a view computed under the wrong rule cannot pass.
"""

from __future__ import annotations

import statistics

import pandas as pd
import pytest

from adala_bench.report.cli import main as report
from adala_bench.report.load import load_runs
from adala_bench.report.matched import compute_matched
from adala_bench.report.select import choose_hparams, run_values

from helpers import write_run

# (grad evals per epoch, wall seconds per epoch) per optimizer: AdaLA pays two gradient evaluations per step.
COST = {"adala": (200, 1.0), "adabelief": (100, 2.0)}
SEEDS = (0, 1)  # seed s adds s to every CIFAR-10 value and subtracts it from every PTB one
# CIFAR-10 (higher is better), test_acc per epoch.
CIFAR = {"adala": [70.0, 60.0, 85.0, 80.0], "adabelief": [75.0, 55.0, 65.0, 62.0]}
# PTB (lower is better), (val_ppl, test_ppl) per epoch.
PTB = {"adala": [(110.0, 140.0), (130.0, 125.0), (120.0, 105.0), (100.0, 115.0)],
       "adabelief": [(120.0, 130.0), (115.0, 128.0), (118.0, 122.0), (119.0, 126.0)]}


def cost(optimizer: str, epoch: int) -> dict[str, float]:
    grad_evals, wall_s = COST[optimizer]
    return {"grad_evals": grad_evals * (epoch + 1), "wall_s": wall_s * (epoch + 1)}


@pytest.fixture
def runs_dir(tmp_path):
    for optimizer in COST:
        for seed in SEEDS:
            write_run(tmp_path, "cifar10_vgg11", optimizer, "t", seed, [
                {"epoch": e, **cost(optimizer, e), "test_acc": acc + seed} for e, acc in enumerate(CIFAR[optimizer])])
            write_run(tmp_path, "ptb_lstm1", optimizer, "t", seed, [
                {"epoch": e, **cost(optimizer, e), "val_ppl": val - seed, "test_ppl": test - seed}
                for e, (val, test) in enumerate(PTB[optimizer])])
    return tmp_path


# ---- the expected values, computed from the curves above ---------------------------------------------------------

def curve(task: str, optimizer: str, seed: int) -> list[dict]:
    """Per epoch: cost, test value and validation value (None where not logged)."""
    if task == "cifar10_vgg11":
        return [{**cost(optimizer, e), "test": acc + seed, "val": None} for e, acc in enumerate(CIFAR[optimizer])]
    return [{**cost(optimizer, e), "test": test - seed, "val": val - seed}
            for e, (val, test) in enumerate(PTB[optimizer])]


def pick(epochs: list[dict], rule: str, higher_is_better: bool) -> float:
    better = max if higher_is_better else min
    if rule == "paper":
        return better(e["test"] for e in epochs)
    with_val = [e for e in epochs if e["val"] is not None]
    if with_val:
        best = better(e["val"] for e in with_val)
        return next(e["test"] for e in with_val if e["val"] == best)  # the first epoch with the best val
    return epochs[-1]["test"]


def budget(task: str, kind: str) -> float:
    """The smallest final cost among the optimizers (each one's final cost being the least over its runs)."""
    return min(min(curve(task, o, s)[-1][kind] for s in SEEDS) for o in COST)


def expected(task: str, optimizer: str, rule: str, kind: str | None) -> float:
    """Mean over the seeds of the value the rule picks from the run cut at the budget (`kind` None: the full run)."""
    higher = task == "cifar10_vgg11"
    values = []
    for seed in SEEDS:
        epochs = curve(task, optimizer, seed)
        if kind is not None:
            epochs = [e for e in epochs if e[kind] <= budget(task, kind)]
        values.append(pick(epochs, rule, higher))
    return statistics.mean(values)


CASES = [(task, optimizer, kind) for task in ("cifar10_vgg11", "ptb_lstm1") for optimizer in COST
         for kind in (None, "grad_evals", "wall_s")]


def test_the_fixture_separates_the_rules():
    """Within every budget (and over the full run) the two rules disagree somewhere, in both tasks."""
    assert (budget("cifar10_vgg11", "grad_evals"), budget("cifar10_vgg11", "wall_s")) == (400, 4.0)
    for task in ("cifar10_vgg11", "ptb_lstm1"):
        for kind in (None, "grad_evals", "wall_s"):
            assert any(expected(task, o, "paper", kind) != expected(task, o, "clean", kind) for o in COST), (task, kind)


# ---- the tests -----------------------------------------------------------------------------------------------------

def matched_view(runs_dir, rule: str) -> pd.DataFrame:
    frame = load_runs(runs_dir)
    return compute_matched(frame, choose_hparams(run_values(frame, rule)), rule).set_index(["task", "optimizer"])


def column(kind: str | None) -> str:
    return "full_mean" if kind is None else f"{kind}_mean"


@pytest.mark.parametrize("rule", ["clean", "paper"])
def test_compute_matched_equals_the_rule_applied_to_the_cut_curves(runs_dir, rule):
    view = matched_view(runs_dir, rule)
    for task, optimizer, kind in CASES:
        row = view.loc[(task, optimizer)]
        assert row[column(kind)] == pytest.approx(expected(task, optimizer, rule, kind)), (task, optimizer, kind)
        if kind is not None:
            assert row[f"{kind}_budget"] == budget(task, kind) and row[f"{kind}_n"] == len(SEEDS)


def test_adala_report_rule_clean_writes_the_clean_compute_matched_view(runs_dir, tmp_path):
    """The same through `adala-report --rule clean` and `--rule paper`: compute_matched.csv of each."""
    written = {}
    for rule in ("clean", "paper"):
        out = tmp_path / f"report-{rule}"
        assert report(["--runs", str(runs_dir), "--out", str(out), "--what", "tables", "--rule", rule]) == 0
        written[rule] = pd.read_csv(out / "compute_matched.csv").set_index(["task", "optimizer"])
    for rule, view in written.items():
        for task, optimizer, kind in CASES:
            assert view.loc[(task, optimizer), column(kind)] == pytest.approx(
                expected(task, optimizer, rule, kind)), (rule, task, optimizer, kind)
    assert not written["clean"]["grad_evals_mean"].equals(written["paper"]["grad_evals_mean"])
