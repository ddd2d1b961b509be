"""The report page, index.md and index.html, from one list of blocks (page.py), in the order a reader needs it:

    (a) the answer: AdaLA against AdaBelief in every cell, and what these runs can and cannot support
    (b) the cross-task view: ranks, the performance profile, time to AdaBelief's final value
    (c, d) Tables 2-4 beside the paper, each followed by its figures
    (e) the compute-matched view
    (f) what is missing or flagged, then the separate files (kept for scripts and LaTeX)

Every sentence that depends on the runs is computed from them: a partial sweep, one optimizer on a task, or no
runs at all still give a correct page that says what is missing.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from adala_bench.catalog import TABLES, TASKS, optimizer_label, optimizer_rows, table_family, table_tasks
from adala_bench.store import CONFIG_FILE
from .crosstask import COSTS, rank_table
from .figures import CROSS_FIGURES, X_AXES, figure_names
from .matched import matched_blocks
from .page import Block, Bullets, Heading, Image, Table, Text, to_html, to_markdown
from .results import Results
from .stats import COMPARISON_NOTE, comparison_flags, comparison_table, verdict
from .tables import missing_blocks, table_blocks

TITLE = "adala-bench report"
# Which files each line of the page's file list holds (the first matching prefix wins).
FILE_GROUPS = {
    "Tables 2-4 (Markdown, LaTeX; the CSVs name each cell's run directories and chosen epochs)": ("table",),
    "AdaLA against AdaBelief": ("adala_vs_adabelief",),
    "Cross-task view": ("ranks", "performance_", "time_to_target", "fig6", "fig7"),
    "Compute-matched view": ("compute_matched",),
    "Missing and flagged": ("missing",),
    "Figures": ("fig",),
    "lr search": ("search",),
    "Data": ("selected_runs", "runs"),
}
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
        blocks.append(Text("This run of adala-report wrote only the lr search (--search / --emit-best); "
                           "`adala-report` without them writes the tables, figures and this page in full."))
        return blocks + _files(files)
    blocks.append(Text(_scope(results)))
    blocks += _answer(results)
    blocks += _cross_task(results, figures, files)
    blocks += _tables(results, figures, x)
    blocks += matched_blocks(results.matched, results.rule, level=2)
    blocks += _missing(results, figures, notes)
    return blocks + _files(files)


# --- (a) the answer -------------------------------------------------------------------------------------------

def _scope(r: Results) -> str:
    runs = r.runs[r.runs["table"].notna()]
    states = runs["state"].astype(object)
    optimizers = runs["optimizer"].nunique()
    return (f"Runs in `{r.runs_dir}`, profile `{r.profile}`, selection rule `{r.rule}`: {len(runs)} runs "
            f"({int((states == 'completed').sum())} completed) of {optimizers} optimizer{_s(optimizers)} on "
            f"{runs['task'].nunique()} of the {len(TASKS)} tasks. Built from the run directories alone; index.html "
            "is this page with its figures inside, one file to copy anywhere and open in a browser.")


def _answer(r: Results) -> list[Block]:
    comparison = r.comparison
    verdicts = [verdict(row) for row in comparison.itertuples()]
    tally = {
        "AdaLA better": sum(v.startswith("AdaLA better") for v in verdicts),
        "AdaLA worse": sum(v.startswith("AdaLA worse") for v in verdicts),
        "inside the noise": sum(v.startswith("difference inside") for v in verdicts),
        "not testable (n < 2 on a side)": sum(v.startswith("not testable") for v in verdicts),
        "without runs of one or both": sum(v.startswith("no runs") for v in verdicts),
    }
    summary = ", ".join(f"{label} in {k}" for label, k in tally.items() if k)
    blocks: list[Block] = [
        Heading(2, "The answer: AdaLA against AdaBelief"),
        Text(f"Of the {len(comparison)} cells of Tables 2-4: {summary}."),
        comparison_table(comparison, with_std=True),
        Text(COMPARISON_NOTE),
    ]
    if flags := comparison_flags(comparison):
        blocks += [Text("Flags of these cells:"), Bullets(flags)]
    return blocks + [Heading(3, "What these runs can and cannot support"), Text(" ".join(_support(r)))]


def _support(r: Results) -> list[str]:
    """The sentences of the can/cannot paragraph, each from what the runs are."""
    runs = r.runs[r.runs["table"].notna()]
    chosen = runs[runs["chosen"].astype(bool)]
    cells, comparison = r.cells, r.comparison
    said: list[str] = []
    synthetic = _synthetic_count(chosen, r.profile)
    if synthetic:
        every = "All " if synthetic == len(chosen) and synthetic > 1 else ""
        said.append(f"{every}{_count(synthetic, 'run')} train{'s' if synthetic == 1 else ''} on synthetic data "
                    "(data.source=synthetic; profile smoke: random images and text in the official formats, "
                    "narrow networks, a few epochs): the numbers show the pipeline working and say nothing about "
                    "the optimizers on CIFAR-10 or Penn TreeBank.")
    if r.profile == "fast":
        said.append("Profile fast (bf16, channels_last or compile on) is not the paper's fp32 protocol: compare "
                    "with the paper's values with that in mind.")
    if (random := int((chosen["used"] & chosen["random_fid_weights"]).sum())):
        said.append(f"The FIDs of {_count(random, 'run')} come from an Inception network with random weights: "
                    "not a real FID, not comparable with the paper's Table 4 (only with each other).")
    both = comparison[(comparison["n_adala"] > 0) & (comparison["n_adabelief"] > 0)]
    testable = both[(both["n_adala"] >= 2) & (both["n_adabelief"] >= 2)]
    few = testable[(testable["n_adala"] < FEW_SEEDS) | (testable["n_adabelief"] < FEW_SEEDS)]
    if len(both) > len(testable):
        said.append(f"In {_count(len(both) - len(testable), 'cell')} one side has a single run: no CI there.")
    if len(few):
        said.append(f"In {_count(len(few), 'cell')} a side has fewer than {FEW_SEEDS} seeds: too few for a 95% CI "
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
        listed = ", ".join(f"{state} {k}" for state, k in states.items())
        one = len(unfinished) == 1
        said.append(f"{_count(len(unfinished), 'run')} did not complete ({listed}): "
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
        said.append(f"What they can support: the verdicts of the {_count(len(testable), 'cell')} with at least two "
                    "runs on each side, under this protocol and these seeds.")
    else:
        said.append("They support no AdaLA-against-AdaBelief verdict yet: no cell has at least two runs of both.")
    return said


def _synthetic_count(chosen: pd.DataFrame, profile: str) -> int:
    """Runs trained on synthetic data: every smoke run, and any other whose config says data.source=synthetic."""
    if profile == "smoke" or chosen.empty:
        return len(chosen)
    return sum(_data_source(Path(d)) == "synthetic" for d in chosen["run_dir"].astype(str))


def _data_source(run_dir: Path) -> str | None:
    """data.source from config.yaml, by a line scan (OmegaConf writes `data:` at the top level, then `  source:`)."""
    try:
        lines = (run_dir / CONFIG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    inside = False
    for line in lines:
        if not line.startswith(" "):
            inside = line.rstrip() == "data:"
        elif inside and line.startswith("  source:"):
            return line.partition(":")[2].strip()
    return None


# --- (b) the cross-task view ----------------------------------------------------------------------------------

def _cross_task(r: Results, figures: set[str] | None, files: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Across the tasks")]
    n = len(r.tasks)
    if not n:
        return blocks + [Text("No task has a completed run: nothing to compare across tasks.")]
    models = [TASKS[t].model for t in r.tasks]
    blocks.append(Text(f"Over the {_count(n, 'task')} these runs cover ({', '.join(models)}; of {len(TASKS)}), "
                       f"from the cell means of Tables 2-4 (rule `{r.rule}`)."))
    used = r.runs[r.runs["used"].astype(bool)]
    random = [TASKS[t].model for t in r.tasks if (used.loc[used["task"] == t, "random_fid_weights"]).any()]
    if random:
        blocks.append(Text(f"Flagged: the FIDs of {', '.join(random)} come from random Inception weights, not a "
                           "real FID; they rank the optimizers against each other only."))
    blocks += _ranks(r)
    blocks += _profile(r, figures)
    blocks += _time_to_target(r, figures)
    csvs = [f"[{name}]({name})" for name in ("ranks.csv", "performance_profile.csv", "performance_ratios.csv",
                                             "time_to_target.csv") if name in files]
    if csvs:
        blocks.append(Text("As CSV: " + ", ".join(csvs) + "."))
    return blocks


def _ranks(r: Results) -> list[Block]:
    table = rank_table(r.ranks)
    models = [c for c in table.columns if c not in ("optimizer", "label", "mean_rank", "tasks")]
    ranked = r.ranks.groupby("model")["ranked"].first()
    header = ["Optimizer"] + [f"{m} (of {ranked[m]})" for m in models] + ["mean rank", "tasks"]
    rows = [[row["label"]] + [_g(row[m]) for m in models] + [_f(row["mean_rank"], ".2f"), str(row["tasks"])]
            for _, row in table.iterrows()]
    contested = [m for m in models if ranked[m] >= 2]
    blocks: list[Block] = [Heading(3, "Ranks"), Table(header, rows),
                           Text("Rank 1 = the best cell mean on that task (ties share the mean of their ranks); "
                                "(of k): the optimizers with a value there. Mean rank over the tasks with two or "
                                "more optimizers that the optimizer has a value on; tasks = how many.")]
    full = table[table["tasks"] == len(contested)] if contested else table.iloc[:0]
    if len(full) > 1:
        best = full["mean_rank"].min()
        winners = [row.label for row in full.itertuples() if math.isclose(row.mean_rank, best)]
        blocks.append(Text(f"Lowest mean rank over the {_count(len(contested), 'task')} with two or more "
                           f"optimizers, among the {len(full)} that ran on all of them: **{' and '.join(winners)}** "
                           f"({best:.2f})."))
    partial = table[table["tasks"] < len(contested)]
    if len(partial):
        blocks.append(Text("Mean ranks over different tasks do not compare: " + "; ".join(
            f"{row.label} has values on {row.tasks} of {len(contested)}" for row in partial.itertuples()) + "."))
    alone = [m for m in models if ranked[m] == 1]
    if alone:
        blocks.append(Text(f"One optimizer only, left out of the mean ranks (rank 1 there says nothing): "
                           f"{', '.join(alone)}."))
    return blocks


def _profile(r: Results, figures: set[str] | None) -> list[Block]:
    n = len(r.tasks)
    costs = "; ".join(f"{metric}: {COSTS[metric][0]}" for metric in dict.fromkeys(r.ratios["metric"]))
    blocks: list[Block] = [Heading(3, "Performance profile")]
    blocks += _image(figures, CROSS_FIGURES["profile"],
                     f"Performance profile over {_count(n, 'task')}: the fraction of tasks on which each optimizer's "
                     "value lies within a factor τ of the best.")
    blocks.append(Text(f"AlgoPerf's summary. Each cell mean becomes a cost, lower is better ({costs}); its ratio "
                       "is the cost over the best cost on the task (1 = the best). ρ(τ) = the fraction of the "
                       f"{_count(n, 'task')} whose ratio is at most τ; a task an optimizer has no value on never "
                       "counts for it."))
    models = [TASKS[t].model for t in r.tasks]
    by = r.ratios.set_index(["optimizer", "model"])["ratio"]
    header = ["Optimizer"] + [f"{m} ratio" for m in models] + ["ρ(1): best on", "ρ(1.1): within 10%"]
    rows = []
    for optimizer in [c for c in r.performance.columns if c != "tau"]:
        ratios = [by.get((optimizer, m), math.nan) for m in models]
        within = [sum(x <= tau for x in ratios if np.isfinite(x)) for tau in (1.0, 1.1)]
        rows.append([optimizer_label(optimizer)] + [_f(x, ".3f") for x in ratios]
                    + [f"{k} of {n}" for k in within])
    return blocks + [Table(header, rows)]


def _time_to_target(r: Results, figures: set[str] | None) -> list[Block]:
    ttt = r.time_to_target
    blocks: list[Block] = [Heading(3, "Time to AdaBelief's final value")]
    blocks += _image(figures, CROSS_FIGURES["time_to_target"],
                     "Gradient evaluations and wall time to first reach AdaBelief's final value, as a multiple of "
                     "AdaBelief's own (1 = as fast; × = no run reached it; k/n = only k of n runs did).")
    blocks.append(Text(
        "What AdaLA's second gradient per step must pay for. Target: AdaBelief's final value on the task (the mean, "
        "over the runs its cell averages, of the metric at each run's last logged epoch; GANs: `fid`, with "
        "`fid_curve` on the earlier epochs). For each optimizer's runs, the first epoch at or past the target; "
        "epoch, gradient evaluations (AdaLA counts 2 per step) and wall seconds are means over the runs that reach "
        "it; reached = how many did, of n."))
    if ttt.empty:
        return blocks + [Text("No task has a completed AdaBelief run, so there is no target.")]
    present = set(ttt["optimizer"])
    optimizers = [o for o in optimizer_rows(present) if o in present]
    by = ttt.set_index(["task", "optimizer"])
    targets = ttt.groupby("task", sort=False)["target"].first()
    rows = []
    for task, target in targets.items():
        row = [TASKS[task].model, _f(target, ".2f")]
        row += [_reach(by.loc[(task, o)]) if (task, o) in by.index else "–" for o in optimizers]
        rows.append(row)
    blocks += [Text("Each optimizer's cell: gradient evaluations (× AdaBelief's) · wall seconds (× AdaBelief's) · "
                    "runs that reached the target / runs."),
               Table(["Model", "target"] + [optimizer_label(o) for o in optimizers], rows)]
    blocks.append(Text(_adala_pays(r)))
    targetless = [TASKS[t].model for t in r.tasks if t not in set(ttt["task"])]
    if targetless:
        blocks.append(Text(f"No target (no completed AdaBelief run): {', '.join(targetless)}."))
    return blocks


def _reach(row) -> str:
    """One time-to-target cell: 'evals (×ratio) · s (×ratio) · k/n', or 'not reached · 0/n'."""
    if row["reached"] == 0:
        return f"not reached · 0/{row['n']}"
    return (f"{_f(row['grad_evals'], '.0f')} ({_times(row['grad_evals_vs_adabelief'])}) · "
            f"{_f(row['wall_s'], '.1f')} s ({_times(row['wall_s_vs_adabelief'])}) · {row['reached']}/{row['n']}")


def _adala_pays(r: Results) -> str:
    """One sentence: on how many tasks AdaLA reached the target, and at what cost relative to AdaBelief."""
    ttt = r.time_to_target
    adala = ttt[ttt["optimizer"] == "adala"]
    if adala.empty:
        return "AdaLA has no run on a task with a target."
    reached = adala[adala["reached"] > 0]
    text = (f"AdaLA reached AdaBelief's final value on {len(reached)} of {_count(len(adala), 'task')} "
            f"(with every run on {int((adala['reached'] == adala['n']).sum())})")
    ratios = {what: reached[f"{what}_vs_adabelief"].to_numpy(dtype=float) for what in ("grad_evals", "wall_s")}
    parts = [f"{_geomean(v):.2f}× AdaBelief's {label}" for (what, v), label in
             zip(ratios.items(), ("gradient evaluations", "wall time")) if np.isfinite(v).any()]
    if parts:
        text += "; where it did, it needed " + " and ".join(parts) + " (geometric mean over those tasks)"
    return text + "."


def _geomean(values: np.ndarray) -> float:
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(values).mean())) if len(values) else math.nan


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
                blocks += _image(figures, names[task.name + "_samples"],
                                 f"{task.model}: samples of the final generator, first seed of each optimizer.")
                blocks += _image(figures, names[task.name],
                                 f"{task.model}: final FID of every run (points), their mean (bar), the paper's "
                                 "value (cross).")
            else:
                blocks += _image(figures, names[task.name],
                                 f"{task.model}: {_CAPTIONS[family.name]} against {X_AXES[x]}, mean ± std over "
                                 "the runs each cell averages.")
    return blocks


def _image(figures: set[str] | None, stem: str, caption: str) -> list[Block]:
    return [Image(stem + ".png", caption)] if figures is not None and stem + ".png" in figures else []


# --- (f) missing and flagged, the files -----------------------------------------------------------------------

def _missing(r: Results, figures: set[str] | None, notes: list[str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "What is missing or flagged")]
    if untouched := [t.model for name, t in TASKS.items() if name not in r.tasks]:
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


# --- formatting -----------------------------------------------------------------------------------------------

def _s(k: int) -> str:
    return "" if k == 1 else "s"


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}{_s(k)}"


def _f(x, spec: str) -> str:
    return "–" if x is None or not np.isfinite(x) else format(float(x) + 0.0, spec)


def _g(x) -> str:
    """A rank: 1, 2, 1.5; '–' where none."""
    return "–" if not np.isfinite(x) else f"{x:g}"


def _times(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"×{x:.2f}"

