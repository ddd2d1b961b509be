"""The cross-task view: which optimizer wins over all the tasks the runs cover, and what AdaLA's second gradient
per step costs to get there. Pure functions on the report's frames, returning DataFrames, and the view's page
blocks.

    ranks                each optimizer's rank in each table cell (1 = best; ties share the mean rank)
    rank_table           the ranks wide, with each optimizer's mean rank over the tasks two or more optimizers
                         ran, and how many of those it has a value on
    profile_ratios       per task, each optimizer's value as a cost (lower is better) over the best cost
    performance_profile  AlgoPerf's summary: the fraction of tasks whose ratio is within a factor tau of the best
    time_to_target       per task, the gradient evaluations and wall time each optimizer needs to first reach
                         AdaBelief's final value
    cross_task           all of the above for one report, computed once (a CrossTask)
    crosstask_blocks     the view as page blocks: ranks, the performance profile, time to AdaBelief's final value

A task is one column of Tables 2-4; ranks and ratios compare cell means (the selection rule's value, over the
runs the table averages), so they say what the tables say, across tables.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adala_bench.catalog import FAMILIES, TASKS, optimizer_label, optimizer_rows
from .format import MISSING, count, number, rank, times
from .page import Block, Heading, Table, Text, figure

# How each metric becomes a cost for the performance profile (lower is better, 0 is perfect): the error rate
# for accuracy; perplexity and FID as they are.
COSTS = {
    "test_acc": ("error rate, 100 − accuracy (%)", lambda v: 100.0 - v),
    "test_ppl": ("perplexity as it is", lambda v: v),
    "fid": ("FID as it is", lambda v: v),
}
TARGET_OPTIMIZER = "adabelief"
_HIGHER_IS_BETTER = {name: task.family.higher_is_better for name, task in TASKS.items()}
RANK_COLUMNS = ["task", "model", "metric", "optimizer", "label", "value", "rank", "ranked"]
RATIO_COLUMNS = ["task", "model", "metric", "optimizer", "label", "value", "cost", "best_cost", "ratio"]
# The view's figures (figures.py draws them), by their file stems.
CROSS_FIGURES = {"profile": "fig6_performance_profile", "time_to_target": "fig7_time_to_target"}
TARGET_COLUMNS = ["task", "model", "metric", "target", "optimizer", "label", "n", "reached", "epoch", "grad_evals",
                  "wall_s", "grad_evals_vs_adabelief", "wall_s_vs_adabelief"]


def _valued(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells with a mean, in task (catalog) then optimizer (paper row) order."""
    valued = cells[(cells["n"] > 0) & cells["mean"].notna()].copy()
    task_order = {name: i for i, name in enumerate(TASKS)}
    row_order = {name: i for i, name in enumerate(optimizer_rows(valued["optimizer"].unique()))}
    valued["_order"] = valued["task"].map(task_order) * 1000 + valued["optimizer"].map(row_order)
    return valued.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def covered_tasks(cells: pd.DataFrame) -> list[str]:
    """The tasks with at least one cell that has a value, in catalog order."""
    return list(dict.fromkeys(_valued(cells)["task"]))


def ranks(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with a value: its rank among the optimizers with a value on that task (1 = best, ties
    share the mean of their ranks) and how many were ranked."""
    valued = _valued(cells)
    if valued.empty:
        return pd.DataFrame(columns=RANK_COLUMNS)
    higher = valued["task"].map(_HIGHER_IS_BETTER).to_numpy(dtype=bool)
    # Rank the cost (negated value where higher is better), so one ascending rank serves every metric.
    cost = np.where(higher, -valued["mean"], valued["mean"])
    grouped = pd.Series(cost).groupby(valued["task"].to_numpy())
    out = valued[["task", "model", "metric", "optimizer", "label"]].assign(
        value=valued["mean"], rank=grouped.rank(method="average"), ranked=grouped.transform("size"))
    return out[RANK_COLUMNS]


def rank_table(ranked: pd.DataFrame) -> pd.DataFrame:
    """Optimizers (paper row order) by tasks: the rank in each, then `mean_rank` over the tasks it has a value on
    among those where two or more optimizers were ranked (alone on a task, rank 1 says nothing), and `tasks`, how
    many those are."""
    if ranked.empty:
        return pd.DataFrame(columns=["optimizer", "label", "mean_rank", "tasks"])
    models = list(dict.fromkeys(ranked["model"]))
    wide = ranked.pivot(index="optimizer", columns="model", values="rank")[models]
    order = [o for o in optimizer_rows(wide.index) if o in wide.index]
    wide = wide.loc[order]
    contested = ranked.loc[ranked["ranked"] >= 2, "model"].unique()
    contested = [m for m in models if m in contested]
    wide["mean_rank"] = wide[contested].mean(axis=1) if contested else np.nan
    wide["tasks"] = wide[contested].notna().sum(axis=1) if contested else 0
    wide.insert(0, "label", [optimizer_label(o) for o in wide.index])
    wide.columns.name = None
    return wide.reset_index()


def profile_ratios(cells: pd.DataFrame) -> pd.DataFrame:
    """Per task and optimizer with a value: the value as a cost (COSTS), the best cost on the task, and their
    ratio (1 for the best; where the best cost is 0, 1 for those at 0 and infinity for the rest)."""
    valued = _valued(cells)
    if valued.empty:
        return pd.DataFrame(columns=RATIO_COLUMNS)
    cost = np.array([COSTS[m][1](v) for m, v in zip(valued["metric"], valued["mean"])], dtype=float)
    best = pd.Series(cost).groupby(valued["task"].to_numpy()).transform("min").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(best > 0, cost / best, np.where(cost == best, 1.0, np.inf))
    out = valued[["task", "model", "metric", "optimizer", "label"]].assign(
        value=valued["mean"], cost=cost, best_cost=best, ratio=ratio)
    return out[RATIO_COLUMNS]


def performance_profile(ratios: pd.DataFrame, tasks: int | None = None) -> pd.DataFrame:
    """rho_o(tau) = (tasks on which o's ratio <= tau) / (tasks covered), a step function: one row per tau at
    which any curve steps (1 and every finite ratio), a column per optimizer. A task an optimizer has no value
    on never counts for it (AlgoPerf's convention: not reaching the target). `tasks` defaults to the tasks in
    `ratios`."""
    tasks = tasks or ratios["task"].nunique()
    optimizers = [o for o in optimizer_rows(ratios["optimizer"].unique()) if (ratios["optimizer"] == o).any()]
    finite = ratios["ratio"].to_numpy(dtype=float)
    taus = np.unique(np.r_[1.0, finite[np.isfinite(finite)]])
    profile = pd.DataFrame({"tau": taus})
    for optimizer in optimizers:
        mine = np.sort(ratios.loc[ratios["optimizer"] == optimizer, "ratio"].to_numpy(dtype=float))
        profile[optimizer] = np.searchsorted(mine, taus, side="right") / tasks if tasks else np.nan
    return profile


def target_slack(target: np.ndarray) -> np.ndarray:
    """How far past a target a value may fall and still reach it: a mean of equal values may round a hair past
    them."""
    return 1e-9 * np.maximum(1.0, np.abs(target))


def time_to_target(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per task with a used AdaBelief run: target = mean over those runs of their final value (the metric at the
    last epoch that logged it); per optimizer, over the runs its table cell averages, the first epoch each run
    reaches the target (at least it where higher is better, at most it otherwise), and the mean over the runs
    that reach it of that epoch, of the gradient evaluations and of the wall time; `n` runs, `reached` of them.
    `*_vs_adabelief` divides by AdaBelief's own mean. GANs: FID on `fid_curve` before the last epoch and `fid`
    at it."""
    used = runs[runs["used"] & runs["table"].notna()]
    rows = frame[frame["run"].isin(used["run"])]
    value = metric_series(rows)
    keep = ~np.isnan(value)
    rows = rows.loc[keep, ["run", "task", "optimizer", "epoch", "grad_evals", "wall_s"]].assign(value=value[keep])
    rows["task"], rows["optimizer"] = rows["task"].astype(object), rows["optimizer"].astype(object)
    final = rows.drop_duplicates("run", keep="last")
    targets = final[final["optimizer"] == TARGET_OPTIMIZER].groupby("task")["value"].mean()
    if targets.empty:
        return pd.DataFrame(columns=TARGET_COLUMNS)

    target = rows["task"].map(targets).to_numpy(dtype=float)
    higher = rows["task"].map(_HIGHER_IS_BETTER).to_numpy(dtype=bool)
    slack = target_slack(target)
    reached = np.where(higher, rows["value"] >= target - slack, rows["value"] <= target + slack)
    first = rows[reached].drop_duplicates("run", keep="first")

    cell_runs = used.assign(task=used["task"].astype(object), optimizer=used["optimizer"].astype(object))
    cell_runs = cell_runs[cell_runs["task"].isin(targets.index)]
    counts = cell_runs.groupby(["task", "optimizer"]).size().rename("n")
    means = first.groupby(["task", "optimizer"]).agg(
        reached=("run", "size"), epoch=("epoch", "mean"), grad_evals=("grad_evals", "mean"),
        wall_s=("wall_s", "mean"))
    out = pd.concat([counts, means], axis=1).reset_index()
    out["reached"] = out["reached"].fillna(0).astype(int)
    for column in ("grad_evals", "wall_s"):
        own = out[out["optimizer"] == TARGET_OPTIMIZER].set_index("task")[column]
        out[f"{column}_vs_adabelief"] = out[column] / out["task"].map(own)
    out["target"] = out["task"].map(targets)
    out["model"] = out["task"].map(lambda t: TASKS[t].model)
    out["metric"] = out["task"].map(lambda t: TASKS[t].family.metric)
    out["label"] = out["optimizer"].map(optimizer_label)
    task_order = {name: i for i, name in enumerate(TASKS)}
    row_order = {name: i for i, name in enumerate(optimizer_rows(out["optimizer"].unique()))}
    out = out.sort_values(["task", "optimizer"], key=lambda s: s.map(task_order if s.name == "task" else row_order))
    return out[TARGET_COLUMNS].reset_index(drop=True)


def metric_series(rows: pd.DataFrame) -> np.ndarray:
    """Each row's value of its task's metric; for GANs `fid` where logged (the last epoch), else `fid_curve`."""
    value = np.full(len(rows), np.nan)
    task = rows["task"].astype(object).to_numpy()
    for family in FAMILIES.values():
        mask = np.isin(task, [t.name for t in TASKS.values() if t.family is family])
        if not mask.any() or family.metric not in rows:
            continue
        series = rows[family.metric].to_numpy(dtype=float)
        if family.name == "gan" and "fid_curve" in rows:
            series = np.where(np.isnan(series), rows["fid_curve"].to_numpy(dtype=float), series)
        value[mask] = series[mask]
    return value


# --- the view of one report -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CrossTask:
    tasks: list[str]  # the tasks covered (a cell with a value), in catalog order
    ranks: pd.DataFrame  # ranks (long)
    ratios: pd.DataFrame  # profile_ratios
    performance: pd.DataFrame  # performance_profile over `tasks`
    time_to_target: pd.DataFrame
    random_fid: list[str]  # the covered tasks whose used runs include FIDs from random Inception weights


def cross_task(frame: pd.DataFrame, runs: pd.DataFrame, cells: pd.DataFrame) -> CrossTask:
    """The whole view from the long frame, the selected runs and the table cells."""
    ratios = profile_ratios(cells)
    tasks = covered_tasks(cells)
    used = runs[runs["used"].astype(bool)]
    random = set(used.loc[used["random_fid_weights"].astype(bool), "task"].astype(object))
    return CrossTask(tasks=tasks, ranks=ranks(cells), ratios=ratios,
                     performance=performance_profile(ratios, len(tasks)), time_to_target=time_to_target(frame, runs),
                     random_fid=[t for t in tasks if t in random])


# --- the view as page blocks ----------------------------------------------------------------------------------

def crosstask_blocks(view: CrossTask, rule: str, figures: set[str] | None, level: int = 2) -> list[Block]:
    """Ranks, the performance profile and time to AdaBelief's final value, with their figures where `figures`
    (the file names drawn; None: figures were not asked for) has them."""
    blocks: list[Block] = [Heading(level, "Across the tasks")]
    n = len(view.tasks)
    if not n:
        return blocks + [Text("No task has a completed run: nothing to compare across tasks.")]
    models = [TASKS[t].model for t in view.tasks]
    blocks.append(Text(f"Over the {count(n, 'task')} these runs cover ({', '.join(models)}; of {len(TASKS)}), "
                       f"from the cell means of Tables 2-4 (rule `{rule}`)."))
    if view.random_fid:
        blocks.append(Text(f"Flagged: the FIDs of {', '.join(TASKS[t].model for t in view.random_fid)} come from "
                           "random Inception weights, not a real FID; they rank the optimizers against each other "
                           "only."))
    return (blocks + _ranks_blocks(view.ranks, level + 1) + _profile_blocks(view, figures, level + 1)
            + _time_to_target_blocks(view, figures, level + 1))


def _ranks_blocks(ranked: pd.DataFrame, level: int) -> list[Block]:
    table = rank_table(ranked)
    models = [c for c in table.columns if c not in ("optimizer", "label", "mean_rank", "tasks")]
    contenders = ranked.groupby("model")["ranked"].first()
    header = ["Optimizer"] + [f"{m} (of {contenders[m]})" for m in models] + ["mean rank", "tasks"]
    rows = [[row["label"]] + [rank(row[m]) for m in models] + [number(row["mean_rank"]), str(row["tasks"])]
            for _, row in table.iterrows()]
    contested = [m for m in models if contenders[m] >= 2]
    blocks: list[Block] = [Heading(level, "Ranks"), Table(header, rows),
                           Text("Rank 1 = the best cell mean on that task (ties share the mean of their ranks); "
                                "(of k): the optimizers with a value there. Mean rank over the tasks with two or "
                                "more optimizers that the optimizer has a value on; tasks = how many.")]
    full = table[table["tasks"] == len(contested)] if contested else table.iloc[:0]
    if len(full) > 1:
        best = full["mean_rank"].min()
        winners = [row.label for row in full.itertuples() if math.isclose(row.mean_rank, best)]
        blocks.append(Text(f"Lowest mean rank over the {count(len(contested), 'task')} with two or more "
                           f"optimizers, among the {len(full)} that ran on all of them: **{' and '.join(winners)}** "
                           f"({number(best)})."))
    partial = table[table["tasks"] < len(contested)]
    if len(partial):
        blocks.append(Text("Mean ranks over different tasks do not compare: " + "; ".join(
            f"{row.label} has values on {row.tasks} of {len(contested)}" for row in partial.itertuples()) + "."))
    alone = [m for m in models if contenders[m] == 1]
    if alone:
        blocks.append(Text(f"One optimizer only, left out of the mean ranks (rank 1 there says nothing): "
                           f"{', '.join(alone)}."))
    return blocks


def _profile_blocks(view: CrossTask, figures: set[str] | None, level: int) -> list[Block]:
    n = len(view.tasks)
    costs = "; ".join(f"{metric}: {COSTS[metric][0]}" for metric in dict.fromkeys(view.ratios["metric"]))
    blocks: list[Block] = [Heading(level, "Performance profile")]
    blocks += figure(figures, CROSS_FIGURES["profile"],
                     f"Performance profile over {count(n, 'task')}: the fraction of tasks on which each optimizer's "
                     "value lies within a factor τ of the best.")
    blocks.append(Text(f"AlgoPerf's summary. Each cell mean becomes a cost, lower is better ({costs}); its ratio "
                       "is the cost over the best cost on the task (1 = the best). ρ(τ) = the fraction of the "
                       f"{count(n, 'task')} whose ratio is at most τ; a task an optimizer has no value on never "
                       "counts for it."))
    models = [TASKS[t].model for t in view.tasks]
    by = view.ratios.set_index(["optimizer", "model"])["ratio"]
    header = ["Optimizer"] + [f"{m} ratio" for m in models] + ["ρ(1): best on", "ρ(1.1): within 10%"]
    rows = []
    for optimizer in [c for c in view.performance.columns if c != "tau"]:
        ratios = [by.get((optimizer, m), math.nan) for m in models]
        within = [sum(x <= tau for x in ratios if np.isfinite(x)) for tau in (1.0, 1.1)]
        rows.append([optimizer_label(optimizer)] + [number(x, ".3f") for x in ratios]
                    + [f"{k} of {n}" for k in within])
    return blocks + [Table(header, rows)]


def _time_to_target_blocks(view: CrossTask, figures: set[str] | None, level: int) -> list[Block]:
    ttt = view.time_to_target
    blocks: list[Block] = [Heading(level, "Time to AdaBelief's final value")]
    blocks += figure(figures, CROSS_FIGURES["time_to_target"],
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
        row = [TASKS[task].model, number(target)]
        row += [_reach(by.loc[(task, o)]) if (task, o) in by.index else MISSING for o in optimizers]
        rows.append(row)
    blocks += [Text("Each optimizer's cell: gradient evaluations (× AdaBelief's) · wall seconds (× AdaBelief's) · "
                    "runs that reached the target / runs."),
               Table(["Model", "target"] + [optimizer_label(o) for o in optimizers], rows),
               Text(_adala_pays(ttt))]
    targetless = [TASKS[t].model for t in view.tasks if t not in set(ttt["task"])]
    if targetless:
        blocks.append(Text(f"No target (no completed AdaBelief run): {', '.join(targetless)}."))
    return blocks


def _reach(row) -> str:
    """One time-to-target cell: 'evals (×ratio) · s (×ratio) · k/n', or 'not reached · 0/n'."""
    if row["reached"] == 0:
        return f"not reached · 0/{row['n']}"
    return (f"{number(row['grad_evals'], '.0f')} ({times(row['grad_evals_vs_adabelief'])}) · "
            f"{number(row['wall_s'], '.1f')} s ({times(row['wall_s_vs_adabelief'])}) · {row['reached']}/{row['n']}")


def _adala_pays(ttt: pd.DataFrame) -> str:
    """One sentence: on how many tasks AdaLA reached the target, and at what cost relative to AdaBelief."""
    adala = ttt[ttt["optimizer"] == "adala"]
    if adala.empty:
        return "AdaLA has no run on a task with a target."
    reached = adala[adala["reached"] > 0]
    text = (f"AdaLA reached AdaBelief's final value on {len(reached)} of {count(len(adala), 'task')} "
            f"(with every run on {int((adala['reached'] == adala['n']).sum())})")
    ratios = {what: reached[f"{what}_vs_adabelief"].to_numpy(dtype=float) for what in ("grad_evals", "wall_s")}
    parts = [f"{number(_geomean(v))}× AdaBelief's {label}" for (what, v), label in
             zip(ratios.items(), ("gradient evaluations", "wall time")) if np.isfinite(v).any()]
    if parts:
        text += "; where it did, it needed " + " and ".join(parts) + " (geometric mean over those tasks)"
    return text + "."


def _geomean(values: np.ndarray) -> float:
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(values).mean())) if len(values) else math.nan
