"""The report page, index.md and index.html, from one list of blocks (page.py), in the order a reader needs it:

    (a) the answer: AdaLA against AdaBelief in every cell, and what these runs can and cannot support
    (a') the paper's claims, tested: stability, speed, cost and the fix the paper proposes
    (b) the cross-task view: ranks, the performance profile, time to AdaBelief's final value
    (c, d) Tables 2-4 beside the paper, each followed by its figures
    (e) the compute-matched view
    (f) what is missing or flagged, then the separate files (kept for scripts and LaTeX)

Every sentence that depends on the runs is computed from them: a partial sweep, one optimizer on a task, or no
runs at all still give a correct page that says what is missing.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from adala_bench.catalog import TABLES, TASKS, table_family, table_tasks
from adala_bench.records import read_run
from .claims import claims_blocks
from .crosstask import crosstask_blocks
from .figures import X_AXES, figure_names
from .format import count
from .matched import matched_blocks
from .page import Block, Bullets, Heading, Text, figure, to_html, to_markdown
from .results import Results
from .stats import COMPARISON_NOTE, comparison_table, flag_blocks, tally
from .tables import missing_blocks, table_blocks
from .tuning_output import tuning_blocks

TITLE = "adala-bench report"
# Which files each line of the page's file list holds (the first matching prefix wins).
FILE_GROUPS = {
    "Tables 2-4 (Markdown, LaTeX; the CSVs name each cell's run directories and chosen epochs)": ("table",),
    "AdaLA against AdaBelief": ("adala_vs_adabelief",),
    "The paper's claims": ("claims", "instability", "fig8"),
    "Cross-task view": ("ranks", "performance_", "time_to_target", "fig6", "fig7"),
    "Compute-matched view": ("compute_matched",),
    "Missing and flagged": ("missing",),
    "Figures": ("fig",),
    "lr search": ("search",),
    "Tuning at an equal budget": ("tuning",),
    "Data": ("selected_runs", "runs"),
}
CROSS_TASK_FILES = ("ranks.csv", "performance_profile.csv", "performance_ratios.csv", "time_to_target.csv")
FEW_SEEDS = 3  # below this many runs per side a 95% CI rests on one or two degrees of freedom


def write_page(blocks: list[Block], out: Path) -> list[Path]:
    """index.md and index.html (figures embedded) in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.md").write_text(to_markdown(blocks))
    (out / "index.html").write_text(to_html(blocks, out, TITLE))
    return [out / "index.md", out / "index.html"]


def page_blocks(results: Results | None, figures: set[str] | None, notes: list[str], files: list[str],
                x: str = "epoch") -> list[Block]:
    """The page. `figures`: the file names of the figures drawn (None: figures were not asked for); `notes`: what
    was not drawn; `files`: the other files written beside the page; `x`: the curves' x axis."""
    blocks: list[Block] = [Heading(1, TITLE)]
    if results is None:
        blocks.append(Text("This run of adala-report wrote only the lr search or the tuning view (--search, "
                           "--emit-best, --tuning); `adala-report` without them writes the tables, figures and this "
                           "page in full."))
        return blocks + _files(files)
    blocks.append(Text(_scope(results)))
    blocks += _answer(results)
    blocks += claims_blocks(results.claims, results.rule, figures)
    blocks += crosstask_blocks(results.cross, results.rule, figures)
    if results.cross.tasks and (csvs := [f"[{name}]({name})" for name in CROSS_TASK_FILES if name in files]):
        blocks.append(Text("As CSV: " + ", ".join(csvs) + "."))
    blocks += _tables(results, figures, x)
    blocks += matched_blocks(results.matched, results.rule, level=2)
    if results.tuning is not None:
        blocks += tuning_blocks(results.tuning, figures, level=2)
    blocks += _missing(results, figures, notes)
    return blocks + _files(files)


# --- (a) the answer -------------------------------------------------------------------------------------------

def _scope(r: Results) -> str:
    runs = r.runs[r.runs["table"].notna()]
    states = runs["state"].astype(object)
    optimizers = runs["optimizer"].nunique()
    return (f"Runs in `{r.runs_dir}`, profile `{r.profile}`, selection rule `{r.rule}`: {len(runs)} runs "
            f"({int((states == 'completed').sum())} completed) of {count(optimizers, 'optimizer')} on "
            f"{runs['task'].nunique()} of the {len(TASKS)} tasks. Built from the run directories alone; index.html "
            "is this page with its figures inside, one file to copy anywhere and open in a browser."
            + (f" The {count(int(r.tuning.trials['runs'].sum()), 'run')} of tuning sweeps and the defaults track are "
               "in the tuning view below, not in Tables 2-4." if r.tuning is not None else ""))


def _answer(r: Results) -> list[Block]:
    return ([Heading(2, "The answer: AdaLA against AdaBelief"), Text(tally(r.comparison)),
             comparison_table(r.comparison, with_std=True), Text(COMPARISON_NOTE)]
            + flag_blocks(r.comparison, r.cells)
            + [Heading(3, "What these runs can and cannot support"), Text(" ".join(_support(r)))])


def _support(r: Results) -> list[str]:
    """The sentences of the can/cannot paragraph, each from what the runs are."""
    runs = r.runs[r.runs["table"].notna()]
    chosen = runs[runs["chosen"].astype(bool)]
    cells, comparison = r.cells, r.comparison
    said: list[str] = []
    synthetic = _synthetic_count(chosen, r.profile)
    if synthetic:
        every = "All " if synthetic == len(chosen) and synthetic > 1 else ""
        said.append(f"{every}{count(synthetic, 'run')} train{'s' if synthetic == 1 else ''} on synthetic data "
                    "(data.source=synthetic; profile smoke: random images and text in the official formats, "
                    "narrow networks, a few epochs): the numbers show the pipeline working and say nothing about "
                    "the optimizers on CIFAR-10 or Penn TreeBank.")
    if r.profile == "fast":
        said.append("Profile fast (bf16, channels_last or compile on) is not the paper's fp32 protocol: compare "
                    "with the paper's values with that in mind.")
    if (random := int((chosen["used"] & chosen["random_fid_weights"]).sum())):
        said.append(f"The FIDs of {count(random, 'run')} come from an Inception network with random weights: "
                    "not a real FID, not comparable with the paper's Table 4 (only with each other).")
    both = comparison[(comparison["n_adala"] > 0) & (comparison["n_adabelief"] > 0)]
    testable = both[(both["n_adala"] >= 2) & (both["n_adabelief"] >= 2)]
    few = testable[(testable["n_adala"] < FEW_SEEDS) | (testable["n_adabelief"] < FEW_SEEDS)]
    if len(both) > len(testable):
        said.append(f"In {count(len(both) - len(testable), 'cell')} one side has a single run: no CI there.")
    if len(few):
        said.append(f"In {count(len(few), 'cell')} a side has fewer than {FEW_SEEDS} seeds: too few for a 95% CI "
                    "to mean much (one or two degrees of freedom); run more seeds before reading the verdicts.")
    empty = cells[cells["n"] == 0]
    if len(empty):
        per_table = "; ".join(f"{t[:5]} {t[5:]}: {int((empty['table'] == t).sum())} of "
                              f"{int((cells['table'] == t).sum())}" for t in TABLES)
        said.append(f"The sweep is partial: {len(empty)} of the {len(cells)} table cells have no completed run "
                    f"({per_table}); AdaLA and AdaBelief both have runs on {len(both)} of the "
                    f"{len(comparison)} tasks.")
    unfinished = chosen[chosen["state"].astype(object) != "completed"]
    if len(unfinished):
        states = unfinished["state"].astype(object).value_counts()
        listed = ", ".join(f"{k} {state}" for state, k in states.items())
        one = len(unfinished) == 1
        said.append(f"{count(len(unfinished), 'run')} did not complete ({listed}): "
                    f"{'its cell averages' if one else 'their cells average'} the completed runs only and "
                    f"{'is' if one else 'are'} flagged (see What is missing or flagged).")
    if r.rule == "paper":
        said.append("Rule `paper` takes each CIFAR-10 and PTB run's best test value over epochs, selected on the "
                    "test set as the paper did: optimistic for every optimizer alike (`--rule clean` for the final "
                    "or best-validation value).")
    if len(testable) > 1:
        said.append(f"Each verdict is one Welch test at the 5% level; over {len(testable)} cells a false "
                    "'better' or 'worse' is not unlikely.")
    if synthetic:
        said.append("What they can support: that every station of the pipeline, from training to this page, works.")
    elif len(testable):
        said.append(f"What they can support: the verdicts of the {count(len(testable), 'cell')} with at least two "
                    "runs on each side, under this protocol and these seeds.")
    else:
        said.append("They support no AdaLA-against-AdaBelief verdict yet: no cell has at least two runs of both.")
    return said


def _synthetic_count(chosen: pd.DataFrame, profile: str) -> int:
    """Runs trained on synthetic data: every smoke run, and any other whose config says data.source=synthetic."""
    if profile == "smoke" or chosen.empty:
        return len(chosen)
    return sum(read_run(d).data_source == "synthetic" for d in chosen["run_dir"].astype(str))


# --- (c, d) Tables 2-4 and their figures -----------------------------------------------------------------------

_CAPTIONS = {"cifar10": "test accuracy (%)", "ptb": "test perplexity"}


def _tables(r: Results, figures: set[str] | None, x: str) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Tables 2-4 beside the paper"),
        Text("Every number traces to its runs: each row of table2.csv, table3.csv and table4.csv names the run "
             "directories it averages and the epoch chosen in each, and `adala-report --explain table3/LSTM-2layer/"
             "adala` (table, model column, optimizer) prints one cell's runs, their metrics.jsonl lines and the "
             "arithmetic."),
    ]
    if figures is None:
        blocks.append(Text("Figures were not drawn in this report (`--what tables`)."))
    names = figure_names()
    for table in TABLES:
        blocks += table_blocks(r.cells, table, level=3)
        family = table_family(table)
        for task in table_tasks(table):
            if family.name == "gan":
                blocks += figure(figures, names[task.name + "_samples"],
                                 f"{task.model}: samples of the final generator, first seed of each optimizer.")
                blocks += figure(figures, names[task.name],
                                 f"{task.model}: final FID of every run (points), their mean (bar), the paper's "
                                 "value (cross).")
            else:
                blocks += figure(figures, names[task.name],
                                 f"{task.model}: {_CAPTIONS[family.name]} against {X_AXES[x]}, mean ± std over "
                                 "the runs each cell averages.")
    return blocks


# --- (f) missing and flagged, the files -----------------------------------------------------------------------

def _missing(r: Results, figures: set[str] | None, notes: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "What is missing or flagged")]
    if untouched := [t.model for name, t in TASKS.items() if name not in r.cross.tasks]:
        blocks.append(Text(f"Tasks without a completed run (left out of the cross-task view): "
                           f"{', '.join(untouched)}."))
    runs = r.runs[r.runs["table"].notna()]
    chosen = runs[runs["chosen"].astype(bool)]
    bad = chosen[chosen["state"].astype(object) != "completed"]
    if len(bad):
        blocks += [Text("Runs not averaged (not completed):"), Bullets(
            [f"{row.task} / {row.optimizer} / seed {row.seed}: {row.state}"
             + (f" ({row.reason})" if isinstance(row.reason, str) and row.reason else "") + f": `{row.run_dir}`"
             for row in bad.itertuples()])]
    blocks += missing_blocks(r.cells, r.runs, level=3, compact=True)
    if notes:
        blocks += [Text("Figures not drawn:"), Bullets(notes)]
    return blocks


def _files(files: list[str]) -> list[Block]:
    shown = [f for f in files if not f.startswith("index.")]
    lines = []
    taken: set[str] = set()
    for group, prefixes in FILE_GROUPS.items():
        members = [f for f in shown if f not in taken and f.split(".")[0].startswith(prefixes)]
        taken.update(members)
        if members:
            lines.append(f"{group}: " + ", ".join(f"[{f}]({f})" for f in members))
    rest = [f for f in shown if f not in taken]
    if rest:
        lines.append("Other: " + ", ".join(f"[{f}]({f})" for f in rest))
    if not lines:
        return []
    return [Heading(2, "Files"), Text("The same results as separate files, for scripts and LaTeX:"), Bullets(lines)]
