"""report/stats.py: Welch's interval, degrees of freedom and p against the textbook formulas (with unequal sample
sizes, below two values, without spread); AdaLA − AdaBelief per cell, its flags said once and the verdicts tallied;
and, against values worked out here (issue 17, item 3: the survivors of `make mutation` on stats.py that a test
should kill), AdaLA − AdaBelief through the report's own path (run directories → load_runs → run_values →
choose_hparams → build_cells → adala_vs_adabelief) on data where the interval is a point that sits exactly on 0 or on
the paper's difference, where a side has one run or none, and the verdict in words for each case."""

from __future__ import annotations

import math
import statistics
from dataclasses import astuple
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy import stats as sp

from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values
from adala_bench.report.select import choose_hparams, run_values
from adala_bench.report.stats import (COMPARISON_COLUMNS, adala_vs_adabelief, comparison_flags, holm,
                                      render_comparison_markdown, tally, verdict, verdict_kind, welch)
from adala_bench.report.tables import build_cells
from helpers import REPO, write_run

REFERENCE = REPO / "results" / "reference"


def hand_welch(a, b):
    """Welch–Satterthwaite from the textbook formulas."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = statistics.mean(a) - statistics.mean(b)
    half = sp.t.ppf(0.975, df) * se
    return diff, diff - half, diff + half, df, 2 * sp.t.sf(abs(diff) / se, df)


def test_welch_equals_the_textbook_formulas():
    a, b = [90.0, 91.0, 92.5], [91.25, 91.75]
    result = welch(a, b)
    diff, low, high, df, p = hand_welch(a, b)
    assert result.diff == pytest.approx(diff, abs=1e-12)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))
    assert result.df == pytest.approx(df, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert df == pytest.approx(2.43349, abs=1e-4)  # (0.590278)^2 / (0.527778^2/2 + 0.0625^2)


def test_welch_needs_two_values_on_each_side():
    result = welch([1.0, 2.0], [3.0])
    assert result.diff == -1.5
    assert all(math.isnan(x) for x in (result.ci_low, result.ci_high, result.df, result.p_value))
    assert math.isnan(welch([], [1.0, 2.0]).diff)


def test_welch_without_spread_has_a_point_interval():
    result = welch([2.0, 2.0], [1.0, 1.0])
    assert (result.diff, result.ci_low, result.ci_high) == (1.0, 1.0, 1.0)
    assert math.isnan(result.p_value)


def test_holm_adjusts_by_hand():
    # m = 4 finite p-values, ascending 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04; the running
    # maximum keeps the order: 0.02, 0.03, 0.06, 0.06. NaN (an untestable cell) is no test and stays NaN.
    adjusted = holm([0.01, 0.04, 0.03, math.nan, 0.005])
    assert adjusted[[0, 1, 2, 4]].tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert math.isnan(adjusted[3])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # 2 × 0.5 = 1; capped at 1
    assert holm([0.02]).tolist() == [0.02] and holm([]).tolist() == []


def test_adala_vs_adabelief_per_cell(tmp_path):
    a, b = [90.0, 91.0, 92.5], [91.25, 91.75]
    for name, values in (("adala", a), ("adabelief", b)):
        for seed, v in enumerate(values):
            write_run(tmp_path, "cifar10_vgg11", name, "t", seed, [{"epoch": 0, "test_acc": v - 1},
                                                                   {"epoch": 1, "test_acc": v}])
    write_run(tmp_path, "cifar10_vgg11", "adala", "t", 9, [{"epoch": 0, "test_acc": 10.0}], state="diverged")
    write_run(tmp_path, "gan_wgan", "adala", "t", 0, [{"epoch": 0, "fid": 80.0}])
    write_run(tmp_path, "gan_wgan", "adabelief", "t", 0, [{"epoch": 0, "fid": 85.0}])
    runs = choose_hparams(run_values(load_runs(tmp_path), "paper"))
    cells = build_cells(runs, paper_values(REFERENCE), "paper")
    comparison = adala_vs_adabelief(runs, cells).set_index("model")
    assert list(comparison.index) == ["VGG11", "ResNet34", "DenseNet121", "LSTM-1layer", "LSTM-2layer",
                                      "LSTM-3layer", "WGAN", "WGAN-GP"]
    vgg = comparison.loc["VGG11"]
    diff, low, high, df, p = hand_welch(a, b)
    assert (vgg["n_adala"], vgg["n_adabelief"]) == (3, 2)
    assert vgg["mean_adala"] == pytest.approx(statistics.mean(a), abs=1e-12)
    assert vgg["std_adabelief"] == pytest.approx(statistics.stdev(b), abs=1e-12)
    assert (vgg["diff"], vgg["ci_low"], vgg["ci_high"], vgg["p_value"]) == (
        pytest.approx(diff, abs=1e-12), pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9),
        pytest.approx(p, rel=1e-9))
    assert vgg["paper_diff"] == pytest.approx(91.66 - 91.41, abs=1e-12)
    assert vgg["ci_contains_zero"] == (low <= 0 <= high) and vgg["ci_contains_paper_diff"] == (low <= 0.25 <= high)
    assert vgg["flags"] == "adala: 1 run diverged; adabelief: 2 seeds missing"  # 4 adala seeds expected
    wgan = comparison.loc["WGAN"]
    assert wgan["n_adala"] == 1 and math.isnan(wgan["ci_low"]) and wgan["ci_contains_zero"] is None
    assert wgan["flags"].startswith("n<2")

    md = render_comparison_markdown(comparison.reset_index(), cells, "paper")
    # the one testable cell: Holm's adjustment over m = 1 test leaves its p as it is
    assert vgg["p_holm"] == vgg["p_value"] and comparison["p_holm"].notna().sum() == 1
    row = (f"| Table 2 | VGG11 | 91.17 (3) | 91.50 (2) | {diff:+.2f} [{low:+.2f}, {high:+.2f}] | {p:.3g} | {p:.3g} "
           "| +0.25 |")
    assert row in md
    assert "difference inside the noise (CI contains 0)" in md
    assert "| Table 4 | WGAN | 80.00 (1) | 85.00 (1) | -5.00 [–, –] | – | – | -1.66 | not testable" in md
    assert "| Table 4 | WGAN-GP | – (0) | – (0) | – [–, –] | – | – | -1.97 | no runs of AdaLA and AdaBelief |" \
        in md


def test_the_flags_say_once_what_every_cell_carries_and_the_tally_counts_verdicts(tmp_path):
    # A smoke sweep: every cell with runs carries the profile's flag. VGG11: AdaLA 95, 96 and a diverged seed;
    # AdaBelief 90, 91, 90.5. LSTM-1layer: one AdaLA run (a seed short of AdaBelief's two). WGAN: FIDs from random
    # Inception weights, AdaLA 20, 21 against AdaBelief 30, 31.
    def write(task, name, seed, metric, value, state="completed", **extra):
        write_run(tmp_path, task, name, "t", seed, [{"epoch": 1, metric: value, **extra}], state=state,
                  profile="smoke")

    for seed, (a, b) in enumerate([(95.0, 90.0), (96.0, 91.0), (None, 90.5)]):
        write("cifar10_vgg11", "adabelief", seed, "test_acc", b)
        write("cifar10_vgg11", "adala", seed, "test_acc", 10.0 if a is None else a,
              state="diverged" if a is None else "completed")
    write("ptb_lstm1", "adala", 0, "test_ppl", 80.0)
    for seed in range(2):
        write("ptb_lstm1", "adabelief", seed, "test_ppl", 85.0 + seed)
        write("gan_wgan", "adala", seed, "fid", 20.0 + seed, fid_real_weights=0.0)
        write("gan_wgan", "adabelief", seed, "fid", 30.0 + seed, fid_real_weights=0.0)
    runs = choose_hparams(run_values(load_runs(tmp_path), "paper"))
    cells = build_cells(runs, paper_values(REFERENCE), "paper")
    comparison = adala_vs_adabelief(runs, cells)

    shared, lines = comparison_flags(comparison, cells)
    assert shared == "profile smoke: synthetic data and tiny networks, not comparable with the paper's value"
    no_runs = [f"{table} / {model}: n < 2 on a side; AdaLA and AdaBelief: no runs" for table, model in (
        ("Table 2", "ResNet34"), ("Table 2", "DenseNet121"), ("Table 3", "LSTM-2layer"), ("Table 3", "LSTM-3layer"),
        ("Table 4", "WGAN-GP"))]
    assert lines == [
        "Table 2 / VGG11: AdaLA: 1 run diverged", *no_runs[:2],
        "Table 3 / LSTM-1layer: n < 2 on a side; AdaLA: 1 seed missing", *no_runs[2:4],
        "Table 4 / WGAN: AdaLA and AdaBelief: random Inception weights in 2 runs (not a real FID)", no_runs[4]]
    md = render_comparison_markdown(comparison, cells, "paper")
    assert md.count("profile smoke") == 1 and f"Flags of these cells. Every cell: {shared}." in md

    # VGG11 and WGAN: AdaLA better (CI excludes 0); LSTM-1layer: one AdaLA run; the other five: no runs.
    assert comparison["verdict"].tolist() == ["better", "no runs", "no runs", "not testable", "no runs", "no runs",
                                              "better", "no runs"]
    assert tally(comparison) == ("Of the 8 cells of Tables 2-4: AdaLA better in 2, not testable (n < 2 on a side) "
                                 "in 1, without runs of one or both in 5.")
    # The tally counts the verdict column, whatever the words on the page say.
    assert tally(pd.DataFrame({"verdict": ["worse", "inside the noise", "worse"]})) == (
        "Of the 3 cells of Tables 2-4: AdaLA worse in 2, inside the noise in 1.")


# ---- against values worked out here: the edges of the interval and the verdicts ----------------------------------

# Any warning raised inside a test so marked is an error (the report's numbers come without RuntimeWarnings).
NO_WARNINGS = pytest.mark.filterwarnings("error")


@NO_WARNINGS
def test_welch_with_three_and_five_values_equals_the_textbook_formulas():
    a, b = [1.0, 2.5, 4.0], [2.0, 2.2, 2.9, 3.5, 5.1]
    diff, low, high, df, p = hand_welch(a, b)
    result = welch(a, b)
    assert result.df == pytest.approx(df, rel=1e-12)
    assert (result.diff, result.ci_low, result.ci_high) == (pytest.approx(diff, abs=1e-12), pytest.approx(low, rel=1e-9),
                                                            pytest.approx(high, rel=1e-9))
    assert result.p_value == pytest.approx(p, rel=1e-9)
    swapped = welch(b, a)  # the other way round: the same df, the interval mirrored
    assert swapped.df == pytest.approx(df, rel=1e-12) and swapped.ci_low == pytest.approx(-high, rel=1e-9)


@NO_WARNINGS
def test_welch_below_two_values_or_without_spread_is_nan_where_undefined_and_quiet():
    one = welch([1.0], [1.0, 2.0])
    assert one.diff == -0.5 and all(math.isnan(x) for x in (one.ci_low, one.ci_high, one.df, one.p_value))
    for empty in (welch([], [1.0, 2.0, 4.0]), welch([3.0, 4.0], []), welch([3.0], [])):
        assert all(math.isnan(x) for x in astuple(empty))
    point = welch([2.0, 2.0], [1.0, 1.0])
    assert (point.diff, point.ci_low, point.ci_high) == (1.0, 1.0, 1.0)
    assert math.isnan(point.df) and math.isnan(point.p_value)


@NO_WARNINGS
def test_welch_keeps_scipys_precision_warning_to_itself():
    """Values that differ in the last bit: a spread > 0, and scipy warns of catastrophic cancellation."""
    result = welch([1.0, 1.0, 1.0 + 2 ** -52], [1.0, 1.0])
    assert result.ci_low < result.diff < result.ci_high and 0 <= result.p_value <= 1


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


@NO_WARNINGS
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
    diff, low, high, df, p = hand_welch(ppl_a, ppl_b)
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
