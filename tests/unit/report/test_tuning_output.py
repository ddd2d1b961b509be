"""report/tuning_output.py: the tuning view's blocks, files and figures, on a Penn TreeBank store where a diverged
trial makes the expected best infinite at the budgets that may pick it (shown, never dropped)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from adala_bench.report.load import load_runs
from adala_bench.report.page import Bullets, Table, to_markdown
from adala_bench.report.tuning import tuning_view
from adala_bench.report.tuning_output import tuning_blocks, write_tuning
from helpers import write_tuning_run

PTB = "ptb_lstm1"


def rows(*pairs):
    """metrics rows from (val_ppl, test_ppl) per epoch."""
    return [{"epoch": e, "grad_evals": e + 1, "wall_s": 1.0 + e, "lr": 1.0, "val_ppl": v, "test_ppl": t}
            for e, (v, t) in enumerate(pairs)]


@pytest.fixture
def view(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        for trial, (val, test) in enumerate([(120.0, 118.0), (150.0, 149.0), (110.0, 112.0)]):
            write_tuning_run(root, PTB, "adabelief", f"t{trial}", seed, rows((val + seed, test + seed)), trial=trial,
                             hparam_values={"lr": 10.0 ** -trial, "eps": 1e-12})
        for trial, (val, test) in enumerate([(125.0, 124.0), (100.0, 99.0), (130.0, 131.0)]):
            diverged = trial == 1 and seed == 0
            write_tuning_run(root, PTB, "adala", f"t{trial}", seed, rows((val, test)), trial=trial,
                             state="diverged" if diverged else "completed",
                             hparam_values={"lr": 10.0 ** -trial, "eps": 1e-12})
        write_tuning_run(root, PTB, "adala", "d", seed, rows((140.0, 139.0)), hparam_values={"lr": 1e-3})
    return tuning_view(load_runs(root))


def test_a_diverged_trial_is_infinite_where_a_budget_may_pick_it_and_listed(view):
    blocks = tuning_blocks(view, figures=None)
    (budgets,) = [b for b in blocks if isinstance(b, Table) and b.header[0] == "Optimizer"]
    adala = next(row for row in budgets.rows if row[0] == "AdaLA")
    assert adala[1] == "3 (2)" and adala[2] == "140.00"  # K (seeds), the defaults' val_ppl
    assert adala[3].startswith("k=1: ∞") and "k=3: 125.00 [" in adala[3]  # 1 of the 3 trials is ∞; the best is finite
    assert adala[6] == "1 of 4"
    failed = next(b for b in blocks if isinstance(b, Bullets) and "counted at" in b.items[0])
    assert failed.items == ["ptb_lstm1 / AdaLA / trial 1 (lr 0.1, eps 1e-12): 1 of 2 runs failed, counted at ∞"]
    (comparison,) = [b for b in blocks if isinstance(b, Table) and b.header[1] == "budget"]
    k1 = next(row for row in comparison.rows if row[1] == "k=1")
    assert k1[2] == "∞ (2)" and k1[4].startswith("+∞")


def test_the_files_and_figures(view, tmp_path):
    out = tmp_path / "report"
    written, drawn, notes = write_tuning(view, out)
    assert {p.name for p in written} >= {"tuning.md", "tuning.csv", "tuning_trials.csv",
                                        "tuning_adala_vs_adabelief.csv", "tuning_expected_best_lstm1.png",
                                        "tuning_lr_lstm1.png"}
    assert drawn == {"tuning_expected_best_lstm1.png", "tuning_expected_best_lstm1.pdf", "tuning_lr_lstm1.png",
                     "tuning_lr_lstm1.pdf"} and notes == []
    curves = pd.read_csv(out / "tuning.csv")
    adala = curves[curves["optimizer"] == "adala"].set_index("k")
    assert adala.loc[1, "expected_best_val"] == math.inf and adala.loc[3, "expected_best_val"] == 125.0
    page = (out / "tuning.md").read_text()
    assert page == to_markdown(tuning_blocks(view, drawn, level=1, every_trial=True))
    assert "![ptb_lstm1" not in page and "(tuning_expected_best_lstm1.png)" in page
    assert "| AdaLA | 1 | 0.1 | 1e-12 | 2 | 1 | 1 | ∞ (100.00–∞) | ∞ | yes |" in page  # the trial table


def test_without_tuning_runs_the_view_says_so():
    assert "No run of a tuning sweep" in to_markdown(tuning_blocks(None, None))
