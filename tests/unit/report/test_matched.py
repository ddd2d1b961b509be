"""report/matched.py, the compute-matched view: budgets and values worked by hand (a diverged run never sets the
budget; a GAN's FID only at its last epoch), the clean rule's last epoch within the budget, its Markdown; and under
each selection rule (issue 17, path 5), against values computed here from the curves as written: cut each run at its
task's budget, then take the best test value (paper) or the value at the last epoch left, or at the best validation
epoch left where the run logged one (clean).

The curves are made so that within every budget the best epoch and the last one differ, and so do the best test and
the best validation epoch, so each rule gives its own number and a view computed under the wrong rule cannot pass.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest

from adala_bench.report.load import load_runs
from adala_bench.report.matched import compute_matched, render_matched_markdown
from adala_bench.report.select import choose_hparams, run_values
from helpers import write_run


@pytest.fixture
def runs_dir(tmp_path):
    # AdaLA: 200 gradient evaluations per epoch, 1 s; AdaBelief: 100 per epoch, 2 s. Seed s adds s points.
    for seed in range(2):
        write_run(tmp_path, "cifar10_vgg11", "adala", "t", seed, [
            {"epoch": e, "grad_evals": 200 * (e + 1), "wall_s": 1.0 * (e + 1), "test_acc": acc + seed}
            for e, acc in enumerate([50.0, 60.0, 70.0, 80.0])])
        write_run(tmp_path, "cifar10_vgg11", "adabelief", "t", seed, [
            {"epoch": e, "grad_evals": 100 * (e + 1), "wall_s": 2.0 * (e + 1), "test_acc": acc + seed}
            for e, acc in enumerate([55.0, 65.0, 75.0, 78.0])])
    # A diverged run with a smaller budget must not set the budget.
    write_run(tmp_path, "cifar10_vgg11", "sgd", "t", 0, [{"epoch": 0, "grad_evals": 10, "wall_s": 0.1,
                                                          "test_acc": 99.0}], state="diverged")
    # GAN: FID only at the final epoch, so AdaLA has none within the smaller budget.
    for name, per_epoch in (("adala", 200), ("adabelief", 100)):
        write_run(tmp_path, "gan_wgan", name, "t", 0, [
            {"epoch": 0, "grad_evals": per_epoch, "wall_s": 1.0},
            {"epoch": 1, "grad_evals": 2 * per_epoch, "wall_s": 2.0, "fid": 90.0 if name == "adala" else 95.0}])
    return tmp_path


def matched(runs_dir, rule="paper"):
    frame = load_runs(runs_dir)
    return compute_matched(frame, choose_hparams(run_values(frame, rule)), rule).set_index(["task", "optimizer"])


def test_budgets_and_values_equal_hand_computed(runs_dir):
    table = matched(runs_dir)
    adala, adabelief = table.loc[("cifar10_vgg11", "adala")], table.loc[("cifar10_vgg11", "adabelief")]
    # Gradient-evaluation budget = min(800, 400) = 400: AdaLA sees epochs 0-1, AdaBelief all four.
    assert adala["grad_evals_budget"] == adabelief["grad_evals_budget"] == 400
    assert (adala["grad_evals_final"], adabelief["grad_evals_final"]) == (800, 400)
    assert adala["grad_evals_mean"] == 60.5 and adala["grad_evals_n"] == 2
    assert adala["grad_evals_std"] == pytest.approx(statistics.stdev([60.0, 61.0]), abs=1e-12)
    assert adabelief["grad_evals_mean"] == 78.5
    # Wall budget = min(4 s, 8 s) = 4 s: AdaLA all four epochs, AdaBelief epochs 0-1.
    assert adala["wall_s_budget"] == 4.0
    assert (adala["wall_s_mean"], adabelief["wall_s_mean"]) == (80.5, 65.5)
    assert (adala["full_mean"], adabelief["full_mean"], adala["n"]) == (80.5, 78.5, 2)
    assert ("cifar10_vgg11", "sgd") not in table.index

    gan_adala, gan_adabelief = table.loc[("gan_wgan", "adala")], table.loc[("gan_wgan", "adabelief")]
    assert gan_adala["grad_evals_budget"] == 200
    assert math.isnan(gan_adala["grad_evals_mean"]) and gan_adala["grad_evals_n"] == 0
    assert gan_adabelief["grad_evals_mean"] == 95.0
    assert (gan_adala["wall_s_mean"], gan_adabelief["wall_s_mean"]) == (90.0, 95.0)


def test_clean_rule_takes_the_last_epoch_within_the_budget(tmp_path):
    for name, per_epoch in (("adala", 200), ("adabelief", 100)):
        write_run(tmp_path, "ptb_lstm1", name, "t", 0, [
            {"epoch": e + 1, "grad_evals": per_epoch * (e + 1), "wall_s": float(e + 1), "test_ppl": ppl}
            for e, ppl in enumerate([150.0, 120.0, 125.0, 110.0])])
    paper, clean = matched(tmp_path, "paper"), matched(tmp_path, "clean")
    # Budget 400 gradient evaluations: AdaLA's epochs 1-2.
    assert paper.loc[("ptb_lstm1", "adala"), "grad_evals_mean"] == 120.0
    assert clean.loc[("ptb_lstm1", "adala"), "grad_evals_mean"] == 120.0
    assert paper.loc[("ptb_lstm1", "adabelief"), "grad_evals_mean"] == 110.0
    assert clean.loc[("ptb_lstm1", "adabelief"), "full_mean"] == 110.0


def test_markdown_lists_each_task_with_its_budgets(runs_dir):
    table = matched(runs_dir).reset_index()
    md = render_matched_markdown(table, "paper")
    assert "### VGG11 (cifar10_vgg11, test_acc)" in md
    assert "Budgets: 400 gradient evaluations, 4.0 s wall time." in md
    assert "| AdaLA | 80.50 ± 0.71 (n=2) | 800 | 60.50 ± 0.71 (n=2) | 4.0 | 80.50 ± 0.71 (n=2) |" in md
    assert "| AdaLA | 90.00 ± – (n=1) | 400 | – | 2.0 | 90.00 ± – (n=1) |" in md
    assert md.index("### VGG11") < md.index("### WGAN")


# ---- under each rule, against the curves as written --------------------------------------------------------------

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
def curves_dir(tmp_path):
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


def matched_view(curves_dir, rule: str) -> pd.DataFrame:
    frame = load_runs(curves_dir)
    return compute_matched(frame, choose_hparams(run_values(frame, rule)), rule).set_index(["task", "optimizer"])


def column(kind: str | None) -> str:
    return "full_mean" if kind is None else f"{kind}_mean"


@pytest.mark.parametrize("rule", ["clean", "paper"])
def test_compute_matched_equals_the_rule_applied_to_the_cut_curves(curves_dir, rule):
    view = matched_view(curves_dir, rule)
    for task, optimizer, kind in CASES:
        row = view.loc[(task, optimizer)]
        assert row[column(kind)] == pytest.approx(expected(task, optimizer, rule, kind)), (task, optimizer, kind)
        if kind is not None:
            assert row[f"{kind}_budget"] == budget(task, kind) and row[f"{kind}_n"] == len(SEEDS)
