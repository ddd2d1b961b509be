import math
import statistics
from pathlib import Path

import pytest
from scipy import stats as sp

from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values
from helpers import write_run
from adala_bench.report.select import choose_hparams, run_values
from adala_bench.report.stats import adala_vs_adabelief, render_comparison_markdown, welch
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
    assert vgg["flags"] == "adala: diverged:1; adabelief: missing seeds:2"  # 4 adala seeds expected
    wgan = comparison.loc["WGAN"]
    assert wgan["n_adala"] == 1 and math.isnan(wgan["ci_low"]) and wgan["ci_contains_zero"] is None
    assert wgan["flags"].startswith("n<2")

    md = render_comparison_markdown(comparison.reset_index(), "paper")
    row = f"| Table 2 | VGG11 | 91.17 (3) | 91.50 (2) | {diff:+.2f} [{low:+.2f}, {high:+.2f}] | {p:.3g} | +0.25 |"
    assert row in md
    assert "difference inside the noise (CI contains 0)" in md
    assert "| Table 4 | WGAN | 80.00 (1) | 85.00 (1) | -5.00 [–, –] | – | -1.66 | not testable" in md
    assert "| Table 4 | WGAN-GP | – (0) | – (0) | – [–, –] | – | -1.97 | no runs of AdaLA and AdaBelief |" \
        in md
