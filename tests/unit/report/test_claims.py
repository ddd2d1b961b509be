"""The claims view (report/claims.py) on fixture run stores written through the store (helpers.write_run): each
statistic against values worked by hand (the oscillation, runs shorter than four epochs included; the probability of
improvement with ties; the time-to-target ratio with seeds that never reach the target; the seeds needed and their
GPU-hours), the stratified bootstrap against the exact bootstrap distribution and scipy.stats.bootstrap, the fix's
runs kept out of the tables, and partial sweeps (no AdaLA runs, one seed, no GANs)."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from adala_bench.report.claims import (RESAMPLES, Curves, claims_blocks, expected_time, improvement, oscillations,
                                       seeds_needed, stratified_bootstrap)
from adala_bench.report.figures import write_claims_figures
from adala_bench.report.index import page_blocks
from adala_bench.report.load import load_runs
from adala_bench.report.page import to_markdown
from adala_bench.report.reference import paper_values
from adala_bench.report.results import compute
from helpers import REPO, write_run

PAPER = paper_values(REPO / "results" / "reference")
MIX_TAG = "lr0.001-residuallookahead-lookahead_weight{w}-lookahead_batchnext-0a1b2c3d"


def report(root: Path):
    frame = load_runs(root)
    return compute(frame, PAPER, "paper", "paper", root)


def curve(metric: str, values, evals_per_epoch: int = 100, first_epoch: int = 0, seconds_per_eval: float = 0.01):
    """metrics.jsonl records: `metric` per epoch, gradient evaluations and wall seconds growing with the epochs."""
    return [{"epoch": first_epoch + e, "grad_evals": evals_per_epoch * (e + 1),
             "wall_s": seconds_per_eval * evals_per_epoch * (e + 1), metric: v} for e, v in enumerate(values)]


def rows_by_claim(claims) -> pd.DataFrame:
    return claims.rows.set_index("claim")


# --- the oscillation -------------------------------------------------------------------------------------------

def test_the_oscillation_by_hand_including_runs_shorter_than_four_epochs(tmp_path):
    # E measurements -> the last ⌈E/4⌉ + 1 of them -> the mean absolute change between neighbours:
    cases = {
        8: ([10, 20, 30, 40, 50, 52, 49, 53], 3.5),  # last 3: 52, 49, 53 -> |−3|, |4| -> 3.5
        5: ([1, 2, 3, 5, 4], 1.5),  # last 3: 3, 5, 4 -> 2, 1
        4: ([1, 5, 2, 6], 4.0),  # last 2: 2, 6 -> 4
        3: ([1, 4, 2], 2.0),  # last 2: 4, 2
        2: ([3, 7], 4.0),  # both: 4
        1: ([5], math.nan),  # no change to take
    }
    for seed, (values, _) in cases.items():
        write_run(tmp_path, "cifar10_vgg11", "adala", "t", seed, curve("test_acc", values))
    # PTB counts its epochs from 1; an epoch without a test value (the third) is no measurement: perplexities 100,
    # 90, 85, 88, 70 -> last 3: 85, 88, 70 -> 3, 18 -> 10.5.
    ptb = curve("test_ppl", [100, 90, 95, 85, 88, 70], first_epoch=1)
    del ptb[2]["test_ppl"]
    write_run(tmp_path, "ptb_lstm1", "adabelief", "t", 0, ptb)
    # A GAN: fid_curve 30, 20, 26 then the final fid (10, from more samples: not part of it): last 2 of 3 -> 6;
    # with fid_curve measured twice, none (a GAN needs three measurements).
    gan = [{"epoch": e, "grad_evals": 10 * (e + 1), "wall_s": 1.0 * (e + 1), "fid_curve": v}
           for e, v in enumerate([30, 20, 26])] + [{"epoch": 3, "grad_evals": 40, "wall_s": 4.0, "fid": 10.0}]
    write_run(tmp_path, "gan_wgan", "adabelief", "t", 0, gan)
    write_run(tmp_path, "gan_wgan", "adabelief", "t", 1, gan[1:])
    instability = report(tmp_path).claims.instability.set_index(["task", "seed"])
    for seed, (_, expected) in cases.items():
        got = instability.loc[("cifar10_vgg11", seed), "oscillation"]
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12), seed
        assert instability.loc[("cifar10_vgg11", seed), "measurements"] == seed
    ptb_row = instability.loc[("ptb_lstm1", 0)]
    assert ptb_row["measurements"] == 5 and ptb_row["oscillation"] == pytest.approx((3 + 18) / 2)
    assert instability.loc[("gan_wgan", 0), ["metric", "measurements", "oscillation"]].tolist() == [
        "fid_curve", 3, 6.0]
    assert instability.loc[("gan_wgan", 1), "measurements"] == 2
    assert math.isnan(instability.loc[("gan_wgan", 1), "oscillation"])
    assert list(instability.reset_index().columns) == ["task", "seed", "run_dir", "model", "optimizer",
                                                       "lookahead_weight", "metric", "measurements", "oscillation"]


# --- the probability of improvement ----------------------------------------------------------------------------

def direct_improvement(a, b) -> float:
    """P(X > Y) + ½ P(X = Y) over every pair, counted one by one."""
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b) / (len(a) * len(b))


def test_the_probability_of_improvement_counts_ties_half():
    # 2 vs 1 win, 2 vs 2 tie, 2 vs 3 loss, 4 beats all three: (4 + ½) / 6
    assert improvement(np.array([[2.0, 4.0]]), np.array([[1.0, 2.0, 3.0]]))[0] == 0.75
    assert improvement(np.array([[2.0, 2.0]]), np.array([[2.0, 2.0, 2.0]]))[0] == 0.5  # all ties
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, size=(50, 5)).astype(float), rng.integers(0, 4, size=(50, 3)).astype(float)
    assert improvement(a, b) == pytest.approx([direct_improvement(x, y) for x, y in zip(a, b)], abs=1e-12)


def test_better_across_tasks_averages_the_tasks_in_each_ones_better_direction(tmp_path):
    # VGG11 (higher is better): AdaLA's best accuracies 2, 4 against AdaBelief's 1, 2, 3: 0.75. LSTM-1layer (lower is
    # better): AdaLA 100, 100 against AdaBelief 100, 110: two ties and two wins of four pairs, 0.75. Mean 0.75;
    # P(AdaLA better) − P(AdaBelief better) = 0.5.
    for seed, value in enumerate([2.0, 4.0]):
        write_run(tmp_path, "cifar10_vgg11", "adala", "t", seed, curve("test_acc", [value - 1, value]))
    for seed, value in enumerate([1.0, 2.0, 3.0]):
        write_run(tmp_path, "cifar10_vgg11", "adabelief", "t", seed, curve("test_acc", [value - 1, value]))
    for seed, (ours, theirs) in enumerate([(100.0, 100.0), (100.0, 110.0)]):
        write_run(tmp_path, "ptb_lstm1", "adala", "t", seed, curve("test_ppl", [ours + 5, ours], first_epoch=1))
        write_run(tmp_path, "ptb_lstm1", "adabelief", "t", seed, curve("test_ppl", [theirs + 5, theirs],
                                                                        first_epoch=1))
    row = rows_by_claim(report(tmp_path).claims).loc["Better across tasks"]
    assert (row["value_a"], row["value_b"], row["effect"]) == (0.75, 0.25, 0.5)
    assert row["tasks"] == 2 and row["seeds_per_side"] == pytest.approx(4 / (1 / 2 + 1 / 3 + 1 / 2 + 1 / 2))
    assert row["ci_low"] <= 0.5 <= row["ci_high"] and row["verdict"] in ("supported", "not settled")


# --- the bootstrap ---------------------------------------------------------------------------------------------

SAMPLES = [np.array([0.0, 1.0, 3.0]), np.array([1.0, 2.0]), np.array([5.0, 6.0]), np.array([4.0, 7.0])]


def mean_improvement(drawn):
    return np.mean([improvement(drawn[i], drawn[i + 1]) for i in (0, 2)], axis=0)


def exact_bootstrap() -> np.ndarray:
    """The statistic on every one of the 3³·2²·2²·2² equally likely resamples of SAMPLES, each drawn on its own."""
    draws = [itertools.product(range(len(x)), repeat=len(x)) for x in SAMPLES]
    return np.array([mean_improvement([x[list(i)][None, :] for x, i in zip(SAMPLES, pick)])[0]
                     for pick in itertools.product(*map(list, draws))])


def test_the_stratified_bootstrap_is_the_exact_bootstrap_distribution_and_scipys():
    exact = exact_bootstrap()
    assert len(exact) == 27 * 4 * 4 * 4
    observed, low, high = stratified_bootstrap(SAMPLES, mean_improvement, resamples=100_000)
    assert observed == pytest.approx((direct_improvement(*SAMPLES[:2]) + direct_improvement(*SAMPLES[2:])) / 2)
    # the interval: the exact 2.5th and 97.5th percentiles, up to one step of the statistic's support (1/24), which
    # a percentile that sits on a jump of the distribution may take; scipy's own bootstrap, given the four
    # samples to resample each on its own, lands there too
    step = 1 / 24
    exact_low, exact_high = np.quantile(exact, [0.025, 0.975], method="inverted_cdf")
    assert abs(low - exact_low) <= step + 1e-12 and abs(high - exact_high) <= step + 1e-12
    scipy = stats.bootstrap(tuple(SAMPLES), lambda *d, axis=-1: mean_improvement(list(d)), vectorized=True,
                            method="percentile", n_resamples=100_000, rng=np.random.default_rng(1))
    interval = scipy.confidence_interval
    assert abs(interval.low - exact_low) <= step + 1e-12 and abs(interval.high - exact_high) <= step + 1e-12


def test_the_bootstrap_is_reproducible_and_a_point_without_spread():
    assert stratified_bootstrap(SAMPLES, mean_improvement) == stratified_bootstrap(SAMPLES, mean_improvement)
    same = [np.array([3.0, 3.0]), np.array([1.0, 1.0, 1.0])]
    assert stratified_bootstrap(same, lambda d: improvement(d[0], d[1])) == (1.0, 1.0, 1.0)
    assert RESAMPLES == 2000


# --- time to target --------------------------------------------------------------------------------------------

def write_time_fixture(root: Path) -> None:
    """VGG11: AdaBelief ends at 90 and 92 (target 91); LSTM-1layer: at 100 and 104 perplexity (target 102).
    Gradient evaluations 100 per epoch for AdaBelief, 200 for AdaLA; wall seconds a hundredth of them."""
    for seed, values in enumerate([[80, 90], [80, 92]]):
        write_run(root, "cifar10_vgg11", "adabelief", "t", seed, curve("test_acc", values))
    for seed, values in enumerate([[91, 85], [70, 80]]):
        write_run(root, "cifar10_vgg11", "adala", "t", seed, curve("test_acc", values, 200))
    for seed, values in enumerate([[120, 100], [110, 104]]):
        write_run(root, "ptb_lstm1", "adabelief", "t", seed, curve("test_ppl", values, first_epoch=1))
    for seed, values in enumerate([[100, 101], [101.5, 103]]):
        write_run(root, "ptb_lstm1", "adala", "t", seed, curve("test_ppl", values, 200, first_epoch=1))


def test_time_to_target_counts_the_seeds_that_never_reach_it(tmp_path):
    write_time_fixture(tmp_path)
    # Expected running time = (every seed's evaluations until it reaches the target, or its whole run) / (seeds that
    # reached it). VGG11, target 91: AdaBelief seed 0 never reaches it (200 spent), seed 1 at epoch 1 (200):
    # 400 / 1. AdaLA seed 0 at epoch 0 (200), seed 1 never (400 spent): 600 / 1. Ratio 1.5.
    # LSTM-1layer, target 102: AdaBelief seed 0 at epoch 2 (200), seed 1 never (best 104; 200 spent): 400 / 1.
    # AdaLA: both at their first epoch (200 each): 400 / 2 = 200. Ratio 0.5. Geometric mean √(1.5 · 0.5).
    rows = rows_by_claim(report(tmp_path).claims)
    for claim, unit in (("Faster convergence (gradient evaluations)", 1.0), ("Faster convergence (wall time)", 0.01)):
        row = rows.loc[claim]
        assert row["effect"] == pytest.approx(math.sqrt(0.75), rel=1e-12)
        assert row["value_a"] == pytest.approx(math.sqrt(600 * 200) * unit, rel=1e-12)
        assert row["value_b"] == pytest.approx(400 * unit, rel=1e-12)
        assert row["tasks"] == 2 and row["effect_kind"] == "ratio" and row["null"] == 1.0


def test_seeds_that_end_at_the_target_reach_their_own_mean():
    """Three seeds ending at 90.03 have a mean one ulp above it (90.03000000000002): they reach it all the same."""
    target = np.array([np.mean([90.03] * 3)])
    assert target[0] > 90.03
    curves = Curves(best=[np.array([80.0, 90.03])] * 3, cost=[np.array([100.0, 200.0])] * 3,
                    final=np.full(3, 90.03))
    assert expected_time(curves, np.array([[0, 1, 2]]), target).tolist() == [200.0]


def test_a_side_no_seed_of_which_reaches_the_target_takes_forever(tmp_path):
    write_time_fixture(tmp_path)
    for seed in range(2):  # WGAN: AdaBelief ends at FID 20 and 22 (target 21); AdaLA never gets under 30
        write_run(tmp_path, "gan_wgan", "adabelief", "t", seed, [
            {"epoch": 0, "grad_evals": 100, "wall_s": 1.0, "fid_curve": 40.0},
            {"epoch": 1, "grad_evals": 200, "wall_s": 2.0, "fid": 20.0 + 2 * seed}])
        write_run(tmp_path, "gan_wgan", "adala", "t", seed, [
            {"epoch": 0, "grad_evals": 200, "wall_s": 2.0, "fid_curve": 35.0},
            {"epoch": 1, "grad_evals": 400, "wall_s": 4.0, "fid": 30.0 + seed}])
    row = rows_by_claim(report(tmp_path).claims).loc["Faster convergence (gradient evaluations)"]
    assert row["effect"] == math.inf and row["value_a"] == math.inf and row["ci_high"] == math.inf
    assert row["tasks"] == 3 and row["verdict"] in ("contradicted", "not settled")


# --- what would settle it ---------------------------------------------------------------------------------------

def test_seeds_needed_by_hand():
    # half-width 0.75 at 2 seeds falls as 1/√n: under 0.25 once 0.75·√(2/n) < 0.25, n > 2·3² = 18: 19
    assert seeds_needed(0.75, 2, 0.25) == 19
    assert seeds_needed(0.5, 3, 0.25) == 13  # n > 3·2² = 12
    assert seeds_needed(0.1, 3, 0.25) == 2  # already under it: a CI still needs two seeds a side
    assert seeds_needed(0.5, 3, 0.0) == math.inf  # no observed difference: no number of seeds settles it
    assert math.isnan(seeds_needed(math.inf, 3, 0.25)) and math.isnan(seeds_needed(math.nan, 3, 0.25))


def test_the_gpu_hours_of_the_seeds_to_add_are_adala_plans_estimate(tmp_path):
    write_time_fixture(tmp_path)
    row = rows_by_claim(report(tmp_path).claims).loc["Longer training times"]
    # adala-plan's seconds per epoch: final wall_s / (last epoch + 1). VGG11: AdaBelief 2 s / 2 = 1, AdaLA 4 s / 2 = 2.
    # LSTM-1layer counts epochs from 1: AdaBelief 2 s / 3, AdaLA 4 s / 3 (plan's reading, kept as it is). Ratios 2
    # and 2: ×2, without spread, and gradient evaluations per epoch ×2.
    assert row["effect"] == pytest.approx(2.0) and (row["ci_low"], row["ci_high"]) == pytest.approx((2.0, 2.0))
    assert row["verdict"] == "supported" and "(gradient evaluations per epoch: ×2.00)" in row["measure"]
    assert row["seeds_to_observed"] == 2 and row["gpu_hours_to_observed"] == 0  # settled with the seeds there are
    better = rows_by_claim(report(tmp_path).claims).loc["Better across tasks"]
    n = better["seeds_to_smallest"]
    assert n > 2
    # the seeds each (task, side) lacks, times its runs' epochs (2), times its seconds per epoch
    per_run = {("vgg", "adabelief"): 1.0, ("vgg", "adala"): 2.0, ("ptb", "adabelief"): 2 / 3, ("ptb", "adala"): 4 / 3}
    assert better["gpu_hours_to_smallest"] == pytest.approx((n - 2) * 2 * sum(per_run.values()) / 3600, rel=1e-12)


# --- the fix ---------------------------------------------------------------------------------------------------

def write_fix_fixture(root: Path, gans: bool = True) -> None:
    """VGG11 and LSTM-1layer (and WGAN) with AdaBelief, AdaLA (w = 1, 2 seeds) and AdaLA at w = 0 and 0.5 (3 seeds
    each: more than AdaLA's own, so a rule that let them in would take the table's AdaLA cell). Every run's curve
    is level + seed + (0, 2, 1, 3), so its oscillation is 2; a GAN's ends with its FID, level + seed."""
    tasks = [("cifar10_vgg11", "test_acc", 0)] + [("ptb_lstm1", "test_ppl", 1)] + (
        [("gan_wgan", "fid_curve", 0)] if gans else [])
    for task, metric, first in tasks:
        for side, tag, seeds, level in (("adabelief", "t", 2, 50.0), ("adala", "t", 2, 60.0),
                                        ("adala", MIX_TAG.format(w=0), 3, 40.0),
                                        ("adala", MIX_TAG.format(w=0.5), 3, 70.0)):
            for seed in range(seeds):
                records = curve(metric, [level + seed, level + 2 + seed, level + 1 + seed, level + 3 + seed],
                                first_epoch=first)
                if metric == "fid_curve":  # then the final FID, the GANs' value
                    records.append({"epoch": 4, "grad_evals": 500, "wall_s": 5.0, "fid": level + seed})
                write_run(root, task, side, tag, seed, records)


def test_the_fixs_runs_are_never_a_table_cells_and_the_view_has_them_per_weight(tmp_path):
    write_fix_fixture(tmp_path)
    results = report(tmp_path)
    cells = results.cells.set_index(["task", "optimizer"])
    assert cells.loc[("cifar10_vgg11", "adala"), "n"] == 2 and cells.loc[("cifar10_vgg11", "adala"), "mean"] == 63.5
    assert cells.loc[("cifar10_vgg11", "adala"), "other_hparams"] == ""  # not even listed as another tag
    mix = results.claims.mix.set_index(["model", "side"])
    assert list(mix.loc["VGG11"].index) == ["AdaBelief", "w=0", "w=0.5", "AdaLA"]
    assert mix.loc[("VGG11", "w=0.5"), ["n", "value_mean"]].tolist() == [3, 74.0]  # best of 70+s, 72+s, 71+s, 73+s
    assert mix.loc[("VGG11", "w=0.5"), "value_std"] == 1.0  # 73, 74, 75: the sample std (ddof 1)
    assert mix.loc[("VGG11", "AdaLA"), "lookahead_weight"] == 1.0
    # the same oscillation every run: last 2 of 4 values (+1 then +2): 2
    assert (results.claims.instability["oscillation"].dropna() == 2.0).all()
    rows = rows_by_claim(results.claims)
    stable, kept = rows.loc["The proposed fix: more stable"], rows.loc["The proposed fix: convergence kept"]
    assert (stable["side_a"], stable["side_b"], stable["effect"]) == ("w=0.5", "AdaLA", 0.0)  # all ties
    # VGG11's best accuracies 73, 74, 75 against 63, 64 (higher is better): always wins; LSTM-1layer's lowest
    # perplexities 70, 71, 72 against 60, 61 and WGAN's FIDs the same (lower is better): always lose. P = 1/3,
    # 2P − 1 = −1/3.
    assert kept["effect"] == pytest.approx(-1 / 3) and kept["null"] == -0.2
    assert "w=0" not in set(rows["side_a"])  # w = 0 is AdaBelief's residual, no blend to test
    instability = results.claims.instability
    assert set(instability.loc[instability["optimizer"] == "adala", "lookahead_weight"]) == {0.0, 0.5, 1.0}


def test_the_mix_figure_is_drawn_per_family_with_runs_of_the_fix(tmp_path):
    write_fix_fixture(tmp_path, gans=False)
    written, notes = write_claims_figures(report(tmp_path).claims, "paper", tmp_path / "out")
    assert sorted(p.name for p in written) == ["fig8_lookahead_weight_cifar10.pdf",
                                               "fig8_lookahead_weight_cifar10.png", "fig8_lookahead_weight_ptb.pdf",
                                               "fig8_lookahead_weight_ptb.png"]
    assert notes == ["fig8_lookahead_weight_gan not drawn: no AdaLA run at a lookahead_weight below 1 on the gan "
                     "tasks"]


# --- partial sweeps ---------------------------------------------------------------------------------------------

def page_of(root: Path) -> str:
    return to_markdown(page_blocks(report(root), None, [], []))


def test_without_adala_runs_every_claim_says_it_has_no_data(tmp_path):
    for seed in range(3):
        write_run(tmp_path, "cifar10_vgg11", "adabelief", "t", seed, curve("test_acc", [50, 60 + seed]))
    claims = report(tmp_path).claims
    assert set(claims.rows["verdict"]) == {"no data"}
    assert claims.rows["verdict_text"].iloc[0] == "no data: no runs of AdaLA (VGG11); no runs of AdaLA or AdaBelief " \
                                                  "(ResNet34, DenseNet121, LSTM-1layer, LSTM-2layer, LSTM-3layer, " \
                                                  "WGAN, WGAN-GP)"
    page = page_of(tmp_path)
    assert "## The paper's claims, tested" in page and "Of 6 rows: 6 no data." in page
    assert "| The proposed fix |" in page and "no AdaLA runs at a lookahead_weight between 0 and 1" in page


def test_with_one_seed_a_side_no_claim_has_an_interval(tmp_path):
    for task, metric in (("cifar10_vgg11", "test_acc"), ("ptb_lstm1", "test_ppl")):
        for side in ("adala", "adabelief"):
            write_run(tmp_path, task, side, "t", 0, curve(metric, [50, 60, 55]))
    rows = report(tmp_path).claims.rows
    assert set(rows["verdict"]) == {"no data"}
    assert rows["verdict_text"].iloc[0] == ("no data: one seed of AdaLA; one seed of AdaBelief (VGG11, LSTM-1layer); "
                                            "no runs of AdaLA or AdaBelief (ResNet34, DenseNet121, LSTM-2layer, "
                                            "LSTM-3layer, WGAN, WGAN-GP)")
    assert "| Better across tasks |" in page_of(tmp_path)


def test_without_gans_the_claims_say_which_tasks_they_leave_out(tmp_path):
    write_fix_fixture(tmp_path, gans=False)
    rows = rows_by_claim(report(tmp_path).claims)
    assert (rows["tasks"] == 2).all()
    assert rows.loc["Instability", "left_out"] == ("no runs of AdaLA or AdaBelief (ResNet34, DenseNet121, "
                                                   "LSTM-2layer, LSTM-3layer, WGAN, WGAN-GP)")
    page = page_of(tmp_path)
    assert "; over 2 tasks; left out: no runs of AdaLA or AdaBelief (ResNet34" in page
    blocks = to_markdown(claims_blocks(report(tmp_path).claims, "paper", set()))
    assert "### Instability: late-phase oscillation per task" in blocks and "| WGAN |" not in blocks


def test_the_claims_come_right_after_the_answer(tmp_path):
    write_fix_fixture(tmp_path)
    page = page_of(tmp_path)
    order = ["## The answer: AdaLA against AdaBelief", "### What these runs can and cannot support",
             "## The paper's claims, tested", "### Instability: late-phase oscillation per task",
             "### The proposed fix: the residual g − (w·g′ + (1 − w)·m)", "## Across the tasks"]
    positions = [page.index(heading) for heading in order]
    assert positions == sorted(positions)
    assert "**Late-phase oscillation**, per run: the mean absolute change" in page
    assert "after Holm's adjustment over the 3 tested cells" in page


def test_oscillations_of_no_runs_is_empty():
    frame = pd.DataFrame({"run": pd.Series([], dtype=int), "test_acc": pd.Series([], dtype=float)})
    out = oscillations(frame, pd.DataFrame({"run": pd.Series([], dtype=int), "task": pd.Series([], dtype=object)}))
    assert out.empty and list(out.columns) == ["run", "metric", "measurements", "oscillation"]
