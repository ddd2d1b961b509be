"""adala-report --explain TABLE/MODEL/OPTIMIZER: one table cell from its number back to its metrics lines.

Prints the selection rule, each averaged run with its chosen epoch, value and `metrics.jsonl:LINE`, the runs of
the chosen tag that were not averaged, the mean and sample-std arithmetic, and the paper's row in
paper_tables.csv with its line number.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pandas as pd

from adala_bench.catalog import OPTIMIZER_ORDER, TABLES, optimizer_label, optimizer_rows, table_family, table_tasks
from adala_bench.store import METRICS_FILE
from .format import exact, mean_std, signed
from .reference import PAPER_TABLES
from .results import Results
from .select import rule_description

SPELLING = "TABLE/MODEL/OPTIMIZER, e.g. table3/LSTM-2layer/adala"


class ExplainError(ValueError):
    """A cell that cannot be explained; the message says what is allowed."""


def parse_cell(spec: str, runs: pd.DataFrame) -> tuple[str, str, str]:
    """(table as the catalog spells it, task, optimizer) of 'table3/LSTM-2layer/adala'; table and model are
    matched without regard to case, the optimizer exactly as runs name it."""
    parts = spec.split("/")
    if len(parts) != 3 or not all(parts[:2]) or not parts[2]:
        raise ExplainError(f"--explain wants {SPELLING}; got {spec!r}")
    # A custom optimizer is named by its import path, which has no '/', so the split above is safe.
    table_name, model, optimizer = parts
    tables = {t.lower(): t for t in TABLES}
    table = tables.get(table_name.lower())
    if table is None:
        raise ExplainError(f"--explain: unknown table {table_name!r}; allowed: {', '.join(tables)}")
    tasks = {t.model.lower(): t for t in table_tasks(table)}
    task = tasks.get(model.lower())
    if task is None:
        allowed = ", ".join(t.model for t in tasks.values())
        raise ExplainError(f"--explain: {table.lower()} has no model {model!r}; allowed: {allowed}")
    known = list(OPTIMIZER_ORDER) + sorted(set(runs["optimizer"].astype(object)) - set(OPTIMIZER_ORDER))
    if optimizer not in known:
        raise ExplainError(f"--explain: unknown optimizer {optimizer!r}; allowed: {', '.join(known)}")
    return table, task.name, optimizer


def explain(results: Results, spec: str, reference_dir: Path) -> str:
    """The explanation of one cell; ExplainError for a cell that does not exist or has no runs."""
    table, task, optimizer = parse_cell(spec, results.runs)
    runs = results.runs
    mine = runs[(runs["task"] == task) & (runs["optimizer"] == optimizer)]
    family = table_family(table)
    model = next(t.model for t in table_tasks(table) if t.name == task)
    name = f"{table.lower()}/{model}/{optimizer}"
    if mine.empty:
        there = set(runs.loc[runs["task"] == task, "optimizer"].astype(object))
        present = [o for o in optimizer_rows(there) if o in there]
        raise ExplainError(f"--explain: {name} has no runs in {results.runs_dir} (profile {results.profile}); "
                           f"optimizers with runs there: {', '.join(present) if present else 'none'}")
    cell = results.cells[(results.cells["task"] == task) & (results.cells["optimizer"] == optimizer)].iloc[0]
    metric = family.metric
    lines = [
        f"{name}: {table[:5]} {table[5:]} ({family.title}), column {model} (task {task}), row "
        f"{optimizer_label(optimizer)} (optimizer {optimizer})",
        f"runs: {results.runs_dir}, profile {results.profile}",
        "",
        f"Selection rule `{results.rule}`: per run, {rule_description(family, results.rule)}.",
        "The cell averages the completed runs of one hparams tag, the one with the most completed seeds (ties: the "
        f"lexicographically first): {cell['hparams']}.",
    ]
    if cell["other_hparams"]:
        lines.append(f"Other tags, not averaged: {cell['other_hparams']}.")

    chosen = mine[mine["chosen"]].sort_values("seed")
    used = chosen[chosen["used"]]
    lines += ["", f"Runs averaged ({len(used)}), in seed order: {metric} at the chosen epoch, and its line:"]
    for run in used.itertuples():
        number, record = metrics_line(Path(run.run_dir), run.epoch)
        where = f"{os.path.join(run.run_dir, METRICS_FILE)}:{number}" if number else "(line not found)"
        extra = ""
        if family.val_metric and record and family.val_metric in record:
            extra = f", {family.val_metric} {exact(record[family.val_metric])}"
        lines.append(f"  seed {run.seed}: epoch {exact(run.epoch)}, {metric} {exact(run.value)}{extra}")
        lines.append(f"    {where}")
    left = chosen[~chosen["used"]]
    if len(left):
        lines += ["", "Runs of this tag not averaged:"]
        for run in left.itertuples():
            why = run.state if run.state != "completed" else f"completed without a {metric} value"
            reason = f" ({run.reason})" if isinstance(run.reason, str) and run.reason else ""
            lines.append(f"  seed {run.seed}: {why}{reason}: {run.run_dir}")
    lines += [""] + arithmetic(used["value"].to_numpy(dtype=float), cell)
    lines += [""] + paper_source(Path(reference_dir), table, model, optimizer, cell)
    return "\n".join(lines) + "\n"


def arithmetic(values, cell) -> list[str]:
    """The mean and the sample std (ddof=1) written out, and the table's rounded cell."""
    n = len(values)
    if n == 0:
        return [f"No completed run with a value: the cell is empty (flags: {cell['flags'] or 'none'})."]
    total = sum(float(v) for v in values)
    mean = total / n
    if n == 1:
        out = [f"mean = {exact(mean)} (one run)"]
    else:
        out = [f"mean = ({' + '.join(exact(v) for v in values)}) / {n} = {exact(total)} / {n} = "
               f"{exact(mean)}"]
    if n >= 2:
        squares = [(float(v) - mean) ** 2 for v in values]
        spread = sum(squares)
        std = math.sqrt(spread / (n - 1))
        terms = " + ".join(f"({exact(v)} − {exact(mean)})²" for v in values)
        out.append(f"sample std (ddof=1) = sqrt(({terms}) / ({n} − 1)) = sqrt({exact(spread)} / {n - 1}) = "
                   f"{exact(std)}")
    else:
        out.append("sample std (ddof=1): undefined for one run (shown as –)")
    out.append(f"table cell: {mean_std(cell['mean'], cell['std'], n)}; flags: {cell['flags'] or 'none'}")
    return out


def paper_source(reference_dir: Path, table: str, model: str, optimizer: str, cell) -> list[str]:
    """The paper's value of the cell and the line of paper_tables.csv it comes from."""
    path = reference_dir / PAPER_TABLES
    try:
        with open(path, newline="") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if number > 1 and row[:1] == [table] and len(row) > 5 and row[2] == model \
                        and row[3].lower() == optimizer:
                    out = [f"paper: {row[5]}, from {path} line {number}:", f"  {','.join(row)}"]
                    if math.isfinite(cell["mean"]):
                        out.append(f"diff = mean − paper = {exact(cell['mean'])} − {row[5]} = "
                                   f"{signed(cell['diff'])}")
                    return out
    except OSError as error:
        return [f"paper: {path} cannot be read ({error.strerror})"]
    return [f"paper: no value for this cell in {path}"]


def metrics_line(run_dir: Path, epoch: float) -> tuple[int | None, dict | None]:
    """The 1-based line of metrics.jsonl the report took `epoch` from (the last line logging that epoch: a resumed
    run may log an epoch twice and the loader keeps the last), and its record."""
    if epoch is None or not math.isfinite(epoch):
        return None, None
    found: tuple[int | None, dict | None] = (None, None)
    try:
        with open(run_dir / METRICS_FILE, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("epoch") == epoch:
                    found = (number, record)
    except OSError:
        pass
    return found
