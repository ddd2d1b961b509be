"""Report selection and statistics against values worked out here (issue 17, item 3: the survivors of
`make mutation` on adala_bench/report/select.py and stats.py that a test should kill).

Welch's interval and degrees of freedom from the textbook formulas with unequal sample sizes; AdaLA − AdaBelief
through the report's own path (run directories → load_runs → run_values → choose_hparams → build_cells →
adala_vs_adabelief) on data where the interval is a point that sits exactly on 0 or on the paper's difference, where a
side has one run or none; the verdict in words for each case; run_values on the frames that reach its corners: no
runs, a task outside the catalog, a family with one run, a metric never logged, a row subset whose run ids have gaps
(compute_matched passes such subsets), and GAN runs whose FID came from random Inception weights.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import astuple
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values
from adala_bench.report.select import choose_hparams, run_values
from adala_bench.report.stats import COMPARISON_COLUMNS, adala_vs_adabelief, verdict, verdict_kind, welch
from adala_bench.report.tables import build_cells

from helpers import write_run

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"
RUN_VALUE_COLUMNS = ["run", "task", "family", "model", "optimizer", "hparams", "profile", "seed", "state", "reason",
                     "run_dir", "table", "metric", "epochs_logged", "last_epoch", "final_grad_evals", "final_wall_s",
                     "value", "epoch", "random_fid_weights"]


@pytest.fixture
def no_warnings():
    """Any warning raised inside the test is an error (the report's numbers come without RuntimeWarnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---- Welch ---------------------------------------------------------------------------------------------------------

def textbook_welch(a, b):
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    diff = statistics.mean(a) - statistics.mean(b)
    half = sp.t.ppf(0.975, df) * math.sqrt(va + vb)
    t = diff / math.sqrt(va + vb)
    return diff, diff - half, diff + half, df, 2 * sp.t.sf(abs(t), df)


@pytest.mark.usefixtures("no_warnings")
def test_welch_with_three_and_five_values_equals_the_textbook_formulas():
    a, b = [1.0, 2.5, 4.0], [2.0, 2.2, 2.9, 3.5, 5.1]
    diff, low, high, df, p = textbook_welch(a, b)
    result = welch(a, b)
    assert result.df == pytest.approx(df, rel=1e-12)
    assert (result.diff, result.ci_low, result.ci_high) == (pytest.approx(diff, abs=1e-12), pytest.approx(low, rel=1e-9),
                                                            pytest.approx(high, rel=1e-9))
    assert result.p_value == pytest.approx(p, rel=1e-9)
    swapped = welch(b, a)  # the other way round: the same df, the interval mirrored
    assert swapped.df == pytest.approx(df, rel=1e-12) and swapped.ci_low == pytest.approx(-high, rel=1e-9)


@pytest.mark.usefixtures("no_warnings")
def test_welch_below_two_values_or_without_spread_is_nan_where_undefined_and_quiet():
    one = welch([1.0], [1.0, 2.0])
    assert one.diff == -0.5 and all(math.isnan(x) for x in (one.ci_low, one.ci_high, one.df, one.p_value))
    for empty in (welch([], [1.0, 2.0, 4.0]), welch([3.0, 4.0], []), welch([3.0], [])):
        assert all(math.isnan(x) for x in astuple(empty))
    point = welch([2.0, 2.0], [1.0, 1.0])
    assert (point.diff, point.ci_low, point.ci_high) == (1.0, 1.0, 1.0)
    assert math.isnan(point.df) and math.isnan(point.p_value)


@pytest.mark.usefixtures("no_warnings")
def test_welch_keeps_scipys_precision_warning_to_itself():
    """Values that differ in the last bit: a spread > 0, and scipy warns of catastrophic cancellation."""
    result = welch([1.0, 1.0, 1.0 + 2 ** -52], [1.0, 1.0])
    assert result.ci_low < result.diff < result.ci_high and 0 <= result.p_value <= 1


# ---- AdaLA − AdaBelief through the report's path -------------------------------------------------------------------

def comparison(runs_dir: Path) -> pd.DataFrame:
    runs = choose_hparams(run_values(load_runs(runs_dir), "paper"))
    cells = build_cells(runs, paper_values(REFERENCE), "paper")
    return adala_vs_adabelief(runs, cells), cells


def write_values(root: Path, task: str, optimizer: str, metric: str, values: list[float]) -> None:
    for seed, value in enumerate(values):
        write_run(root, task, optimizer, "t", seed, [{"epoch": 0, "grad_evals": 1, "wall_s": 1.0, metric: value}])


def paper_of(task_model: str, optimizer: str, table: str) -> float:
    paper = paper_values(REFERENCE)
    return float(paper.loc[(paper["table"] == table) & (paper["model"] == task_model) &
                           (paper["optimizer"] == optimizer), "value"].iloc[0])


@pytest.mark.usefixtures("no_warnings")
def test_adala_vs_adabelief_on_the_edges_of_the_interval(tmp_path):
    # VGG11: no spread, and the difference is exactly the paper's: a point interval on the paper's difference.
    vgg = {name: paper_of("VGG11", name, "Table2") for name in ("adala", "adabelief")}
    write_values(tmp_path, "cifar10_vgg11", "adala", "test_acc", [vgg["adala"]] * 2)
    write_values(tmp_path, "cifar10_vgg11", "adabelief", "test_acc", [vgg["adabelief"]] * 2)
    # ResNet34: no spread, no difference: a point interval on 0.
    write_values(tmp_path, "cifar10_resnet34", "adala", "test_acc", [93.0, 93.0])
    write_values(tmp_path, "cifar10_resnet34", "adabelief", "test_acc", [93.0, 93.0])
    # DenseNet121: AdaLA has one run of three: not testable, and its cell is flagged.
    write_values(tmp_path, "cifar10_densenet121", "adala", "test_acc", [95.0])
    write_values(tmp_path, "cifar10_densenet121", "adabelief", "test_acc", [94.0, 94.5, 95.5])
    # LSTM-2: an ordinary case, perplexity (lower is better).
    ppl_a, ppl_b = [60.1, 61.0, 60.5], [62.0, 61.5, 63.2]
    write_values(tmp_path, "ptb_lstm2", "adala", "test_ppl", ppl_a)
    write_values(tmp_path, "ptb_lstm2", "adabelief", "test_ppl", ppl_b)
    # Table 4: AdaBelief alone (AdaLA's cell is there, with the paper's value, but empty).
    write_values(tmp_path, "gan_wgan", "adabelief", "fid", [80.0, 82.0])

    table, cells = comparison(tmp_path)
    assert list(table.columns) == COMPARISON_COLUMNS
    rows = table.set_index("model")
    # The verdict each row supports, from the cases above: VGG11's point interval sits on +0.25 (accuracy, higher
    # is better), ResNet34's on 0, DenseNet121 has one AdaLA run, LSTM-2layer's CI [-3.51, +0.11] contains 0 (from
    # the textbook formulas), the rest lack runs of one side or both.
    assert rows["verdict"].to_dict() == {
        "VGG11": "better", "ResNet34": "inside the noise", "DenseNet121": "not testable",
        "LSTM-1layer": "no runs", "LSTM-2layer": "inside the noise", "LSTM-3layer": "no runs", "WGAN": "no runs",
        "WGAN-GP": "no runs"}

    vgg_row = rows.loc["VGG11"]
    assert (vgg_row["table"], vgg_row["metric"], vgg_row["higher_is_better"]) == ("Table2", "test_acc", True)
    assert vgg_row["diff"] == vgg_row["ci_low"] == vgg_row["ci_high"] == vgg_row["paper_diff"] == vgg["adala"] - vgg["adabelief"]
    assert vgg_row["ci_contains_paper_diff"] is True and vgg_row["ci_contains_zero"] is (vgg["adala"] == vgg["adabelief"])
    assert math.isnan(vgg_row["df"]) and math.isnan(vgg_row["p_value"])

    resnet = rows.loc["ResNet34"]
    assert (resnet["diff"], resnet["ci_low"], resnet["ci_high"]) == (0.0, 0.0, 0.0)
    assert resnet["ci_contains_zero"] is True
    assert verdict(SimpleNamespace(**resnet.to_dict())) == "difference inside the noise (CI contains 0)"

    dense = rows.loc["DenseNet121"]
    assert (dense["n_adala"], dense["n_adabelief"]) == (1, 3)
    assert dense["ci_contains_zero"] is None and dense["ci_contains_paper_diff"] is None
    adala_flags = cells.loc[(cells["model"] == "DenseNet121") & (cells["optimizer"] == "adala"), "flags"].iloc[0]
    assert adala_flags  # build_cells flags the missing seeds
    assert dense["flags"] == f"n<2; adala: {adala_flags}"  # n<2 first, then each side's own flags
    assert math.isnan(dense["std_adala"]) and dense["mean_adala"] == 95.0

    lstm = rows.loc["LSTM-2layer"]
    diff, low, high, df, p = textbook_welch(ppl_a, ppl_b)
    assert (lstm["table"], lstm["metric"], lstm["higher_is_better"]) == ("Table3", "test_ppl", False)
    assert lstm["df"] == pytest.approx(df, rel=1e-12) and lstm["p_value"] == pytest.approx(p, rel=1e-9)
    assert (lstm["ci_low"], lstm["ci_high"]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert lstm["std_adabelief"] == pytest.approx(statistics.stdev(ppl_b), rel=1e-12)

    wgan = rows.loc["WGAN"]
    assert (wgan["n_adala"], wgan["n_adabelief"]) == (0, 2) and math.isnan(wgan["mean_adala"])
    assert wgan["paper_diff"] == paper_of("WGAN", "adala", "Table4") - paper_of("WGAN", "adabelief", "Table4")
    assert math.isnan(wgan["diff"])
    assert wgan["ci_contains_zero"] is None and wgan["flags"].startswith("n<2")
    assert verdict(SimpleNamespace(**wgan.to_dict())) == "no runs of AdaLA"


def verdict_of(**fields) -> str:
    """The verdict in words of a row with these fields, through its kind (as adala_vs_adabelief computes it)."""
    row = {"n_adala": 3, "n_adabelief": 3, "ci_contains_zero": False, "diff": 1.0, "higher_is_better": True, **fields}
    return verdict(SimpleNamespace(**row, verdict=verdict_kind(row)))


def test_the_verdict_in_words():
    assert verdict_of(n_adala=0, n_adabelief=0) == "no runs of AdaLA and AdaBelief"
    assert verdict_of(n_adala=0) == "no runs of AdaLA"
    assert verdict_of(n_adabelief=0) == "no runs of AdaBelief"
    assert verdict_of(ci_contains_zero=None) == "not testable (needs n ≥ 2 on both sides)"
    assert verdict_of(ci_contains_zero=math.nan) == "not testable (needs n ≥ 2 on both sides)"  # as read from a CSV
    assert verdict_of(ci_contains_zero=True) == "difference inside the noise (CI contains 0)"
    # accuracy: higher is better; perplexity and FID: lower is better. Differences below 1 count as much as any.
    assert verdict_of(diff=0.5) == "AdaLA better (CI excludes 0)"
    assert verdict_of(diff=-0.5) == "AdaLA worse (CI excludes 0)"
    assert verdict_of(diff=-2.0, higher_is_better=False) == "AdaLA better (CI excludes 0)"
    assert verdict_of(diff=3.0, higher_is_better=False) == "AdaLA worse (CI excludes 0)"


# ---- run_values at its corners -------------------------------------------------------------------------------------

def rows(metric: str | None, values: list[float], **extra) -> list[dict]:
    return [{"epoch": e, "grad_evals": 10 * (e + 1), "wall_s": float(e + 1), **({metric: v} if metric else {}),
             **{k: column[e] for k, column in extra.items()}} for e, v in enumerate(values)]


@pytest.mark.parametrize("rule", ["paper", "clean"])
@pytest.mark.usefixtures("no_warnings")
def test_run_values_of_no_runs_is_an_empty_frame_with_every_column(tmp_path, rule):
    runs = run_values(load_runs(tmp_path), rule)
    assert list(runs.columns) == RUN_VALUE_COLUMNS and len(runs) == 0


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_a_single_run_whose_best_epoch_is_the_frames_first_row(tmp_path, rule):
    """One CIFAR-10 run, alone in its family, best at epoch 0 (the first row of the frame), last at epoch 2."""
    write_run(tmp_path, "cifar10_vgg11", "adam", "t", 0, rows("test_acc", [80.0, 60.0, 70.0]))
    runs = run_values(load_runs(tmp_path), rule)
    assert list(runs.columns) == RUN_VALUE_COLUMNS and len(runs) == 1
    run = runs.iloc[0]
    expected = (80.0, 0.0) if rule == "paper" else (70.0, 2.0)
    assert (run["value"], run["epoch"]) == expected
    assert (run["table"], run["metric"], run["last_epoch"], run["final_grad_evals"]) == ("Table2", "test_acc", 2.0, 30.0)
    assert run["epochs_logged"] == 3 and runs["epochs_logged"].dtype.kind == "i"
    # epochs and grad_evals are whole numbers (loaded as integers); the run's final values are floats all the same
    for column in ("last_epoch", "final_grad_evals", "final_wall_s", "value", "epoch"):
        assert runs[column].dtype == np.float64, column
    assert not run["random_fid_weights"]


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_a_task_outside_the_catalog_and_a_run_without_values_get_nan(tmp_path, rule):
    write_run(tmp_path, "cifar10_vgg11", "adam", "t", 0, rows("test_acc", [50.0, 55.0]))
    write_run(tmp_path, "cifar10_vgg11", "adam", "t", 1, rows("test_acc", [math.nan, math.nan]))  # never evaluated
    write_run(tmp_path, "mnist_mlp", "adam", "t", 0, rows("test_acc", [97.0, 98.0]), family="mnist", model="MLP")
    runs = run_values(load_runs(tmp_path), rule).set_index(["task", "seed"])
    assert runs["value"].dtype == np.float64 and runs["epoch"].dtype == np.float64
    assert runs.loc[("cifar10_vgg11", 0), "value"] == 55.0
    assert math.isnan(runs.loc[("cifar10_vgg11", 1), "value"])
    # paper: no epoch has a value; clean: the final epoch counts, whatever it holds
    epoch = runs.loc[("cifar10_vgg11", 1), "epoch"]
    assert epoch == 1.0 if rule == "clean" else math.isnan(epoch)
    assert math.isnan(runs.loc[("mnist_mlp", 0), "value"]) and math.isnan(runs.loc[("mnist_mlp", 0), "epoch"])
    outside = runs.loc[("mnist_mlp", 0)]
    assert pd.isna(outside["table"]) and pd.isna(outside["metric"]) and outside["epochs_logged"] == 2


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_a_metric_never_logged_gives_no_value_and_no_error(tmp_path, rule):
    """A CIFAR-10 run (alone) that stopped before any evaluation: its rows have no test_acc column at all."""
    write_run(tmp_path, "cifar10_vgg11", "adam", "t", 0, rows(None, [0.0], train_loss=[2.3]))
    runs = run_values(load_runs(tmp_path), rule)
    assert len(runs) == 1 and math.isnan(runs["value"].iloc[0]) and math.isnan(runs["epoch"].iloc[0])


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_run_values_of_a_row_subset_whose_run_ids_have_gaps(tmp_path, rule):
    """compute_matched hands run_values the rows of some runs only: run ids 0 and 2, not 0 and 1."""
    for seed, curve in enumerate([[50.0, 70.0, 60.0], [10.0, 20.0, 30.0], [65.0, 55.0, 45.0]]):
        write_run(tmp_path, "cifar10_vgg11", "adam", "t", seed, rows("test_acc", curve))
    frame = load_runs(tmp_path)
    subset = frame[frame["seed"] != 1]
    runs = run_values(subset, rule).set_index("seed")
    expected = {"paper": {0: (70.0, 1.0), 2: (65.0, 0.0)}, "clean": {0: (60.0, 2.0), 2: (45.0, 2.0)}}[rule]
    assert {seed: (runs.loc[seed, "value"], runs.loc[seed, "epoch"]) for seed in (0, 2)} == expected


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_fids_from_random_inception_weights_are_flagged(tmp_path, rule):
    """Two one-epoch GAN runs: the first one's FID (the frame's first row) from random weights, the second's real."""
    write_run(tmp_path, "gan_wgan", "adam", "t", 0, rows("fid", [50.0], fid_real_weights=[0.0]))
    write_run(tmp_path, "gan_wgan", "adam", "t", 1, rows("fid", [60.0], fid_real_weights=[1.0]))
    runs = run_values(load_runs(tmp_path), rule)
    assert runs["value"].tolist() == [50.0, 60.0]
    assert runs["random_fid_weights"].tolist() == [True, False] and runs["random_fid_weights"].dtype == bool
