"""Everything the report computes from the runs, computed once: the files, the page and --explain read it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .claims import Claims, claims_view, fix_rows
from .crosstask import CrossTask, cross_task
from .matched import compute_matched
from .select import choose_hparams, run_values
from .stats import adala_vs_adabelief
from .tables import build_cells
from .tuning import TuningView, tuning_marks, tuning_view


@dataclass
class Results:
    frame: pd.DataFrame  # the long frame of this report's runs (one profile)
    runs: pd.DataFrame  # one row per run: select.choose_hparams(select.run_values(frame, rule))
    rule: str
    profile: str
    runs_dir: Path
    cells: pd.DataFrame  # tables.build_cells
    comparison: pd.DataFrame  # stats.adala_vs_adabelief
    matched: pd.DataFrame  # matched.compute_matched
    cross: CrossTask  # crosstask.cross_task: ranks, performance profile, time to target
    tuning: TuningView | None  # tuning.tuning_view: the runs of tuning sweeps and of the defaults track
    claims: Claims  # claims.claims_view: the paper's claims, tested


def compute(frame: pd.DataFrame, paper: pd.DataFrame, rule: str, profile: str, runs_dir: Path,
            expected_seeds: int | None = None) -> Results:
    """The report of the runs in `frame` under selection `rule`. The runs of a tuning sweep or of the defaults track
    make the tuning view, never a cell of Tables 2-4 (they are not the paper's as-run protocol). AdaLA's runs at a
    lookahead_weight below 1 (the fix the paper proposes) are never a table cell's either: only the claims view reads
    them."""
    marks = tuning_marks(frame)
    tuning = tuning_view(frame, marks)
    frame = frame[~frame["run"].isin(marks["run"])]
    fix = fix_rows(frame)
    tables = frame[~fix] if fix.any() else frame
    runs = choose_hparams(run_values(tables, rule))
    cells = build_cells(runs, paper, rule, expected_seeds)
    comparison = adala_vs_adabelief(runs, cells)
    return Results(
        frame=frame, runs=runs, rule=rule, profile=profile, runs_dir=Path(runs_dir), cells=cells,
        comparison=comparison, matched=compute_matched(tables, runs, rule), cross=cross_task(tables, runs, cells),
        tuning=tuning, claims=claims_view(frame, runs, comparison, rule),
    )
