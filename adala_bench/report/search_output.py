"""What the lr search writes (search.py chooses): search.md (page blocks, rendered by page.py), search.csv, and
the --emit-best file of adala-train override lines."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from adala_bench.catalog import TASKS, optimizer_label
from .format import MISSING, number, times
from .page import Block, Bullets, Heading, Table, Text, to_markdown
from .search import setting_number
from .select import check_rule

NOTES = [
    "clean: the lr whose mean, over its completed seeds, of the best validation value over epochs (max val_acc on "
    "the held-out training images of data.val_size, min val_ppl on PTB's valid.txt) is best. paper rule: the lr "
    "whose mean of the best test value over epochs is best (selected on the test set, as the reference did); shown "
    "for comparison only. Ties: the smaller lr. An lr with a diverged run is never picked. agree: both rules pick "
    "the same lr.",
    "lr: optimizer.lr from the config.yaml of one of the tag's runs, the exact value the run trained with.",
    "as run: the lr this suite's conf/hparams gives the (task, optimizer), the value the tables' runs use (the "
    "paper's as-run value, PROTOCOL §4); ×as run: the lr divided by it (×1: as run). Custom optimizers have none.",
    "lr is searched everywhere; eps only for AdaBelief and AdaLA on PTB (search_ptb_eps: the AdaBelief authors' "
    "own eps differs per depth, 1e-16 / 1e-12), and where a cell's tags differ in eps its choices read \"lr X, eps "
    "Y\". Every other hyperparameter is as run. Flags: no validation metric (CIFAR-10 runs without "
    "data.val_size), unfinished or failed runs (the choice may still change), diverged settings, tags that differ "
    "in more than lr and eps, and seeds that differ between settings.",
    "The values are from the search's runs (CIFAR-10: 45,000 training images), not the tables' numbers: re-run the "
    "clean choice on the full training set (adala-report --emit-best) and report those runs.",
]


EMIT_HEADER = """\
# adala-report --emit-best: one line of adala-train overrides per (task, optimizer), the lr the {rule} rule chose
# {how}
# from the search runs in {runs} (profile {profile}). Lines starting with # are comments; skip them.
# Re-run each choice on the full training set (data.val_size=0) with the paper's seeds, apart from the table runs:
#   grep -v '^#' {file} | while read -r line; do
#     adala-train --multirun $line seed=0,1,2 data.val_size=0 results.root=results/tuned </dev/null; done
#   adala-report --runs results/tuned --out results/report-tuned
"""
_HOW = {
    "clean": "(the best mean over seeds of the best validation value over epochs; the test set is never looked at)",
    "paper": "(the best mean over seeds of the best TEST value over epochs: selected on the test set, as the "
             "reference did)",
}


def emit_best(cells: pd.DataFrame, rule: str, runs: str | Path, profile: str, file: str | Path) -> str:
    """The text of the --emit-best file: the header, then one line per cell with a choice under `rule` (cells
    must come from search_table(..., rule)); a cell without one gets a comment line saying why."""
    check_rule(rule)
    lines = EMIT_HEADER.format(rule=rule, how=_HOW[rule], runs=runs, profile=profile, file=file).splitlines()
    for cell in cells.itertuples():
        if cell.line:
            lines.append(cell.line)
        else:
            why = cell.flags or "no completed run with a value"
            lines.append(f"# {cell.task} {cell.optimizer}: no {rule} choice: {why}")
    if cells.empty:
        lines.append("# no CIFAR-10 or PTB runs found")
    return "\n".join(lines) + "\n"


# --- search.md ------------------------------------------------------------------------------------------------------

def search_blocks(cells: pd.DataFrame, tags: pd.DataFrame, profile: str = "paper") -> list[Block]:
    """search.md as page blocks: per task, each optimizer's choices under both rules, then every setting tried."""
    blocks: list[Block] = [Heading(1, "lr search")]
    if cells.empty:
        return blocks + [Text("No CIFAR-10 or PTB runs found (the search covers the tasks with a validation "
                              "metric).")]
    blocks.append(Text(f"Runs of profile `{profile}`. Per (task, optimizer): the lr each rule picks among the "
                       "searched ones. `clean` selects on validation and is the one to use; `paper rule` (test-set "
                       "selection) is shown for comparison."))
    for task in dict.fromkeys(cells["task"]):
        family = TASKS[task].family
        val, test = family.val_metric, family.metric
        choices = [[optimizer_label(c.optimizer), setting_number(c.as_run_lr), str(c.n_tags),
                    _with_eps(c.clean_lr, c.clean_eps), times(c.clean_ratio, ".3g"), _value(c.clean_val, c.clean_n),
                    _with_eps(c.paper_lr, c.paper_eps), times(c.paper_ratio, ".3g"), _value(c.paper_test, c.paper_n),
                    c.agree, c.flags] for c in cells[cells["task"] == task].itertuples()]
        tried = [[optimizer_label(t.optimizer), setting_number(t.lr), setting_number(t.eps), times(t.ratio, ".3g"),
                  str(t.runs), str(t.completed), str(t.diverged), _value(t.val, t.val_n), _value(t.test, t.test_n),
                  t.picked_by, f"`{t.hparams}`"] for t in tags[tags["task"] == task].itertuples()]
        blocks += [
            Heading(2, f"{TASKS[task].model} ({task})"),
            Table(["Optimizer", "as run", "n tried", "clean lr", "×as run", f"mean best {val} (n)", "paper-rule lr",
                   "×as run", f"mean best {test} (n)", "agree", "flags"], choices, align="l" + "r" * 8 + "ll"),
            Text("Every setting tried:"),
            Table(["Optimizer", "lr", "eps", "×as run", "runs", "completed", "diverged", f"mean best {val} (n)",
                   f"mean best {test} (n)", "picked by", "hparams"], tried, align="l" + "r" * 8 + "ll"),
        ]
    return blocks + [Text("Notes:"), Bullets(NOTES)]


def _with_eps(lr: float, eps: float) -> str:
    """The chosen lr, and its eps where the cell's search varied eps (eps is NaN otherwise)."""
    return setting_number(lr) + (f", eps {setting_number(eps)}" if math.isfinite(eps) else "")


def _value(x: float, n: int) -> str:
    return f"{number(x)} (n={n})" if math.isfinite(x) else MISSING


def write_search(cells: pd.DataFrame, tags: pd.DataFrame, out: Path, profile: str = "paper") -> list[Path]:
    """search.md and search.csv in `out`, from search_table's (cells, tags)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.md").write_text(to_markdown(search_blocks(cells, tags, profile)))
    cells.to_csv(out / "search.csv", index=False)
    return [out / "search.md", out / "search.csv"]
