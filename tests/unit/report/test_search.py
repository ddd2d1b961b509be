"""report/search.py: the --emit-best line of an lr search's choice composes back to exactly the lr chosen (floats
round-trip through Hydra's parser). The search report itself, through adala-report: tests/e2e/test_report_search.py."""

from __future__ import annotations

from adala_bench.report.search import override_line
from helpers import compose


def test_override_line_round_trips_floats():
    for lr in (0.1 * 3, 1e-3 * 0.3, 3.0000000000000004e-05, 1e-16, 30.0 * 0.1):
        line = override_line("cifar10_vgg11", "adam", {"name": "adam", "lr": lr})
        assert compose(*line.split()).optimizer.lr == lr
