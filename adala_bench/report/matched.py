"""Compute-matched view: each optimizer seen for the same number of gradient evaluations, and the same wall time.

AdaLA pays two gradient evaluations per step, so per-epoch curves flatter it. Per task the budget B is the
smallest final grad_evals (or wall_s) among the optimizers, each optimizer's final value being the minimum over
the runs its table cell averages. Every such run is cut at B and the selection rule is applied to what is left.
"""
from __future__ import annotations

import math

import pandas as pd

from adala_bench.catalog import TASKS, optimizer_label, optimizer_rows
from .format import mean_std, number
from .page import Block, Heading, Table, Text, to_markdown
from .select import run_values

BUDGETS = {"grad_evals": "gradient evaluations", "wall_s": "wall seconds"}
MATCHED_COLUMNS = [
    "task", "model", "metric", "optimizer", "label", "n", "full_mean", "full_std",
    *[f"{kind}_{part}" for kind in BUDGETS for part in ("final", "budget", "mean", "std", "n")],
]


def compute_matched(frame: pd.DataFrame, runs: pd.DataFrame, rule: str) -> pd.DataFrame:
    """One row per (task, optimizer) with a used run: the full-run value and the value within each budget."""
    used = runs[runs["used"]]
    cells = used.groupby(["task", "optimizer"], observed=True)
    rows = {}
    for (task, optimizer), values in cells["value"]:
        mean, std, n = _summary(values)
        rows[(task, optimizer)] = {
            "task": task, "model": TASKS[task].model, "metric": TASKS[task].family.metric,
            "optimizer": optimizer, "label": optimizer_label(optimizer), "n": n, "full_mean": mean, "full_std": std,
        }
    for kind in BUDGETS:
        final = cells[f"final_{kind}"].min()
        budget = final.groupby(level="task", observed=True).min()
        cut = run_values(_within_budget(frame, used, kind, budget), rule)
        for (task, optimizer), row in rows.items():
            mean, std, n = _summary(cut.loc[(cut["task"] == task) & (cut["optimizer"] == optimizer), "value"])
            row.update({f"{kind}_final": final.get((task, optimizer), math.nan),
                        f"{kind}_budget": budget.get(task, math.nan),
                        f"{kind}_mean": mean, f"{kind}_std": std, f"{kind}_n": n})
    order = {name: i for i, name in enumerate(optimizer_rows(used["optimizer"].astype(object).unique()))}
    task_order = {name: i for i, name in enumerate(TASKS)}
    keys = sorted(rows, key=lambda k: (task_order[k[0]], order[k[1]]))
    return pd.DataFrame([rows[k] for k in keys], columns=MATCHED_COLUMNS)


def _summary(values: pd.Series) -> tuple[float, float, int]:
    """Mean, sample std (NaN below two values) and count of the non-NaN values."""
    values = values.dropna()
    n = len(values)
    return (float(values.mean()) if n else math.nan, float(values.std(ddof=1)) if n >= 2 else math.nan, n)


def _within_budget(frame: pd.DataFrame, used: pd.DataFrame, kind: str, budget: pd.Series) -> pd.DataFrame:
    """The used runs' rows with `kind` at most their task's budget (rows without `kind` are dropped)."""
    rows = frame[frame["run"].isin(used["run"])]
    limit = rows["task"].astype(object).map(budget).to_numpy(dtype=float)
    return rows[rows[kind].to_numpy(dtype=float) <= limit]


MATCHED_NOTE = (
    "Per task, every optimizer is cut at the same budget: the smallest final number of gradient evaluations "
    "(AdaLA counts 2 per step) and, separately, the smallest final wall time among the optimizers; the "
    "selection rule is then applied to each run's curve up to the budget. Mean ± sample std over the runs "
    "the table cell averages. '–' where no value was measured within the budget (e.g. FID only at the end)."
)


def matched_blocks(matched: pd.DataFrame, rule: str, level: int = 2) -> list[Block]:
    blocks: list[Block] = [Heading(level, f"Compute-matched view (rule `{rule}`)"), Text(MATCHED_NOTE)]
    if matched.empty:
        return blocks + [Text("No completed runs.")]
    header = ["Optimizer", "full run", "final grad evals", "at grad-eval budget", "final wall s",
              "at wall-time budget"]
    for task, part in matched.groupby("task", sort=False):
        first = part.iloc[0]
        rows = [[r.label, mean_std(r.full_mean, r.full_std, r.n), number(r.grad_evals_final, ".0f"),
                 mean_std(r.grad_evals_mean, r.grad_evals_std, r.grad_evals_n), number(r.wall_s_final, ".1f"),
                 mean_std(r.wall_s_mean, r.wall_s_std, r.wall_s_n)] for r in part.itertuples()]
        blocks += [
            Heading(level + 1, f"{first['model']} ({task}, {first['metric']})"),
            Text(f"Budgets: {number(first['grad_evals_budget'], '.0f')} gradient evaluations, "
                 f"{number(first['wall_s_budget'], '.1f')} s wall time."),
            Table(header, rows),
        ]
    return blocks


def render_matched_markdown(matched: pd.DataFrame, rule: str) -> str:
    return to_markdown(matched_blocks(matched, rule))
