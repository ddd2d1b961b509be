import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sp

from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values
from helpers import write_run
from adala_bench.report.select import choose_hparams, run_values
from adala_bench.report.stats import adala_vs_adabelief, comparison_flags, render_comparison_markdown, tally, welch
from adala_bench.report.tables import build_cells

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


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
    row = f"| Table 2 | VGG11 | 91.17 (3) | 91.50 (2) | {diff:+.2f} [{low:+.2f}, {high:+.2f}] | {p:.3g} | +0.25 |"
    assert row in md
    assert "difference inside the noise (CI contains 0)" in md
    assert "| Table 4 | WGAN | 80.00 (1) | 85.00 (1) | -5.00 [–, –] | – | -1.66 | not testable" in md
    assert "| Table 4 | WGAN-GP | – (0) | – (0) | – [–, –] | – | -1.97 | no runs of AdaLA and AdaBelief |" \
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
