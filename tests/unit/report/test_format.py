"""report/format.py: how every view writes numbers and counts."""
import math

import pytest

from adala_bench.report.format import MISSING, count, exact, mean_std, number, rank, signed, times


@pytest.mark.parametrize("x, spec, text", [
    (2.675, ".2f", "2.67"),  # the binary value is 2.67499999...: rounded as it is, not as written
    (0.125, ".2f", "0.12"),  # exactly half: to even
    (0.1234, ".3g", "0.123"),
    (29324.6, ".0f", "29325"),
    (-0.004, ".2f", "0.00"),  # a value that rounds to 0 carries no minus sign
    (-1e-12, ".3f", "0.000"),
    (-0.006, ".2f", "-0.01"),
])
def test_number(x, spec, text):
    assert number(x, spec) == text


@pytest.mark.parametrize("x", [None, math.nan, math.inf, -math.inf])
def test_what_is_not_a_finite_number_is_missing(x):
    assert number(x) == signed(x) == times(x) == rank(x) == MISSING == "–"
    assert number(x, missing="--") == "--"


def test_signed_ratio_and_rank():
    assert (signed(4.6875), signed(-2.734375), signed(-0.001), signed(0.0)) == ("+4.69", "-2.73", "+0.00", "+0.00")
    assert (times(4 / 3), times(10.0, ".3g"), times(1.0, ".3g")) == ("×1.33", "×10", "×1")
    assert (rank(1.0), rank(1.5), rank(3)) == ("1", "1.5", "3")


def test_mean_std():
    assert mean_std(62.5, 0.7071067811865476, 2) == "62.50 ± 0.71 (n=2)"
    assert mean_std(89.5, math.nan, 1) == "89.50 ± – (n=1)"  # no std of one value
    assert mean_std(math.nan, math.nan, 0) == "–"
    assert mean_std(7.87, 0.806, 2, pm=r"$\pm$", n_text="({n})", missing="--") == r"7.87 $\pm$ 0.81 (2)"
    assert mean_std(7.87, math.nan, 1, missing="--") == "7.87 ± -- (n=1)"


def test_exact_and_count():
    assert (exact(3.0), exact(61.0), exact(0.1 + 0.2), exact(1e-16)) == ("3", "61", "0.30000000000000004", "1e-16")
    assert (count(0, "run"), count(1, "run"), count(2, "seed"), count(1, "completed run")) == (
        "0 runs", "1 run", "2 seeds", "1 completed run")
