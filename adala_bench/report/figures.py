"""Figures: test-accuracy / test-perplexity curves (Figs. 1-2), GAN sample grids (Figs. 3-4), FID per optimizer,
the cross-task view's performance profile and time to target, and the claims view's value and oscillation against
AdaLA's lookahead_weight.

Curves show mean ± std over the runs each table cell averages, one colour per optimizer (colour-blind safe,
the same in every figure, custom optimizers included); published curves are overlaid dashed. The y range is that
of everything drawn (bands and published curves included) with a small margin; epoch axes have integer ticks.
Matplotlib's object API with the Agg canvas, so nothing depends on a display or on pyplot state.
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from adala_bench.catalog import FAMILIES, TASKS, optimizer_label, optimizer_rows
from adala_bench.store import SAMPLES_FILE as SAMPLES
from .claims import MIX_FIGURES, Claims
from .crosstask import CROSS_FIGURES, CrossTask
from .format import count

X_AXES = {"epoch": "epoch", "grad_evals": "gradient evaluations", "wall_s": "wall time (s)"}

# Okabe–Ito (AdaLA vermillion, AdaBelief blue) plus Paul Tol's wine and olive for the ninth and tenth rows (olive,
# not Tol's sand: sand is too light to see on white).
COLOURS = {
    "adala": "#D55E00", "adabelief": "#0072B2", "sgd": "#000000", "adam": "#E69F00", "adamw": "#56B4E9",
    "radam": "#009E73", "yogi": "#CC79A7", "msvag": "#882255", "adabound": "#999999", "fromage": "#999933",
}
# Optimizers outside the paper (custom ones): Paul Tol's colours that none of the above uses, picked by a stable
# hash of the name (crc32, not Python's per-process salted hash()), so a name has one colour in every figure and
# every report. Two custom names can share a colour.
_EXTRA_COLOURS = ("#332288", "#117733", "#44AA99", "#225555", "#AA4499", "#661100")
Y_MARGIN = 0.04  # of the y span, above and below everything drawn
PUBLISHED_STYLES = {"AdaBelief repo": "--", "AdaLA repo": ":"}
_METRIC_LABELS = {"test_acc": "test accuracy (%)", "test_ppl": "test perplexity", "fid": "FID"}


def colour(optimizer: str) -> str:
    """Fixed colour of an optimizer; names outside the paper get a stable colour from their name."""
    if optimizer in COLOURS:
        return COLOURS[optimizer]
    return _EXTRA_COLOURS[zlib.crc32(optimizer.encode()) % len(_EXTRA_COLOURS)]


def figure_names() -> dict[str, str]:
    """Base file name of every figure by task (curves, FID) and by task + '_samples' (sample grids)."""
    names = {}
    for task in TASKS.values():
        short = task.name.split("_", 1)[1]
        if task.family.name == "cifar10":
            names[task.name] = f"fig1_cifar10_test_acc_{short}"
        elif task.family.name == "ptb":
            names[task.name] = f"fig2_ptb_test_ppl_{short}"
        else:
            number = 3 if task.model == "WGAN" else 4
            names[task.name + "_samples"] = f"fig{number}_{short}_samples"
            names[task.name] = f"fig5_fid_{short}"
    return names


def curve_stats(frame: pd.DataFrame, runs: pd.DataFrame, task: str, x: str) -> pd.DataFrame:
    """Per optimizer and epoch over the used runs: mean x, mean and std of the metric, and n."""
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; allowed: {', '.join(X_AXES)}")
    metric = TASKS[task].family.metric
    used = runs.loc[runs["used"] & (runs["task"] == task), "run"]
    columns = ["optimizer", "epoch", "x", "mean", "std", "n"]
    if used.empty or metric not in frame:
        return pd.DataFrame(columns=columns)
    rows = frame.loc[frame["run"].isin(used), list(dict.fromkeys(["optimizer", "epoch", x, metric]))]
    rows = rows.dropna(subset=[metric, x])
    rows["optimizer"] = rows["optimizer"].astype(object)
    grouped = rows.groupby(["optimizer", "epoch"])
    stats = grouped.agg(x=(x, "mean"), mean=(metric, "mean"), std=(metric, "std"), n=(metric, "size"))
    return stats.reset_index()[columns]


def curve_figure(
    frame: pd.DataFrame, runs: pd.DataFrame, task: str, x: str, published: pd.DataFrame | None = None
) -> Figure | None:
    """Mean ± std curves of one task; None when it has no used run."""
    stats = curve_stats(frame, runs, task, x)
    if stats.empty:
        return None
    spec = TASKS[task]
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    handles, shown = [], []
    for optimizer in optimizer_rows(stats["optimizer"].unique()):
        curve = stats[stats["optimizer"] == optimizer]
        if curve.empty:
            continue
        (line,) = ax.plot(curve["x"], curve["mean"], color=colour(optimizer), lw=1.4,
                          label=f"{optimizer_label(optimizer)} (n={curve['n'].max()})")
        spread = curve["std"].fillna(0.0)
        ax.fill_between(curve["x"], curve["mean"] - spread, curve["mean"] + spread,
                        color=colour(optimizer), alpha=0.2, lw=0)
        shown += [curve["mean"] - spread, curve["mean"] + spread]
        handles.append(line)
    if published is not None and not covers_enough(stats, published, task):
        # A few epochs beside a 200-epoch curve would squash ours into a corner: the overlay is left out, and said.
        handles.append(Line2D([], [], color="none", label=f"published curves left out: these runs cover "
                                                         f"{int(stats['epoch'].max()) + 1} of "
                                                         f"{published_epochs(published, task)} epochs"))
    elif published is not None:
        overlaid = _overlay_published(ax, stats, published, task, x)
        shown += [values for _, _, values in overlaid]
        ours = set(stats["optimizer"])
        handles += [Line2D([], [], color=colour(o), lw=1.0, ls=PUBLISHED_STYLES.get(source, "--"),
                           label=f"{optimizer_label(o)} (published only)")
                    for o, source, _ in overlaid if o not in ours]
        handles += [Line2D([], [], color="0.3", lw=1.0, ls=PUBLISHED_STYLES.get(s, "--"), label=f"published ({s})")
                    for s in dict.fromkeys(source for _, source, _ in overlaid)]
    ax.set_xlabel(X_AXES[x])
    ax.set_ylabel(_METRIC_LABELS[spec.family.metric])
    ax.set_title(f"{spec.model}: {_METRIC_LABELS[spec.family.metric]}, mean ± std over seeds")
    _fit_y(ax, pd.concat(shown, ignore_index=True))
    if x == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


# The published curves are overlaid only where our runs cover at least this share of their epochs.
PUBLISHED_COVERAGE = 0.25


def published_epochs(published: pd.DataFrame, task: str) -> int:
    """How many epochs the task's published curves span (0 when there are none)."""
    epochs = published.loc[published["task"] == task, "epoch"]
    return int(epochs.max()) + 1 if len(epochs) else 0


def covers_enough(stats: pd.DataFrame, published: pd.DataFrame, task: str) -> bool:
    """Whether our runs cover enough of the published curves for an overlay to read right."""
    span = published_epochs(published, task)
    return span == 0 or (stats["epoch"].max() + 1) >= PUBLISHED_COVERAGE * span


def _overlay_published(ax, stats: pd.DataFrame, published: pd.DataFrame, task: str, x: str):
    """Draw the published curves of the task, dashed; returns (optimizer, source, values) of each one drawn.
    On the epoch axis as they are; on gradient evaluations through our runs of the same optimizer (their
    grad_evals at that epoch); not on wall time, which was not published."""
    if x == "wall_s":
        return []
    curves = published[(published["task"] == task) & (published["metric"] == TASKS[task].family.metric)]
    drawn = []
    for (optimizer, source), curve in curves.groupby(["optimizer", "source"], sort=False):
        xs = curve["epoch"] if x == "epoch" else curve["epoch"].map(
            stats[stats["optimizer"] == optimizer].set_index("epoch")["x"])
        keep = xs.notna()
        if not keep.any():
            continue
        ax.plot(xs[keep], curve["value"][keep], color=colour(optimizer), lw=1.0,
                ls=PUBLISHED_STYLES.get(source, "--"), alpha=0.9)
        drawn.append((optimizer, source, curve["value"][keep]))
    return drawn


def _fit_y(ax, values: pd.Series) -> None:
    """The y range of everything drawn (our means ± std, the published curves) with a small margin: no curve or band
    is cut off, whichever source reaches further."""
    values = values.to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return
    low, high = float(values.min()), float(values.max())
    margin = Y_MARGIN * (high - low) or max(abs(high) * 0.01, 1e-3)
    ax.set_ylim(low - margin, high + margin)


def sample_grid_figure(runs: pd.DataFrame, task: str) -> tuple[Figure | None, list[str]]:
    """samples/final.png of each optimizer's first chosen seed (completed runs first); notes on what is absent."""
    chosen = runs[runs["chosen"] & (runs["task"] == task)].copy()
    chosen["unfinished"] = chosen["state"].astype(object) != "completed"
    chosen = chosen.sort_values(["unfinished", "seed"])
    images, notes = [], []
    for optimizer in optimizer_rows(chosen["optimizer"].astype(object).unique()):
        candidates = chosen[chosen["optimizer"] == optimizer]
        if candidates.empty:
            continue
        paths = [Path(d, SAMPLES) for d in candidates["run_dir"].astype(str)]
        found = next((p for p in paths if p.is_file()), None)
        if found is None:
            notes.append(f"{task} / {optimizer}: no {SAMPLES} in any run")
            continue
        images.append((optimizer, imread(found)))
    if not images:
        return None, notes
    columns = min(5, len(images))
    rows = math.ceil(len(images) / columns)
    title = f"{TASKS[task].model}: samples of the final generator (first seed)"
    # At least as wide as the title needs (one image alone is narrower than its title).
    fig = Figure(figsize=(max(2.4 * columns, 0.09 * len(title) + 0.6), 2.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, (optimizer, image) in enumerate(images):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(image)
        ax.set_title(optimizer_label(optimizer), color=colour(optimizer), fontsize=10)
        ax.set_axis_off()
    fig.suptitle(title)
    return fig, notes


def fid_figure(runs: pd.DataFrame, paper: pd.DataFrame, task: str) -> Figure | None:
    """Final FID of every used run per optimizer (points), their mean (bar) and the paper's value (cross)."""
    used = runs[runs["used"] & (runs["task"] == task)]
    if used.empty:
        return None
    order = [o for o in optimizer_rows(used["optimizer"].astype(object).unique()) if (used["optimizer"] == o).any()]
    fig = Figure(figsize=(max(4.5, 1.0 + 0.8 * len(order)), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    paper_of = paper[paper["task"] == task].set_index("optimizer")["value"]
    for i, optimizer in enumerate(order):
        values = used.loc[used["optimizer"] == optimizer, "value"].to_numpy(dtype=float)
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + offsets, values, color=colour(optimizer), s=18, zorder=3)
        ax.hlines(values.mean(), i - 0.3, i + 0.3, color=colour(optimizer), lw=2.5)
        if optimizer in paper_of:
            ax.scatter([i], [paper_of[optimizer]], marker="x", color="0.25", s=40, zorder=4)
    ax.set_xticks(range(len(order)), [optimizer_label(o) for o in order], rotation=45, ha="right")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_ylabel("FID (final epoch)")
    random = int((used["random_fid_weights"]).sum()) if "random_fid_weights" in used else 0
    ax.set_title(f"{TASKS[task].model}: FID per run, bar = mean"
                 + (f"\nrandom Inception weights in {random} of {len(used)} runs: not a real FID" if random else ""),
                 color="firebrick" if random else "black")
    ax.legend(handles=[
        Line2D([], [], color="0.4", marker="o", ls="", label="run"),
        Line2D([], [], color="0.4", lw=2.5, label="mean"),
        Line2D([], [], color="0.25", marker="x", ls="", label="paper"),
    ], fontsize=7, frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return fig


def write_figures(
    frame: pd.DataFrame,
    runs: pd.DataFrame,
    paper: pd.DataFrame,
    out: Path,
    x: str = "epoch",
    published: pd.DataFrame | None = None,
) -> tuple[list[Path], list[str]]:
    """Every figure the runs allow, as PNG and PDF; returns the files written and notes on what was skipped."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = figure_names()
    written, notes = [], []
    for task, spec in TASKS.items():
        if spec.family.name == "gan":
            grid, grid_notes = sample_grid_figure(runs, task)
            notes += grid_notes
            figures = {names[task + "_samples"]: (grid, f"no {SAMPLES} in the runs of {task}"),
                       names[task]: (fid_figure(runs, paper, task), f"no completed run of {task} with a FID")}
        else:
            if published is not None and x != "wall_s":
                stats = curve_stats(frame, runs, task, x)
                if not stats.empty and not covers_enough(stats, published, task):
                    notes.append(f"{names[task]}: the published curves are left out: the runs cover "
                                 f"{int(stats['epoch'].max()) + 1} of {published_epochs(published, task)} epochs")
            figures = {names[task]: (curve_figure(frame, runs, task, x, published),
                                     f"no completed run of {task} with {spec.family.metric} and {x}")}
        save(figures, out, written, notes)
    return written, notes


def save(figures: dict[str, tuple[Figure | None, str]], out: Path, written: list[Path], notes: list[str]) -> None:
    """Each figure as PNG and PDF into `out` (appended to `written`); a figure that is None as a note saying why."""
    for name, (fig, why_not) in figures.items():
        if fig is None:
            notes.append(f"{name} not drawn: {why_not}")
            continue
        for suffix in (".png", ".pdf"):
            fig.savefig(out / (name + suffix), dpi=150)
            written.append(out / (name + suffix))


# --- the cross-task view -------------------------------------------------------------------------------------

def profile_figure(profile: pd.DataFrame, tasks: int) -> Figure | None:
    """The performance profile (crosstask.performance_profile) as step curves over a log tau axis; None when no
    optimizer has a value."""
    optimizers = [c for c in profile.columns if c != "tau"]
    if not optimizers:
        return None
    taus = profile["tau"].to_numpy(dtype=float)
    right = max(1.5, float(taus.max()) * 1.15)
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, optimizer in enumerate(o for o in optimizer_rows(optimizers) if o in optimizers):
        fractions = profile[optimizer].to_numpy(dtype=float)
        # Drawn to the right edge; each later curve a little thinner, so curves that coincide all stay visible.
        ax.step(np.r_[taus, right], np.r_[fractions, fractions[-1]], where="post", color=colour(optimizer),
                lw=max(1.0, 3.4 - 0.3 * i), label=optimizer_label(optimizer))
    ax.set_xscale("log")
    ax.set_xlim(1.0, right)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_ylim(-0.02, 1.06)
    ax.set_xlabel("τ: within this factor of the best value on the task (cost = error rate, perplexity, FID)")
    ax.set_ylabel(f"fraction of the {count(tasks, 'task')}")
    ax.set_title("Performance profile: higher and further left is better")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def time_to_target_figure(ttt: pd.DataFrame) -> Figure | None:
    """Per task, each optimizer's mean gradient evaluations and wall time to reach AdaBelief's final value, as a
    multiple of AdaBelief's own (log axis; 1 = as fast as AdaBelief); × where no run reached it, k/n over a bar
    where only k of its n runs did. None without a target."""
    if ttt.empty:
        return None
    models = list(dict.fromkeys(ttt["model"]))
    optimizers = [o for o in optimizer_rows(ttt["optimizer"].unique()) if (ttt["optimizer"] == o).any()]
    width = 0.8 / len(optimizers)
    fig = Figure(figsize=(max(7.5, 1.2 * len(models) + 3), 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    panels = fig.subplots(2, 1, sharex=True)
    for ax, column, what in zip(panels, ("grad_evals_vs_adabelief", "wall_s_vs_adabelief"),
                                ("gradient evaluations", "wall time")):
        shown = [1.0]
        for j, optimizer in enumerate(optimizers):
            mine = ttt[ttt["optimizer"] == optimizer].set_index("model")
            for i, model in enumerate(models):
                if model not in mine.index:
                    continue
                row = mine.loc[model]
                x = i - 0.4 + width * (j + 0.5)
                if row["reached"] == 0 or not np.isfinite(row[column]):
                    ax.plot([x], [0.04], marker="x", color=colour(optimizer), transform=ax.get_xaxis_transform(),
                            ls="")
                    continue
                ax.bar(x, row[column], width=width * 0.9, color=colour(optimizer), bottom=0)
                shown.append(float(row[column]))
                if row["reached"] < row["n"]:
                    ax.annotate(f"{row['reached']}/{row['n']}", (x, row[column]), ha="center", va="bottom",
                                fontsize=6, xytext=(0, 1), textcoords="offset points")
        ax.set_yscale("log")
        low, high = min(shown), max(shown)
        ax.set_ylim(low / 1.6, high * 1.6)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
        ax.set_ylabel(f"{what}\n× AdaBelief's")
        ax.grid(alpha=0.3, axis="y")
    panels[1].set_xticks(range(len(models)), models)
    panels[0].set_title("Time to reach AdaBelief's final value (mean over the seeds that reach it)")
    handles = [Line2D([], [], color=colour(o), lw=6, label=optimizer_label(o)) for o in optimizers]
    handles.append(Line2D([], [], color="0.3", marker="x", ls="", label="no run reached it"))
    panels[0].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.0), frameon=False)
    return fig


def write_crosstask_figures(view: CrossTask, out: Path) -> tuple[list[Path], list[str]]:
    """The performance profile and time-to-target figures, as PNG and PDF; the files written and what was not."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {CROSS_FIGURES["profile"]: (profile_figure(view.performance, len(view.tasks)),
                                          "no optimizer has a value on any task"),
               CROSS_FIGURES["time_to_target"]: (time_to_target_figure(view.time_to_target),
                                                 "no task has an AdaBelief run to set the target")}
    written, notes = [], []
    save(figures, out, written, notes)
    return written, notes


# --- the claims view -----------------------------------------------------------------------------------------

# One colour per task within a family (Okabe–Ito's that the optimizers' AdaLA and AdaBelief colours leave free).
_TASK_COLOURS = ("#009E73", "#CC79A7", "#56B4E9")


def mix_figure(mix: pd.DataFrame, family: str, rule: str) -> Figure | None:
    """One family's tasks against AdaLA's lookahead_weight w (claims.Claims.mix): the value (left) and the late-phase
    oscillation (right), mean ± std over seeds as a band, one line per task; AdaBelief's runs as a dashed line of
    the task's colour. None without a run of the fix in the family."""
    mine = mix[mix["family"] == family]
    if mine.empty:
        return None
    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    panels = fig.subplots(1, 2, sharex=True)
    metric = FAMILIES[family].metric
    for ax, column, label in zip(panels, ("value", "oscillation"),
                                 (f"{_METRIC_LABELS[metric]}, rule {rule}", "late-phase oscillation")):
        for i, (model, task) in enumerate(mine.groupby("model", sort=False)):
            colour_ = _TASK_COLOURS[i % len(_TASK_COLOURS)]
            curve = task[task["lookahead_weight"].notna()].sort_values("lookahead_weight")
            mean, std = curve[f"{column}_mean"], curve[f"{column}_std"].fillna(0.0)
            ax.plot(curve["lookahead_weight"], mean, marker="o", color=colour_, lw=1.4, label=model)
            ax.fill_between(curve["lookahead_weight"], mean - std, mean + std, color=colour_, alpha=0.2, lw=0)
            reference = task[task["lookahead_weight"].isna()]
            if len(reference) and np.isfinite(reference[f"{column}_mean"].iloc[0]):
                ax.axhline(reference[f"{column}_mean"].iloc[0], color=colour_, lw=1.0, ls="--")
        ax.set_xlabel("lookahead_weight w (0: AdaBelief's residual, 1: AdaLA)")
        ax.set_ylabel(label)
        ax.set_xlim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=_TASK_COLOURS[i % len(_TASK_COLOURS)], marker="o", label=model)
               for i, model in enumerate(dict.fromkeys(mine["model"]))]
    handles.append(Line2D([], [], color="0.3", ls="--", label="AdaBelief's runs"))
    panels[1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.suptitle(f"{FAMILIES[family].title.split(' (')[0]}: AdaLA's residual g − (w·g′ + (1 − w)·m), mean ± std "
                 "over seeds")
    return fig


def write_claims_figures(claims: Claims, rule: str, out: Path) -> tuple[list[Path], list[str]]:
    """The value and oscillation against w of each family with runs of the fix, as PNG and PDF; the files written
    and the families without."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {MIX_FIGURES[family]: (mix_figure(claims.mix, family, rule),
                                     f"no AdaLA run at a lookahead_weight below 1 on the {family} tasks")
               for family in FAMILIES}
    written, notes = [], []
    save(figures, out, written, notes)
    return written, notes
