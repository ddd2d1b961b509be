"""report/tuning.py: the expected best of k trials against a brute-force average over every k-subset (and every
k-tuple, for Dodge et al.'s with-replacement curve) and against values worked by hand; the test value of the trial
validation chooses; the worst value of failed trials; and the whole view on run directories written through the
store."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from adala_bench.report.load import load_runs
from adala_bench.report.tuning import (chosen_test, expected_best, subset_weights, tuning_marks, tuning_view,
                                       with_replacement)
from helpers import write_run, write_tuning_run

INF = math.inf


def brute_best(values, k, higher):
    """The mean over every k-subset (by position: equal values stay distinct trials) of its best value."""
    pick = max if higher else min
    subsets = list(itertools.combinations(values, k))
    return sum(pick(s) for s in subsets) / len(subsets)


def brute_chosen(val, test, k, higher):
    """The mean over every k-subset of the test value of its best-validation trial (ties: the earlier trial)."""
    def key(i):
        return (val[i] if higher else -val[i], -i)
    subsets = list(itertools.combinations(range(len(val)), k))
    return sum(test[max(s, key=key)] for s in subsets) / len(subsets)


FIXTURES = [
    ([3.0, 1.0, 2.0], True),
    ([3.0, 1.0, 2.0], False),
    ([10.0, 40.0, 40.0, 20.0, 30.0, 5.0, 35.0], True),  # ties
    ([120.5, 98.25, 250.0, 101.0, 98.25, 140.0], False),
    ([0.0, 71.5, 0.0, 64.25, 80.0], True),  # two failed trials at accuracy's worst value
]


@pytest.mark.parametrize("values, higher", FIXTURES)
def test_the_expected_best_is_the_mean_over_every_k_subset_of_its_best(values, higher):
    got = expected_best(values, higher)
    assert len(got) == len(values)
    for k in range(1, len(values) + 1):
        assert got[k - 1] == pytest.approx(brute_best(values, k, higher), rel=1e-12)
    assert got[0] == pytest.approx(np.mean(values)) and got[-1] == (max(values) if higher else min(values))


def test_the_expected_best_worked_by_hand():
    # Of 3, 1, 2 (higher is better): the pairs {3,1}, {3,2}, {1,2} have bests 3, 3, 2.
    assert list(expected_best([3, 1, 2], True)) == pytest.approx([2.0, 8 / 3, 3.0])
    # Lower is better: bests 1, 2, 1.
    assert list(expected_best([3, 1, 2], False)) == pytest.approx([2.0, 4 / 3, 1.0])
    # The weights of K = 4, k = 2: C(i−1, 1) / C(4, 2) = 0, 1/6, 2/6, 3/6 for the 1st..4th worst.
    assert list(subset_weights(4)[1]) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])


def test_with_replacement_is_the_mean_over_every_k_tuple_of_its_best():
    values = [10.0, 40.0, 20.0, 30.0]
    got = with_replacement(values, True)
    for k in range(1, 5):
        tuples = list(itertools.product(values, repeat=k))
        assert got[k - 1] == pytest.approx(sum(map(max, tuples)) / len(tuples), rel=1e-12)
    # By hand, k = 2 of {10, 20}: (10 + 20 + 20 + 20) / 4.
    assert with_replacement([10.0, 20.0], True)[1] == pytest.approx(17.5)


@pytest.mark.parametrize("higher", [True, False])
def test_the_chosen_trials_test_value_is_the_mean_over_every_k_subset(higher):
    val = [10.0, 40.0, 40.0, 20.0, 30.0, 5.0]  # trials 1 and 2 tie: the earlier one, 1, is chosen
    test = [11.0, 39.0, 45.0, 18.0, 33.0, 2.0]
    got = chosen_test(val, test, higher)
    for k in range(1, len(val) + 1):
        assert got[k - 1] == pytest.approx(brute_chosen(val, test, k, higher), rel=1e-12)
    assert got[-1] == (39.0 if higher else 2.0)
    assert got[0] == pytest.approx(np.mean(test))


def test_an_infinite_worst_value_makes_the_budgets_that_may_pick_it_infinite():
    """Perplexity: one trial of three diverged (+inf). A single trial may be it (k = 1: inf); any two trials hold a
    finite one."""
    values = [120.0, INF, 100.0]
    got = expected_best(values, False)
    assert got[0] == INF
    assert got[1] == pytest.approx((120 + 100 + 100) / 3) == brute_best(values, 2, False)
    assert got[2] == 100.0
    assert with_replacement(values, False)[2] == INF  # three draws with replacement may all be the diverged one
    assert list(chosen_test(values, [130.0, INF, 105.0], False)[1:]) == pytest.approx([(130 + 105 + 105) / 3, 105])
    assert not np.isnan(expected_best([INF, INF, 3.0], False)).any()


# --- the view on run directories -------------------------------------------------------------------------------

VGG = "cifar10_vgg11"


def write_trial(root, optimizer, tag, seed, rows, track="tuned", trial=None, state="completed", lr=1e-3):
    return write_tuning_run(root, VGG, optimizer, tag, seed, rows, trial=trial if track == "tuned" else None,
                            state=state, hparam_values={"lr": lr, "eps": 1e-8})


def rows(*pairs):
    """metrics rows from (val_acc, test_acc) per epoch."""
    return [{"epoch": e, "grad_evals": e + 1, "wall_s": 1.0 + e, "lr": 0.1, "val_acc": v, "test_acc": t}
            for e, (v, t) in enumerate(pairs)]


@pytest.fixture
def store(tmp_path):
    """AdaLA and AdaBelief, 3 trials × 2 seeds each, a defaults run each per seed, a diverged AdaLA trial, an
    unfinished AdaBelief trial, and an ordinary (untuned) run that is not part of the view."""
    root = tmp_path / "runs"
    # (val per epoch, test per epoch) per (optimizer, trial, seed); the best val epoch picks the test value.
    plan = {
        ("adala", 0): [rows((50, 48), (60, 57)), rows((55, 54), (58, 59))],  # val 60, 58: mean 59, test (57+59)/2
        ("adala", 1): [rows((70, 66), (65, 64)), rows((68, 67), (72, 69))],  # val 70, 72: mean 71, test 67.5
        ("adabelief", 0): [rows((62, 61), (64, 63)), rows((63, 60), (61, 62))],  # val 64, 63 -> 63.5, test 61.5
        ("adabelief", 1): [rows((66, 65), (66, 64)), rows((69, 70), (67, 66))],  # val 66 (first), 69 -> 67.5, test 67.5
        ("adabelief", 2): [rows((40, 41), (45, 44)), rows((42, 40), (44, 43))],  # val 45, 44 -> 44.5, test 43.5
    }
    for (optimizer, trial), seeds in plan.items():
        for seed, metrics in enumerate(seeds):
            write_trial(root, optimizer, f"lr{trial}-x", seed, metrics, trial=trial, lr=10.0 ** -(trial + 2))
    for seed in (0, 1):  # AdaLA trial 2 diverged on seed 1: counted at accuracy's worst value, 0
        write_trial(root, "adala", "lr2-x", seed, rows((30, 31)), trial=2, lr=1e-4,
                         state="diverged" if seed else "completed")
        write_trial(root, "adala", "defaults-x", seed, rows((52, 50 + seed)), track="defaults")
        write_trial(root, "adabelief", "defaults-x", seed, rows((54, 53 - seed)), track="defaults")
    write_trial(root, "adabelief", "lr3-x", 0, rows((90, 90)), trial=3, state="running")  # not done: left out
    write_run(root, VGG, "adam", "plain", 0, rows((1, 1)), profile="smoke")  # no tuning block
    return root


def test_the_view_of_a_tuning_store(store):
    frame = load_runs(store)
    marks = tuning_marks(frame)
    assert len(marks) == 2 * 3 * 2 + 4 + 1 and set(marks["track"]) == {"tuned", "defaults"}
    view = tuning_view(frame, marks)
    trials = view.trials.set_index(["optimizer", "trial", "track"])
    # The diverged run counts at 0: trial 2's mean is (30 + 0) / 2; it is shown with its failure, never dropped.
    failed = trials.loc[("adala", 2, "tuned")]
    assert (failed["val"], failed["test"], failed["diverged"], failed["used"]) == (15.0, 15.5, 1, True)
    assert not trials.loc[("adabelief", 3, "tuned")]["used"]
    assert trials.loc[("adabelief", 3, "tuned")]["unfinished"] == 1

    curves = view.curves.set_index(["optimizer", "k"])
    adala_val, adala_test = [59.0, 71.0, 15.0], [58.0, 67.5, 15.5]
    belief_val, belief_test = [63.5, 67.5, 44.5], [61.5, 67.5, 43.5]
    for optimizer, val, test in (("adala", adala_val, adala_test), ("adabelief", belief_val, belief_test)):
        for k in (1, 2, 3):
            row = curves.loc[(optimizer, k)]
            assert row["expected_best_val"] == pytest.approx(brute_best(val, k, True))
            assert row["chosen_test"] == pytest.approx(brute_chosen(val, test, k, True))
            assert (row["trials"], row["seeds"]) == (3, 2)
            assert row["band_low"] <= row["band_high"]
    assert curves.loc[("adala", 1)]["defaults_val"] == 52.0 and curves.loc[("adala", 1)]["defaults_test"] == 50.5
    assert curves.loc[("adabelief", 3)]["defaults_test"] == 52.5
    assert "1 of 4 trials not done on every seed, left out: 3" in view.flags[(VGG, "adabelief")]

    comparison = view.comparison.set_index("budget")
    assert comparison.loc[3, "diff"] == pytest.approx(67.5 - 67.5)
    assert comparison.loc[1, "diff"] == pytest.approx(np.mean(adala_test) - np.mean(belief_test))
    assert comparison.loc["defaults", "diff"] == pytest.approx(50.5 - 52.5)
    assert set(comparison["verdict"]) <= {"better", "worse", "inside the noise"}
    assert len(view.trials) == 4 + 5  # every trial and defaults setting of the two optimizers, the plain run not


def test_the_band_is_the_curve_where_every_seed_gives_the_same_values_and_absent_with_one_seed(tmp_path):
    root = tmp_path / "runs"
    for trial, (val, test) in enumerate([(50, 49), (70, 71), (60, 58)]):
        for seed in (0, 1):
            write_trial(root, "sgd", f"t{trial}", seed, rows((val, test)), trial=trial)
        write_trial(root, "adam", f"t{trial}", 0, rows((val, test)), trial=trial)
    curves = tuning_view(load_runs(root)).curves.set_index(["optimizer", "k"])
    sgd = curves.loc["sgd"]
    assert list(sgd["band_low"]) == list(sgd["expected_best_val"]) == list(sgd["band_high"])
    assert list(sgd["chosen_test_low"]) == list(sgd["chosen_test"])
    assert curves.loc["adam"][["band_low", "band_high", "chosen_test_low"]].isna().all().all()


def test_cifar10_trials_without_validation_values_get_no_curve_and_say_so(tmp_path):
    root = tmp_path / "runs"
    for trial in (0, 1):
        write_trial(root, "sgd", f"t{trial}", 0, [{"epoch": 0, "grad_evals": 1, "wall_s": 1.0, "lr": 0.1,
                                                       "test_acc": 50.0 + trial}], trial=trial)
    view = tuning_view(load_runs(root))
    assert view.curves.empty
    assert view.flags[(VGG, "sgd")] == ["no val_acc logged, no choice on validation (train with data.val_size=5000)"]
    assert view.trials["diverged"].sum() == 0  # not a failure: there is nothing to choose on


def test_no_tuning_runs_no_view(tmp_path):
    write_run(tmp_path / "runs", VGG, "sgd", "plain", 0, rows((1, 1)))
    frame = load_runs(tmp_path / "runs")
    assert tuning_marks(frame).empty and tuning_view(frame) is None


def test_with_one_seed_a_side_the_comparison_is_not_testable(tmp_path):
    root = tmp_path / "runs"
    for trial, (val, test) in enumerate([(50, 49), (70, 71)]):
        write_trial(root, "adala", f"t{trial}", 0, rows((val, test)), trial=trial)
        write_trial(root, "adabelief", f"t{trial}", 0, rows((val - 5, test - 5)), trial=trial)
    comparison = tuning_view(load_runs(root)).comparison
    assert list(comparison["budget"]) == [1, 2] and list(comparison["diff"]) == [5.0, 5.0]
    assert set(comparison["verdict"]) == {"not testable"} and comparison["ci_low"].isna().all()
