"""Tables 2-4: one cell per (table, model column, optimizer), rendered as Markdown, LaTeX (booktabs) and CSV.

A cell averages the runs of one hparams tag (the tag with most completed seeds; ties -> lexicographically first).
Its mean and sample std (ddof=1) are over completed runs with a value only: runs in any other state (records.py:
diverged, running, interrupted, not started, unreadable) are never averaged; they, and seeds short of the expected
count, flag the cell, each state by its name and count ("1 run diverged"). A flag that every cell with runs carries
(the profile's, on a smoke or fast report) is said once under a table, not at every cell.
"""
from __future__ import annotations

import math
import re

import pandas as pd

from adala_bench.catalog import TABLES, optimizer_label, optimizer_rows, table_family, table_tasks
from adala_bench.records import STATES
from .format import count, exact, mean_std, number, signed
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
NO_RUNS = "no runs"  # the one flag of a cell without runs
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
    """All cells of Tables 2-4 in paper order: CELL_COLUMNS (the CSV), and `flag_list`, the cell's flags one by one
    (`flags` joins them), so that a view can say once what every cell carries. `runs` is
    select.choose_hparams(select.run_values(frame, rule)); `rule` is recorded in each cell."""
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
                c["flag_list"].append(f"{count(expected - c['seeds'], 'seed')} missing")
            c["paper"] = paper_of.get((table, c["model"], c["optimizer"]), math.nan)
            c["diff"] = c["mean"] - c["paper"]
            c["flag_list"] = tuple(c["flag_list"])
            c["flags"] = ", ".join(c["flag_list"])
            c["metric"] = family.metric
        cells.extend(table_cells)
    return pd.DataFrame(cells, columns=CELL_COLUMNS + ["flag_list"])


def _cell(table: str, task, optimizer: str, runs: pd.DataFrame | None, rule: str) -> dict:
    cell = {
        "table": table, "task": task.name, "model": task.model, "optimizer": optimizer,
        "label": optimizer_label(optimizer), "rule": rule, "hparams": "", "n": 0, "seeds": 0,
        "mean": math.nan, "std": math.nan, "flag_list": [], "other_hparams": "", "run_dirs": "", "epochs": "",
        "values": "", "profile": "",
    }
    flags = cell["flag_list"]
    if runs is None or runs.empty:
        flags.append(NO_RUNS)
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
        epochs=";".join(exact(e) for e in used["epoch"]),
        values=";".join(exact(v) for v in values),
        profile=str(chosen["profile"].iloc[0]) if "profile" in chosen else "paper",
    )
    if cell["profile"] != "paper":
        flags.append(PROFILE_FLAGS.get(cell["profile"], f"profile {cell['profile']}: not the paper's protocol"))
    states = chosen["state"].astype(object)
    for state in _FLAGGED_STATES:
        if (k := int((states == state).sum())):
            flags.append(f"{count(k, 'run')} {state}")
    if (no_value := int(((states == "completed") & chosen["value"].isna()).sum())):
        flags.append(f"{count(no_value, 'completed run')} without a value")
    if (random_weights := int((chosen["used"] & chosen["random_fid_weights"]).sum())):
        flags.append(f"random Inception weights in {count(random_weights, 'run')} (not a real FID)")
    others = runs[~runs["chosen"]]
    completed = (others["state"].astype(object) == "completed").groupby(others["hparams"].astype(object)).sum()
    cell["other_hparams"] = "; ".join(f"{tag} ({k} completed)" for tag, k in completed.items())
    return cell


def shared_flags(flag_lists: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The flags that every one of two or more flag lists carries (a view says them once); () otherwise."""
    if len(flag_lists) < 2:
        return ()
    return tuple(flag for flag in flag_lists[0] if all(flag in flags for flags in flag_lists[1:]))


def own_flags(cells: pd.DataFrame) -> tuple[list[str], list[tuple[object, str]]]:
    """What is said once of `cells` (['Every cell with runs: ...'] when they share flags, else []), and each cell
    with runs and flags of its own with those flags."""
    runs = cells[cells["flags"] != NO_RUNS]
    shared = shared_flags(list(runs["flag_list"]))
    own = [(cell, ", ".join(f for f in cell.flag_list if f not in shared)) for cell in runs.itertuples()]
    return [f"Every cell with runs: {', '.join(shared)}"] if shared else [], [(c, f) for c, f in own if f]


def _notes(cells: pd.DataFrame) -> tuple[dict[tuple[str, str], int], list[str], list[str], list[str]]:
    """Footnote number per (optimizer, model) cell with flags of its own, the footnote lines (after what every
    cell with runs carries), a line per optimizer listing its models without runs, and the other-hparams lines."""
    said_once, own = own_flags(cells)
    markers = {(cell.optimizer, cell.model): i for i, (cell, _) in enumerate(own, start=1)}
    notes = said_once + [f"[{i}] {cell.label} / {cell.model}: {flags}" for i, (cell, flags) in enumerate(own, start=1)]
    empty: dict[str, list[str]] = {}
    for cell in cells[cells["flags"] == NO_RUNS].itertuples():
        empty.setdefault(cell.label, []).append(cell.model)
    no_runs = [f"{label} ({', '.join(models)})" for label, models in empty.items()]
    other = [f"{c.label} / {c.model}: used {c.hparams}; not used: {c.other_hparams}"
             for c in cells.itertuples() if c.other_hparams]
    return markers, notes, no_runs, other


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
    markers, flag_notes, no_runs, other = _notes(cells)
    title, notes = _caption(table, rule, int(cells["expected"].iloc[0]))
    header = ["Optimizer"] + [h for m in models for h in (m, "paper", "diff")]
    by_key = {(c.optimizer, c.model): c for c in cells.itertuples()}
    rows = []
    for optimizer in dict.fromkeys(cells["optimizer"]):
        row = [optimizer_label(optimizer)]
        for model in models:
            cell = by_key[(optimizer, model)]
            text = mean_std(cell.mean, cell.std, cell.n)
            if (optimizer, model) in markers:
                text += f" [{markers[(optimizer, model)]}]"
            row += [text, number(cell.paper), signed(cell.diff)]
        rows.append(row)
    blocks: list[Block] = [Heading(level, title), Table(header, rows)] + [Text(n) for n in notes]
    if flag_notes:
        blocks += [Text("Flagged cells:"), Bullets(flag_notes)]
    if no_runs:
        blocks.append(Text("No runs (–): " + "; ".join(no_runs) + "."))
    if other:
        blocks += [Text("Cells with runs of other hparams tags:"), Bullets(other)]
    return blocks


def render_markdown(cells: pd.DataFrame, table: str) -> str:
    return to_markdown(table_blocks(cells, table))


def render_csv(cells: pd.DataFrame, table: str) -> str:
    """The table's cells, CELL_COLUMNS: each cell's flags joined, with its run directories, epochs and values."""
    return cells.loc[cells["table"] == table, CELL_COLUMNS].to_csv(index=False)


_LATEX_SPECIAL = re.compile(r"([\\&%$#_{}~^])")
LATEX_MISSING = "--"  # an en dash in LaTeX


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
    markers, flag_notes, no_runs, other = _notes(cells)
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
            text = mean_std(cell.mean, cell.std, cell.n, pm=r"$\pm$", n_text="({n})", missing=LATEX_MISSING)
            if (optimizer, model) in markers:
                text += rf"\textsuperscript{{{markers[(optimizer, model)]}}}"
            diff = signed(cell.diff, missing=LATEX_MISSING)
            row += [text, number(cell.paper, missing=LATEX_MISSING), diff if diff == LATEX_MISSING else f"${diff}$"]
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "", r"\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
    lines += [latex_escape(n.replace("`", "")) + r"\par" for n in notes]
    lines += [latex_escape(f) + r"\par" for f in flag_notes]
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
        no_runs = part[part["flags"] == NO_RUNS]
        said_once, own = own_flags(part)
        other = part[part["other_hparams"] != ""]
        blocks.append(Heading(level, f"{table[:5]} {table[5:]} ({table_family(table).title})"))
        if no_runs.empty and not said_once and not own and other.empty:
            blocks.append(Text("Complete: every cell has its expected seeds, all completed."))
            continue
        if not no_runs.empty:
            if compact:
                models = no_runs.groupby("label", sort=False)["model"].agg(", ".join)
                lines = [f"{label}: {names}" for label, names in models.items()]
            else:
                lines = [f"{c.label} / {c.model}" for c in no_runs.itertuples()]
            blocks += [Text(f"No runs ({len(no_runs)} cells):"), Bullets(lines)]
        if said_once or own:
            blocks += [Text("Flagged (averaged over completed runs only):"),
                       Bullets(said_once + [f"{c.label} / {c.model}: {flags} (n = {c.n})" for c, flags in own])]
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
