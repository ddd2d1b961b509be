"""What the tuning view writes (tuning.py computes it): its page blocks (in tuning.md, and in the report's page when
the runs hold tuning runs), tuning.csv (the curves, per task, optimizer and budget k), tuning_trials.csv (every trial
and defaults-track setting), tuning_adala_vs_adabelief.csv, and two figures per task: the expected best validation
value against the budget, and the validation value against lr."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from adala_bench.catalog import TASKS, optimizer_label
from adala_bench.search_space import DEFAULTS, TUNED
from .figures import colour, save
from .format import count, signed, unbounded
from .page import Block, Bullets, Heading, Table, Text, figure, to_markdown
from .stats import verdict
from .tuning import BOOTSTRAP, TuningView, present, worst

FIGURES = {"expected_best": "tuning_expected_best_{}", "lr": "tuning_lr_{}"}
SHOWN_BUDGETS = (1, 4)  # and K, the whole budget
NOTES = [
    "Trials: every optimizer gets the same K points of one scrambled Sobol sequence (scipy.stats.qmc, fixed seed), "
    "each mapped into its own search space (conf/spaces/: lr log-uniform over the as-run lr × [0.1, 10]; eps "
    "log-uniform over [1e-16, 1e-6] for Adam, AdamW, RAdam, AdaBound, AdaBelief and AdaLA). A trial's value is the "
    "mean over its seeds of each run's best validation value over epochs (val_acc on the held-out training images "
    "of data.val_size, val_ppl on PTB's valid.txt; GANs: the final FID, the reported metric itself: optimistic for "
    "every optimizer alike).",
    "E[best of k]: the mean, over every k-subset of the K trials, of the best validation value in it, computed "
    "exactly from the sorted values (the i-th worst is the best of a k-subset with probability C(i−1, k−1)/C(K, k)); "
    "k = 1 is the mean over the trials, k = K the best. tuning.csv also gives Dodge et al.'s (2019) expected best "
    "of k draws WITH replacement (`with_replacement`).",
    "Test of the chosen trial: the expected test value (the `clean` rule's: at the best validation epoch; GANs: "
    "final FID) of the trial with the best validation value among k, over the same k-subsets (ties: the earlier "
    "trial). AdaLA − AdaBelief compares these at equal k, and on the defaults track (package defaults, untuned; "
    "Welch's CI over the seeds, as in the answer above).",
    f"Bands and CIs: 2.5% and 97.5% quantiles of {BOOTSTRAP:,} bootstrap resamples of the seeds (the same draws for "
    "every optimizer of a task); none with fewer than two seeds.",
    "A diverged run, or one that finished without a value, counts at the worst value the task allows: accuracy 0, "
    "perplexity and FID ∞ (so E[best of k] is ∞ while k trials can all be such). A trial not done on every seed is "
    "left out of the curves, and said.",
]


def _short(task: str) -> str:
    return task.split("_", 1)[1]


def figure_names(task: str) -> dict[str, str]:
    return {kind: name.format(_short(task)) for kind, name in FIGURES.items()}


# --- blocks -----------------------------------------------------------------------------------------------------

def tuning_blocks(view: TuningView | None, figures: set[str] | None, level: int = 2,
                  every_trial: bool = False) -> list[Block]:
    """The view as page blocks: per task its budgets table and figures, AdaLA against AdaBelief at equal budgets,
    the failed trials, the flags and the notes; `every_trial` adds each task's table of trials (tuning.md)."""
    blocks: list[Block] = [Heading(level, "Tuning at an equal budget")]
    if view is None:
        return blocks + [Text("No run of a tuning sweep or of the defaults track (conf/experiment/tune_*.yaml, "
                              "defaults_*.yaml) is among these runs.")]
    blocks.append(Text("Each optimizer tuned with the same number of trials K of its own search space, chosen on "
                       "validation, beside its package defaults (the defaults track, untuned). Per budget k: the "
                       "expected best validation value of k trials [bootstrap band], and the test value of the "
                       "trial it chooses."))
    for task in dict.fromkeys(view.trials["task"]):
        blocks += _task_blocks(view, task, figures, level + 1, every_trial)
    blocks += _comparison_blocks(view.comparison, level + 1)
    failed = view.trials[view.trials["diverged"] > 0]
    if len(failed):
        blocks += [Text("Failed trials (diverged, or finished without a value), counted at the task's worst value, "
                        "never dropped:"), Bullets([_failed(row) for row in failed.itertuples()])]
    return blocks + [Text("How these numbers are made:"), Bullets(NOTES)]


def _task_blocks(view: TuningView, task: str, figures: set[str] | None, level: int, every_trial: bool) -> list[Block]:
    family = TASKS[task].family
    names = figure_names(task)
    curves = view.curves[view.curves["task"] == task]
    trials = view.trials[view.trials["task"] == task]
    val = family.val_metric or family.metric
    blocks: list[Block] = [Heading(level, f"{TASKS[task].model} ({task})")]
    blocks += figure(figures, names["expected_best"],
                     f"{TASKS[task].model}: expected best {val} of k trials (band: bootstrap over seeds); at 0, the "
                     "package defaults.")
    rows = []
    for optimizer in present(trials["optimizer"]):
        mine = trials[trials["optimizer"] == optimizer]
        curve = curves[curves["optimizer"] == optimizer].set_index("k")
        defaults = mine[mine["track"] == DEFAULTS]
        k_max = int(curve["trials"].iloc[0]) if len(curve) else 0
        shown = sorted({k for k in (*SHOWN_BUDGETS, k_max) if 1 <= k <= k_max})
        rows.append([
            optimizer_label(optimizer), f"{k_max} ({int(curve['seeds'].iloc[0]) if len(curve) else 0})",
            unbounded(defaults["val"].mean()),
            "; ".join(f"k={k}: {_banded(curve.loc[k], 'expected_best_val', 'band')}" for k in shown) or "–",
            unbounded(defaults["test"].mean()),
            "; ".join(f"k={k}: {_banded(curve.loc[k], 'chosen_test', 'chosen_test')}" for k in shown) or "–",
            f"{int((mine['diverged'] > 0).sum())} of {len(mine)}",
            "; ".join(view.flags.get((task, optimizer), [])),
        ])
    blocks.append(Table(["Optimizer", "K (seeds)", f"defaults: {val}", f"E[best {val}] of k trials",
                         f"defaults: {family.metric}", f"{family.metric} of the chosen trial", "failed", "flags"],
                        rows, align="lrrrrrrl"))
    if view.flags.get((task, "")):
        blocks.append(Text("Flags of this task: " + "; ".join(view.flags[(task, "")]) + "."))
    blocks += figure(figures, names["lr"],
                     f"{TASKS[task].model}: {val} of each trial against its lr (mean over seeds, band: their range; "
                     "×: a failed trial; ★: the package defaults).")
    if every_trial:
        blocks += [Text("Every trial:"), _trial_table(trials, val, family.metric)]
    return blocks


def _banded(row, column: str, band: str) -> str:
    low, high = row[f"{band}_low"], row[f"{band}_high"]
    text = unbounded(row[column])
    return text if math.isnan(low) else f"{text} [{unbounded(low)}, {unbounded(high)}]"


def _trial_table(trials: pd.DataFrame, val: str, metric: str) -> Table:
    rows = [[optimizer_label(t.optimizer), str(t.trial) if t.track == TUNED else "defaults", f"{t.lr:.4g}",
             "–" if math.isnan(t.eps) else f"{t.eps:.3g}", str(t.runs), str(t.completed), str(t.diverged),
             f"{unbounded(t.val)} ({unbounded(t.val_min)}–{unbounded(t.val_max)})", unbounded(t.test),
             "yes" if t.used else "no", f"`{t.hparams}`"] for t in trials.itertuples()]
    return Table(["Optimizer", "trial", "lr", "eps", "runs", "completed", "failed", f"{val} (seed range)", metric,
                  "in the curves", "hparams"], rows, align="llrrrrrrrll")


def _comparison_blocks(comparison: pd.DataFrame, level: int) -> list[Block]:
    blocks: list[Block] = [Heading(level, "AdaLA against AdaBelief at equal budgets")]
    if comparison.empty:
        return blocks + [Text("No task has tuning or defaults-track runs of both.")]
    rows = []
    for task, rows_of_task in comparison.groupby("task", sort=False):
        budgets = [b for b in rows_of_task["budget"] if b == "defaults"]
        ks = [b for b in rows_of_task["budget"] if b != "defaults"]
        budgets += [k for k in ks if k in SHOWN_BUDGETS or k == max(ks)]
        for r in rows_of_task[rows_of_task["budget"].isin(budgets)].itertuples():
            ci = "" if r.ci_contains_zero is None else f" [{signed(r.ci_low)}, {signed(r.ci_high)}]"
            rows.append([r.model, "defaults" if r.budget == "defaults" else f"k={r.budget}",
                         f"{unbounded(r.adala)} ({r.n_adala})", f"{unbounded(r.adabelief)} ({r.n_adabelief})",
                         f"{_signed(r.diff)}{ci}", verdict(r)])
    return blocks + [
        Table(["Model", "budget", "AdaLA (seeds)", "AdaBelief (seeds)", "diff [95% CI]", "verdict"], rows,
              align="llrrrl"),
        Text("diff = AdaLA − AdaBelief of the test value of the trial chosen on validation among k (defaults: of "
             "the package-defaults runs); every budget k in tuning_adala_vs_adabelief.csv."),
    ]


def _signed(x: float) -> str:
    return "+∞" if x == math.inf else "−∞" if x == -math.inf else signed(x)


def _failed(row) -> str:
    where = f"trial {row.trial}" if row.track == TUNED else "defaults"
    eps = "" if math.isnan(row.eps) else f", eps {row.eps:.3g}"
    at = unbounded(worst(TASKS[row.task].family.higher_is_better))
    return (f"{row.task} / {optimizer_label(row.optimizer)} / {where} (lr {row.lr:.4g}{eps}): {row.diverged} of "
            f"{count(row.runs, 'run')} failed, counted at {at}")


# --- files and figures ----------------------------------------------------------------------------------------

def write_tuning(view: TuningView | None, out: Path, draw: bool = True) -> tuple[list[Path], set[str], list[str]]:
    """tuning.md, the three CSVs and (when `draw`) the figures in `out`: (files written, figure files drawn, notes
    on the figures not drawn)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, notes = [], []
    if view is not None and draw:
        for task in dict.fromkeys(view.trials["task"]):
            names = figure_names(task)
            save({names["expected_best"]: (expected_best_figure(view, task), f"{task}: no trial done on every seed"),
                  names["lr"]: (lr_figure(view, task), f"{task}: no tuned trial done")}, out, written, notes)
    drawn = {path.name for path in written}
    if view is not None:
        for name, frame in (("tuning.csv", view.curves), ("tuning_trials.csv", view.trials),
                            ("tuning_adala_vs_adabelief.csv", view.comparison)):
            frame.to_csv(out / name, index=False)
            written.append(out / name)
    (out / "tuning.md").write_text(to_markdown(tuning_blocks(view, drawn if draw else None, level=1,
                                                             every_trial=True)))
    return written + [out / "tuning.md"], drawn, notes


def _axes():
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def expected_best_figure(view: TuningView, task: str) -> Figure | None:
    """E[best validation value of k trials] against k per optimizer, its bootstrap band, the defaults at k = 0."""
    curves = view.curves[view.curves["task"] == task]
    if curves.empty:
        return None
    family = TASKS[task].family
    fig, ax = _axes()
    off_scale = []
    for optimizer in present(curves["optimizer"]):
        curve = curves[curves["optimizer"] == optimizer]
        finite = np.isfinite(curve["expected_best_val"].to_numpy(dtype=float))
        if not finite.all():
            off_scale.append(optimizer_label(optimizer))
        ax.plot(curve["k"][finite], curve["expected_best_val"][finite], color=colour(optimizer), lw=1.5, marker=".",
                label=f"{optimizer_label(optimizer)} (K={curve['trials'].iloc[0]})")
        band = finite & np.isfinite(curve[["band_low", "band_high"]].to_numpy(dtype=float)).all(axis=1)
        ax.fill_between(curve["k"][band], curve["band_low"][band], curve["band_high"][band], color=colour(optimizer),
                        alpha=0.15, lw=0)
        defaults = curve["defaults_val"].iloc[0]
        if np.isfinite(defaults):
            ax.plot([0], [defaults], color=colour(optimizer), marker="*", ms=9, ls="")
    k_max = int(curves["k"].max())
    ticks = sorted({1, k_max, *range(max(1, k_max // 8), k_max + 1, max(1, k_max // 8))})
    ax.set_xticks([0, *ticks], ["defaults", *map(str, ticks)])
    ax.set_xlabel("trials k (of the same Sobol points for every optimizer)")
    ax.set_ylabel(f"expected best {family.val_metric or family.metric}")
    better = "higher" if family.higher_is_better else "lower"
    title = f"{TASKS[task].model}: expected best of k trials ({better} is better)"
    if off_scale:
        title += f"\n∞ (off the plot) at small k: {', '.join(off_scale)}"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", marker="*", ls="", ms=9, label="package defaults"))
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def lr_figure(view: TuningView, task: str) -> Figure | None:
    """Each trial's validation value against its lr per optimizer (mean over seeds, their range as a band); a
    failed trial as × on the axis' worst edge; the defaults as ★."""
    trials = view.trials[(view.trials["task"] == task) & view.trials["lr"].notna()]
    tuned = trials[trials["track"] == TUNED]
    if tuned.empty:
        return None
    family = TASKS[task].family
    fig, ax = _axes()
    edge = 0.02 if family.higher_is_better else 0.98  # where on the y axis (axes fraction) a failed trial is marked
    for optimizer in present(trials["optimizer"]):
        mine = tuned[tuned["optimizer"] == optimizer].sort_values("lr")
        ok = mine[(mine["diverged"] == 0) & np.isfinite(mine["val"].to_numpy(dtype=float))]
        ax.plot(ok["lr"], ok["val"], color=colour(optimizer), lw=1.2, marker="o", ms=3,
                label=optimizer_label(optimizer))
        ax.fill_between(ok["lr"], ok["val_min"], ok["val_max"], color=colour(optimizer), alpha=0.15, lw=0)
        bad = mine[~mine.index.isin(ok.index)]
        ax.plot(bad["lr"], [edge] * len(bad), color=colour(optimizer), marker="x", ls="",
                transform=ax.get_xaxis_transform())
        defaults = trials[(trials["optimizer"] == optimizer) & (trials["track"] == DEFAULTS)]
        shown = defaults[np.isfinite(defaults["val"].to_numpy(dtype=float))]
        ax.plot(shown["lr"], shown["val"], color=colour(optimizer), marker="*", ms=9, ls="")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("lr")
    ax.set_ylabel(f"{family.val_metric or family.metric} (mean over seeds)")
    ax.set_title(f"{TASKS[task].model}: lr sensitivity of the tuning trials", fontsize=10)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", marker="x", ls="", label="failed trial"),
                Line2D([], [], color="0.3", marker="*", ls="", ms=9, label="package defaults")]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig
