"""Tables 2-4: one cell per (table, model column, optimizer), rendered as Markdown, LaTeX (booktabs) and CSV.

A cell averages the runs of one hparams tag (the tag with most completed seeds; ties -> lexicographically first).
Its mean and sample std (ddof=1) are over completed runs with a value only: runs in any other state (records.py:
diverged, running, interrupted, not started, unreadable) are never averaged; they, and seeds short of the expected
count, flag the cell, each state by its name.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from adala_bench.catalog import TABLES, optimizer_label, optimizer_rows, table_family, table_tasks
from adala_bench.records import STATES
from .page import Block, Bullets, Heading, Table, Text, to_markdown
from .select import rule_description

CELL_COLUMNS = [
    "table", "task", "model", "optimizer", "label", "metric", "rule", "hparams", "n", "seeds", "expected",
    "mean", "std", "paper", "diff", "flags", "other_hparams",
    # What the mean is made of, so a reader can go from a number to its runs: the averaged runs' directories, the
    # epoch the rule chose in each and its value, semicolon-joined in seed order (adala-report --explain CELL).
    "run_dirs", "epochs", "values",
    # The profile the cell's runs were trained under (paper, fast, smoke): a report tabulates one.
    "profile",
]
# A cell of another profile than the paper's is never beside the paper's value without saying so.
PROFILE_FLAGS = {
    "smoke": "profile smoke: synthetic data and tiny networks, not comparable with the paper's value",
    "fast": "profile fast: bf16, channels_last and compile, not the paper's fp32 protocol",
}
_FLAGGED_STATES = tuple(state for state in STATES if state != "completed")

CELL_RULE_NOTE = (
    "Cells: mean ± sample std (ddof = 1) over the completed seeds of one hparams tag (n = seeds averaged); "
    "the tag is the one with most completed seeds (ties: lexicographically first). Runs that are not completed "
    "(diverged, running, interrupted, not started, unreadable) are never averaged: their cells are flagged. paper = the AdaLA paper's value; "
    "diff = mean − paper."
)


def build_cells(
    runs: pd.DataFrame, paper: pd.DataFrame, rule: str, expected_seeds: int | None = None
) -> pd.DataFrame:
    """All cells of Tables 2-4 in paper order. `runs` is select.choose_hparams(select.run_values(frame, rule));
    `rule` is recorded in each cell."""
    groups = {key: g for key, g in runs.groupby(["task", "optimizer"], observed=True)}
    paper_of = {(p.table, p.model, p.optimizer): p.value for p in paper.itertuples()}
    cells = []
    for table in TABLES:
        family = table_family(table)
        tasks = table_tasks(table)
        present = runs.loc[runs["task"].isin([t.name for t in tasks]), "optimizer"].astype(object).unique()
        table_cells = [
            _cell(table, task, optimizer, groups.get((task.name, optimizer)), rule)
            for optimizer in optimizer_rows(present)
            for task in tasks
        ]
        expected = expected_seeds or max((c["seeds"] for c in table_cells), default=0)
        for c in table_cells:
            c["expected"] = expected
            if c["seeds"] and c["seeds"] < expected:
                c["flags"].append(f"missing seeds:{expected - c['seeds']}")
            c["paper"] = paper_of.get((table, c["model"], c["optimizer"]), math.nan)
            c["diff"] = c["mean"] - c["paper"]
            c["flags"] = ", ".join(c["flags"])
            c["metric"] = family.metric
        cells.extend(table_cells)
    return pd.DataFrame(cells, columns=CELL_COLUMNS)


def _cell(table: str, task, optimizer: str, runs: pd.DataFrame | None, rule: str) -> dict:
    cell = {
        "table": table, "task": task.name, "model": task.model, "optimizer": optimizer,
        "label": optimizer_label(optimizer), "rule": rule, "hparams": "", "n": 0, "seeds": 0,
        "mean": math.nan, "std": math.nan, "flags": [], "other_hparams": "", "run_dirs": "", "epochs": "",
        "values": "", "profile": "",
    }
    if runs is None or runs.empty:
        cell["flags"].append("no runs")
        return cell
    chosen = runs[runs["chosen"]]
    used = chosen[chosen["used"]].sort_values("seed")
    values = used["value"].to_numpy(dtype=float)
    cell.update(
        hparams=str(chosen["hparams"].iloc[0]),
        n=len(values),
        seeds=chosen["seed"].nunique(),
        mean=float(values.mean()) if len(values) else math.nan,
        std=float(values.std(ddof=1)) if len(values) >= 2 else math.nan,
        run_dirs=";".join(used["run_dir"].astype(str)),
        epochs=";".join(number_text(e) for e in used["epoch"]),
        values=";".join(number_text(v) for v in values),
        profile=str(chosen["profile"].iloc[0]) if "profile" in chosen else "paper",
    )
    if cell["profile"] != "paper":
        cell["flags"].append(PROFILE_FLAGS.get(cell["profile"], f"profile {cell['profile']}: not the paper's protocol"))
    states = chosen["state"].astype(object)
    for state in _FLAGGED_STATES:
        if (count := int((states == state).sum())):
            cell["flags"].append(f"{state}:{count}")
    if (no_value := int(((states == "completed") & chosen["value"].isna()).sum())):
        cell["flags"].append(f"no value:{no_value}")
    if (random_weights := int((chosen["used"] & chosen["random_fid_weights"]).sum())):
        cell["flags"].append(f"random Inception weights, not a real FID:{random_weights}")
    others = runs[~runs["chosen"]]
    completed = (others["state"].astype(object) == "completed").groupby(others["hparams"].astype(object)).sum()
    cell["other_hparams"] = "; ".join(f"{tag} ({k} completed)" for tag, k in completed.items())
    return cell


def number_text(x: float) -> str:
    """A logged number exactly (shortest round-trip repr), integers without '.0'."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


# --- formatting --------------------------------------------------------------------------------------------

def _number(x: float, dash: str, signed: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return dash
    x = round(float(x), 2) + 0.0  # no "-0.00"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _mean_std(cell, pm: str, dash: str, n_format: str) -> str:
    if cell.n == 0:
        return dash
    return f"{_number(cell.mean, dash)} {pm} {_number(cell.std, dash)} {n_format.format(n=cell.n)}"


def _notes(cells: pd.DataFrame) -> tuple[dict[tuple[str, str], int], list[str], list[str], list[str]]:
    """Footnote number per flagged (optimizer, model) cell that has runs, the footnote lines, a line per
    optimizer listing its models without runs, and the other-hparams lines."""
    markers, flagged, other = {}, [], []
    empty: dict[str, list[str]] = {}
    for cell in cells.itertuples():
        if cell.flags == "no runs":
            empty.setdefault(cell.label, []).append(cell.model)
        elif cell.flags:
            markers[(cell.optimizer, cell.model)] = len(markers) + 1
            flagged.append(f"[{len(markers)}] {cell.label} / {cell.model}: {cell.flags}")
        if cell.other_hparams:
            other.append(f"{cell.label} / {cell.model}: used {cell.hparams}; not used: {cell.other_hparams}")
    no_runs = [f"{label} ({', '.join(models)})" for label, models in empty.items()]
    return markers, flagged, no_runs, other


def _caption(table: str, rule: str, expected: int) -> tuple[str, list[str]]:
    family = table_family(table)
    title = f"{table[:5]} {table[5:]}. {family.title}, rule `{rule}`"
    rule_note = f"Value per run, rule `{rule}`: {rule_description(family, rule)}."
    return title, [CELL_RULE_NOTE, rule_note, f"Expected seeds per cell: {expected}."]


def table_blocks(cells: pd.DataFrame, table: str, level: int = 2) -> list[Block]:
    """One table as page blocks: its title, the cells beside the paper's values, the notes and the flags."""
    cells = cells[cells["table"] == table]
    rule = cells["rule"].iloc[0]
    models = [t.model for t in table_tasks(table)]
    markers, flagged, no_runs, other = _notes(cells)
    title, notes = _caption(table, rule, int(cells["expected"].iloc[0]))
    header = ["Optimizer"] + [h for m in models for h in (m, "paper", "diff")]
    by_key = {(c.optimizer, c.model): c for c in cells.itertuples()}
    rows = []
    for optimizer in dict.fromkeys(cells["optimizer"]):
        row = [optimizer_label(optimizer)]
        for model in models:
            cell = by_key[(optimizer, model)]
            text = _mean_std(cell, "±", "–", "(n={n})")
            if (optimizer, model) in markers:
                text += f" [{markers[(optimizer, model)]}]"
            row += [text, _number(cell.paper, "–"), _number(cell.diff, "–", signed=True)]
        rows.append(row)
    blocks: list[Block] = [Heading(level, title), Table(header, rows)] + [Text(n) for n in notes]
    if flagged:
        blocks += [Text("Flagged cells:"), Bullets(flagged)]
    if no_runs:
        blocks.append(Text("No runs (–): " + "; ".join(no_runs) + "."))
    if other:
        blocks += [Text("Cells with runs of other hparams tags:"), Bullets(other)]
    return blocks


def render_markdown(cells: pd.DataFrame, table: str) -> str:
    return to_markdown(table_blocks(cells, table))


_LATEX_SPECIAL = re.compile(r"([\\&%$#_{}~^])")


def latex_escape(text: str) -> str:
    def replace(match: re.Match) -> str:
        char = match.group(1)
        return {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}.get(
            char, "\\" + char
        )

    return _LATEX_SPECIAL.sub(replace, text).replace("−", "$-$").replace("±", r"$\pm$")


def render_latex(cells: pd.DataFrame, table: str) -> str:
    cells = cells[cells["table"] == table]
    rule = cells["rule"].iloc[0]
    models = [t.model for t in table_tasks(table)]
    markers, flagged, no_runs, other = _notes(cells)
    title, notes = _caption(table, rule, int(cells["expected"].iloc[0]))
    by_key = {(c.optimizer, c.model): c for c in cells.itertuples()}
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + latex_escape(title.replace("`", "")) + "}",
        r"\label{tab:" + table.lower() + "}",
        r"\begin{tabular}{l" + " rrr" * len(models) + "}",
        r"\toprule",
        " & ".join([""] + [r"\multicolumn{3}{c}{" + latex_escape(m) + "}" for m in models]) + r" \\",
        " ".join(rf"\cmidrule(lr){{{2 + 3 * i}-{4 + 3 * i}}}" for i in range(len(models))),
        " & ".join(["Optimizer"] + [r"mean $\pm$ std (n) & paper & diff"] * len(models)) + r" \\",
        r"\midrule",
    ]
    for optimizer in dict.fromkeys(cells["optimizer"]):
        row = [latex_escape(optimizer_label(optimizer))]
        for model in models:
            cell = by_key[(optimizer, model)]
            text = _mean_std(cell, r"$\pm$", "--", "({n})")
            if (optimizer, model) in markers:
                text += rf"\textsuperscript{{{markers[(optimizer, model)]}}}"
            diff = _number(cell.diff, "--", signed=True)
            row += [text, _number(cell.paper, "--"), diff if diff == "--" else f"${diff}$"]
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "", r"\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
    lines += [latex_escape(n.replace("`", "")) + r"\par" for n in notes]
    lines += [latex_escape(f) + r"\par" for f in flagged]
    if no_runs:
        lines.append(latex_escape("No runs (--): " + "; ".join(no_runs) + ".") + r"\par")
    lines += [latex_escape("Other hparams tags: " + o) + r"\par" for o in other]
    lines += [r"\end{minipage}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def missing_blocks(cells: pd.DataFrame, runs: pd.DataFrame, level: int = 2, compact: bool = False) -> list[Block]:
    """What each table lacks: cells without runs, flagged cells, unused hparams tags, runs of unknown tasks.
    `compact`: the cells without runs one line per optimizer, not one per cell."""
    blocks: list[Block] = []
    if runs.empty:
        blocks.append(Text("No run directories were found."))
    for table in TABLES:
        part = cells[cells["table"] == table]
        no_runs = part[part["flags"] == "no runs"]
        flagged = part[(part["flags"] != "") & (part["flags"] != "no runs")]
        other = part[part["other_hparams"] != ""]
        blocks.append(Heading(level, f"{table[:5]} {table[5:]} ({table_family(table).title})"))
        if no_runs.empty and flagged.empty and other.empty:
            blocks.append(Text("Complete: every cell has its expected seeds, all completed."))
            continue
        if not no_runs.empty:
            if compact:
                models = no_runs.groupby("label", sort=False)["model"].agg(", ".join)
                lines = [f"{label}: {names}" for label, names in models.items()]
            else:
                lines = [f"{c.label} / {c.model}" for c in no_runs.itertuples()]
            blocks += [Text(f"No runs ({len(no_runs)} cells):"), Bullets(lines)]
        if not flagged.empty:
            blocks += [Text("Flagged (averaged over completed runs only):"),
                       Bullets([f"{c.label} / {c.model}: {c.flags} (n = {c.n})" for c in flagged.itertuples()])]
        if not other.empty:
            blocks += [Text("Runs of other hparams tags, not in the table:"),
                       Bullets([f"{c.label} / {c.model}: used {c.hparams}; not used: {c.other_hparams}"
                                for c in other.itertuples()])]
    unknown = runs[runs["table"].isna()]
    if not unknown.empty:
        counts = unknown.groupby(unknown["task"].astype(object)).size()
        blocks += [Heading(level, "Runs of tasks outside Tables 2-4 (ignored)"),
                   Bullets([f"{task}: {k} runs" for task, k in counts.items()])]
    return blocks


def render_missing(cells: pd.DataFrame, runs: pd.DataFrame) -> str:
    return to_markdown([Heading(1, "Missing and flagged")] + missing_blocks(cells, runs))
