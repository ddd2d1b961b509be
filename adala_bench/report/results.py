"""Everything the report computes from the runs, computed once: the files, the page and --explain read it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .crosstask import covered_tasks, performance_profile, profile_ratios, ranks, time_to_target
from .matched import compute_matched
from .stats import adala_vs_adabelief
from .tables import build_cells


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
    ranks: pd.DataFrame  # crosstask.ranks (long)
    ratios: pd.DataFrame  # crosstask.profile_ratios
    tasks: list[str]  # the tasks the cross-task view covers
    performance: pd.DataFrame  # crosstask.performance_profile
    time_to_target: pd.DataFrame  # crosstask.time_to_target


def compute(frame: pd.DataFrame, runs: pd.DataFrame, paper: pd.DataFrame, rule: str, profile: str, runs_dir: Path,
            expected_seeds: int | None = None) -> Results:
    cells = build_cells(runs, paper, rule, expected_seeds)
    ratios = profile_ratios(cells)
    tasks = covered_tasks(cells)
    return Results(
        frame=frame, runs=runs, rule=rule, profile=profile, runs_dir=Path(runs_dir), cells=cells,
        comparison=adala_vs_adabelief(runs, cells), matched=compute_matched(frame, runs, rule), ranks=ranks(cells),
        ratios=ratios, tasks=tasks, performance=performance_profile(ratios, len(tasks)),
        time_to_target=time_to_target(frame, runs),
    )
