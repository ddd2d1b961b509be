"""Selection rules: one number per run, and which runs of a table cell are averaged.

paper: CIFAR-10 max test_acc over epochs, PTB min test_ppl over epochs (both selected on the test set, as the
       reference did), GAN fid at the final epoch.
clean: the test value at the final epoch; where the run logged a validation metric (val_acc / val_ppl), the test
       value at the epoch with the best validation value (first such epoch).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from adala_bench.catalog import FAMILIES, TASKS, Family
from .load import RUN_COLUMNS

RULES = ("paper", "clean")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; allowed: {', '.join(RULES)}")
    return rule


def rule_description(family: Family, rule: str) -> str:
    """How `rule` picks a run's number in `family`, in words."""
    check_rule(rule)
    if rule == "paper" or family.val_metric is None:
        return family.paper_rule
    return f"test value at the final epoch, or at the epoch with the best {family.val_metric} where the run logged it"


def run_values(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    """One row per run: its identity, table, metric, the selected `value` and the `epoch` it comes from, plus
    `epochs_logged`, `last_epoch`, `final_grad_evals` and `final_wall_s`. The frame's rows are grouped by run
    with epochs in order, as load_runs returns them (any row subset of that keeps the order)."""
    check_rule(rule)
    run_ids = frame["run"].to_numpy()
    starts = np.flatnonzero(np.r_[True, run_ids[1:] != run_ids[:-1]]) if len(frame) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(frame)].astype(int) - 1 if len(frame) else starts
    runs = frame.iloc[starts][RUN_COLUMNS].reset_index(drop=True)
    known = runs["task"].astype(object).map(TASKS)
    runs["table"] = known.map(lambda t: t.family.table, na_action="ignore")
    runs["metric"] = known.map(lambda t: t.family.metric, na_action="ignore")
    family_of_run = known.map(lambda t: t.family.name, na_action="ignore")  # tasks outside the tables: NaN
    epochs = frame["epoch"].to_numpy(dtype=float)
    runs["epochs_logged"] = np.add.reduceat((~np.isnan(epochs)).astype(int), starts) if len(frame) else 0
    runs["last_epoch"] = epochs[ends]
    for column, name in (("grad_evals", "final_grad_evals"), ("wall_s", "final_wall_s")):
        runs[name] = frame[column].to_numpy(dtype=float)[ends]

    # Position in `frame` of the row each run's value is taken from (-1: none).
    picked = pd.Series(-1, index=runs["run"].to_numpy())
    last_row = pd.Series(ends, index=picked.index)
    for family in FAMILIES.values():
        members = runs.loc[family_of_run == family.name, "run"].to_numpy()
        if len(members) == 0 or family.metric not in frame:
            continue
        in_family = frame["run"].isin(members).to_numpy()
        if rule == "paper" and family.name != "gan":
            chosen = _first_best(frame, in_family, family.metric, family.higher_is_better)
        else:
            chosen = last_row[members]
            if rule == "clean" and family.val_metric in frame:
                by_val = _first_best(frame, in_family, family.val_metric, family.higher_is_better)
                chosen = by_val.combine_first(chosen).astype(int)
        picked[chosen.index] = chosen.to_numpy()

    value = np.full(len(runs), np.nan)
    positions = picked.to_numpy()
    metrics = runs["metric"].to_numpy()
    for metric in {m for m in metrics if isinstance(m, str) and m in frame}:
        take = (metrics == metric) & (positions >= 0)
        value[take] = frame[metric].to_numpy(dtype=float)[positions[take]]
    runs["value"] = value
    runs["epoch"] = np.where(positions >= 0, epochs[positions], np.nan)
    # An FID computed with anything but pytorch-fid's weights (tests, the demo) is not a real FID: flagged in tables.
    real = frame["fid_real_weights"].to_numpy(dtype=float) if "fid_real_weights" in frame else np.ones(len(frame))
    runs["random_fid_weights"] = (positions >= 0) & (real[np.maximum(positions, 0)] == 0) if len(frame) else False
    return runs


def best_validation(frame: pd.DataFrame, runs: pd.DataFrame) -> np.ndarray:
    """Per row of `runs` (run_values' rows): the best validation value over the run's epochs (max val_acc, min
    val_ppl: its family's val_metric and direction), NaN where it logged none or its family has none (the GANs)."""
    best = np.full(len(runs), np.nan)
    family_of = runs["task"].astype(object).map(lambda t: TASKS[t].family.name if t in TASKS else None)
    for family in FAMILIES.values():
        members = (family_of == family.name).to_numpy()
        if family.val_metric is None or not members.any() or family.val_metric not in frame:
            continue
        rows = frame.loc[frame["run"].isin(runs.loc[members, "run"]), ["run", family.val_metric]]
        grouped = rows.groupby("run")[family.val_metric]
        by_run = grouped.max() if family.higher_is_better else grouped.min()
        best[members] = runs.loc[members, "run"].map(by_run).to_numpy(dtype=float)
    return best


def _first_best(frame: pd.DataFrame, rows: np.ndarray, column: str, higher_is_better: bool) -> pd.Series:
    """Per run among `rows` (a mask), the position of its first best non-NaN `column` value; runs without one
    are absent."""
    values = frame[column].to_numpy(dtype=float)
    keep = rows & ~np.isnan(values)
    position = pd.Series(np.flatnonzero(keep))
    grouped = pd.Series(values[keep]).groupby(frame["run"].to_numpy()[keep], sort=False)
    best = grouped.idxmax() if higher_is_better else grouped.idxmin()
    return pd.Series(position[best.to_numpy()].to_numpy(), index=best.index)


def choose_hparams(runs: pd.DataFrame) -> pd.DataFrame:
    """Add `chosen` (the run belongs to its cell's tag: the one with most completed seeds, ties ->
    lexicographically first) and `used` (chosen, completed and with a value: what a cell averages)."""
    runs = runs.copy()
    completed = runs["state"].astype(object) == "completed"
    # observed=True: only the (task, optimizer, tag) triples that have runs. Unobserved ones (pandas 2's default
    # for the categorical task and optimizer) count 0 completed runs, and one whose tag sorts first would take the
    # choice of a cell whose only tag has no completed run yet.
    counts = (
        runs.assign(completed=completed, hparams=runs["hparams"].astype(object))
        .groupby(["task", "optimizer", "hparams"], observed=True)["completed"].sum()
        .reset_index()
        .sort_values(["task", "optimizer", "completed", "hparams"], ascending=[True, True, False, True])
        .drop_duplicates(["task", "optimizer"])
    )
    best = {(t, o): h for t, o, h in zip(counts["task"], counts["optimizer"], counts["hparams"])}
    runs["chosen"] = [best.get((t, o)) == h for t, o, h in zip(runs["task"], runs["optimizer"], runs["hparams"])]
    runs["used"] = runs["chosen"] & completed & runs["value"].notna()
    return runs
