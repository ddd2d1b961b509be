"""The tuning view: every optimizer given the same K trials of its search space (conf/experiment/tune_*.yaml), and
its package defaults untuned (defaults_*.yaml), compared at equal budgets. Pure functions on the report's frames.

    tuning_marks        the runs whose config.yaml records a tuning track (a trial, or the defaults track)
    expected_best       E[best validation value of k trials], k = 1..K, exactly from the sorted values
    with_replacement    Dodge et al.'s (2019) curve: the same with k draws WITH replacement
    chosen_test         E[test value of the trial that the validation value picks among k], k = 1..K
    tuning_view         the whole view, computed once (a TuningView; None without tuning runs)
    run_validation      one run's validation value as the view counts it (an adaptive sweeper's objective)

A run's values: validation = its best validation value over epochs (val_acc on data.val_size's held-out images,
val_ppl on PTB's valid.txt; the GANs have none, so their final FID, the reported metric itself); test = the `clean`
rule's value (the test value at the best validation epoch; GANs: final FID). A diverged run, or a completed one
without a value, counts at the WORST value the task allows: accuracy 0, perplexity and FID +inf. It is shown and
never dropped; a trial whose runs are not all done (running, interrupted, not started) is left out, and flagged.

A trial's value is the mean over its seeds. Of K trials sorted from worst to best, v_(1) ≤ … ≤ v_(K) (higher is
better; reversed where lower is), the best of a k-subset drawn uniformly without replacement is v_(i) with
probability C(i−1, k−1) / C(K, k), so E_k = Σ_i C(i−1, k−1) / C(K, k) · v_(i): the mean over every k-subset of its
best, k = 1 the mean of the trials, k = K the best. The test value of the chosen trial takes the same weights over
the trials sorted by validation (ties: the earlier trial is the better). Bands and CIs: 1,000 bootstrap resamples of
the seeds (with replacement, the same draws for every optimizer of a task: paired by seed), 2.5% and 97.5%
quantiles; none with fewer than two seeds.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adala_bench.catalog import TASKS, optimizer_rows
from adala_bench.records import DONE_STATES, read_run
from adala_bench.search_space import DEFAULTS, TUNED
from adala_bench.store import SEED_PREFIX
from .load import RunPath, config_number, load_run_paths, optimizer_config
from .select import best_validation, run_values
from .stats import verdict_kind, welch

BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0
SIDES = ("adala", "adabelief")
MARK_COLUMNS = ["run", "track", "trial"]
TRIAL_COLUMNS = ["task", "model", "optimizer", "track", "trial", "hparams", "lr", "eps", "runs", "completed",
                 "diverged", "unfinished", "used", "val", "val_min", "val_max", "test", "run_dirs"]
CURVE_COLUMNS = ["task", "model", "optimizer", "val_metric", "metric", "higher_is_better", "trials", "seeds", "k",
                 "expected_best_val", "band_low", "band_high", "with_replacement", "chosen_test", "chosen_test_low",
                 "chosen_test_high", "defaults_val", "defaults_test"]
COMPARISON_COLUMNS = ["task", "model", "metric", "higher_is_better", "budget", "n_adala", "n_adabelief", "adala",
                      "adabelief", "diff", "ci_low", "ci_high", "ci_contains_zero", "verdict"]


@dataclass
class TuningView:
    trials: pd.DataFrame  # one row per trial of a tuning sweep, and per defaults-track setting (TRIAL_COLUMNS)
    curves: pd.DataFrame  # per task, optimizer and budget k (CURVE_COLUMNS)
    comparison: pd.DataFrame  # AdaLA − AdaBelief per task: on the defaults, and at each equal budget k
    flags: dict[tuple[str, str], list[str]]  # per (task, optimizer), or (task, "") for the whole task


def worst(higher_is_better: bool) -> float:
    """The worst value a task allows: 0 for an accuracy, +inf for a perplexity or an FID."""
    return 0.0 if higher_is_better else math.inf


# --- the estimators -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def subset_weights(trials: int) -> np.ndarray:
    """W[k−1, i−1] = C(i−1, k−1) / C(K, k): the probability that the i-th worst of K values is the best of a k-subset
    drawn uniformly without replacement (exact integer binomials, one division each)."""
    weights = np.zeros((trials, trials))
    for k in range(1, trials + 1):
        subsets = math.comb(trials, k)
        for i in range(k, trials + 1):
            weights[k - 1, i - 1] = math.comb(i - 1, k - 1) / subsets
    return weights


def replacement_weights(trials: int) -> np.ndarray:
    """Dodge et al.'s weights: (i/K)^k − ((i−1)/K)^k, the probability that the best of k draws with replacement is
    the i-th worst."""
    i = np.arange(1, trials + 1) / trials
    k = np.arange(1, trials + 1)[:, None]
    return i**k - (i - 1 / trials) ** k


def _weighted(weights: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """weights @ ordered, where an infinite value with a positive weight makes the row that infinity (0 · inf is 0
    here: a value the k-subsets never pick does not count)."""
    infinite = ~np.isfinite(ordered)
    result = weights @ np.where(infinite, 0.0, ordered)
    if infinite.any():
        reached = (weights[:, infinite] > 0).any(axis=1)
        result[reached] = ordered[infinite][0]  # one sign: the task's worst value
    return result


def _worst_to_best(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """The indices that sort `values` (in trial order) from worst to best; ties: the later trial is the worse."""
    goodness = values if higher_is_better else -values
    return np.lexsort((-np.arange(len(values)), goodness))


def expected_best(values, higher_is_better: bool) -> np.ndarray:
    """E[best of k] for k = 1..K over the K values, exactly (see the module docstring)."""
    values = np.asarray(values, dtype=float)
    return _weighted(subset_weights(len(values)), values[_worst_to_best(values, higher_is_better)])


def with_replacement(values, higher_is_better: bool) -> np.ndarray:
    """Dodge et al.'s expected best of k draws with replacement, k = 1..K."""
    values = np.asarray(values, dtype=float)
    return _weighted(replacement_weights(len(values)), values[_worst_to_best(values, higher_is_better)])


def chosen_test(val, test, higher_is_better: bool) -> np.ndarray:
    """E[test value of the trial with the best validation value among k], k = 1..K (ties: the earlier trial)."""
    val, test = np.asarray(val, dtype=float), np.asarray(test, dtype=float)
    return _weighted(subset_weights(len(val)), test[_worst_to_best(val, higher_is_better)])


def _bootstrap(val: np.ndarray, test: np.ndarray, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """(expected best, chosen test) curves of BOOTSTRAP resamples of the seeds (columns of the trials × seeds
    matrices), each B × K."""
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, val.shape[1], size=(BOOTSTRAP, val.shape[1]))
    best = np.empty((BOOTSTRAP, len(val)))
    chosen = np.empty_like(best)
    for b, seeds in enumerate(draws):
        v, t = val[:, seeds].mean(axis=1), test[:, seeds].mean(axis=1)
        best[b], chosen[b] = expected_best(v, higher_is_better), chosen_test(v, t, higher_is_better)
    return best, chosen


def _interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5% and 97.5% quantiles per column, without interpolating (infinite draws stay infinite, never NaN)."""
    return (np.quantile(samples, 0.025, axis=0, method="inverted_cdf"),
            np.quantile(samples, 0.975, axis=0, method="inverted_cdf"))


# --- the runs ---------------------------------------------------------------------------------------------------

def tuning_marks(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run of the frame whose config.yaml records a tuning track: run, track, trial (-1 off the tuned
    track)."""
    runs = frame.drop_duplicates("run")[["run", "run_dir"]]
    rows = []
    for run, run_dir in zip(runs["run"], runs["run_dir"].astype(str)):
        tuning = read_run(run_dir).tuning
        if tuning.get("track") in (TUNED, DEFAULTS):
            trial = tuning.get("trial", "")
            rows.append((run, tuning["track"], int(trial) if trial.isdigit() else -1))
    return pd.DataFrame(rows, columns=MARK_COLUMNS)


def run_table(frame: pd.DataFrame, marks: pd.DataFrame) -> pd.DataFrame:
    """tuning_values of the marked runs, with their track and trial."""
    return tuning_values(frame[frame["run"].isin(marks["run"])]).merge(marks, on="run")


def tuning_values(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run of the frame of a task the catalog knows: select.run_values' columns, `val` and `test` (NaN
    while the run is not done, and `val` where it logged no validation value), `failed` (diverged, or completed
    without a test value: both values are then the task's worst)."""
    runs = run_values(frame, "clean")
    for column in ("task", "optimizer", "hparams", "state", "run_dir"):
        runs[column] = runs[column].astype(object)
    runs = runs[runs["task"].isin(TASKS)].reset_index(drop=True)
    families = runs["task"].map(lambda t: TASKS[t].family)
    has_val = families.map(lambda f: f.val_metric is not None).to_numpy(dtype=bool)
    done = runs["state"].isin(DONE_STATES).to_numpy()
    runs["failed"] = (runs["state"] == "diverged") | ((runs["state"] == "completed") & runs["value"].isna())
    worst_value = families.map(lambda f: worst(f.higher_is_better)).to_numpy(dtype=float)
    val = np.where(has_val, best_validation(frame, runs), runs["value"])
    for column, values in (("val", val), ("test", runs["value"].to_numpy(dtype=float))):
        runs[column] = np.where(runs["failed"], worst_value, np.where(done, values, np.nan))
    return runs


def run_validation(path: str | Path) -> float:
    """One run's validation value as the tuning view counts it (its best over epochs; GANs: the final FID; the
    task's worst value where it diverged): what an adaptive sweeper is handed to steer on (runner.job_result)."""
    path = Path(path)
    run = RunPath(path.parents[2].name, path.parents[1].name, path.parent.name,
                  int(path.name.removeprefix(SEED_PREFIX)), str(path))
    values = tuning_values(load_run_paths([run]))["val"]
    return float(values.iloc[0]) if len(values) else math.nan


def present(optimizers: pd.Series) -> list[str]:
    """The optimizers named in `optimizers`, in the paper's row order (then any other, alphabetically)."""
    names = set(optimizers)
    return [name for name in optimizer_rows(names) if name in names]


# --- the view ---------------------------------------------------------------------------------------------------

def tuning_view(frame: pd.DataFrame, marks: pd.DataFrame | None = None) -> TuningView | None:
    """The view of the frame's tuning runs (None when it has none). `marks`: tuning_marks(frame), if at hand."""
    runs = run_table(frame, tuning_marks(frame) if marks is None else marks)
    if runs.empty:
        return None
    trial_tables, curves, flags, matrices = [], [], {}, {}
    for task in [t for t in TASKS if t in set(runs["task"])]:
        in_task = runs[runs["task"] == task]
        for optimizer in present(in_task["optimizer"]):
            members = in_task[in_task["optimizer"] == optimizer]
            trials = _trials(members)
            trial_tables.append(trials)
            cell_flags = flags.setdefault((task, optimizer), _defaults_flags(trials))
            used = trials[trials["used"]]
            left = trials[(trials["track"] == TUNED) & ~trials["used"]]
            if len(left):
                cell_flags.append(f"{len(left)} of {len(left) + len(used)} trials not done on every seed, left out: "
                                  + ", ".join(map(str, left["trial"])))
            if used.empty:
                continue
            if used["trial"].duplicated().any():
                cell_flags.append("trials with several settings, averaged: "
                                  + ", ".join(map(str, used["trial"][used["trial"].duplicated()].unique())))
            if used["val"].isna().any():
                family = TASKS[task].family
                cell_flags.append(f"no {family.val_metric} logged, no choice on validation"
                                  + (" (train with data.val_size=5000)" if family.name == "cifar10" else ""))
                continue
            tuned = members[(members["track"] == TUNED) & members["hparams"].isin(used["hparams"])]
            val, test = _matrix(tuned, "val"), _matrix(tuned, "test")
            matrices[(task, optimizer)] = (val, test)
            defaults = trials[trials["track"] == DEFAULTS]
            curves.append(_curve(task, optimizer, val, test, defaults["val"].mean(), defaults["test"].mean()))
        flags.setdefault((task, ""), []).extend(_task_flags(in_task, matrices, task))
    return TuningView(trials=pd.concat(trial_tables, ignore_index=True)[TRIAL_COLUMNS],
                      curves=pd.concat(curves, ignore_index=True)[CURVE_COLUMNS] if curves
                      else pd.DataFrame(columns=CURVE_COLUMNS),
                      comparison=_comparison(runs, matrices), flags=flags)


def _trials(members: pd.DataFrame) -> pd.DataFrame:
    """One row per (track, trial, hparams) of one (task, optimizer), tuned trials first: its runs' states, its
    values over its done seeds (mean, min, max), and `used`: a tuned trial done on every seed the cell ran."""
    seeds = set(members.loc[members["track"] == TUNED, "seed"])
    rows = []
    for (track, trial, tag), group in members.groupby(["track", "trial", "hparams"], sort=False):
        done = group[group["state"].isin(DONE_STATES)]
        setting = optimizer_config(group["run_dir"])
        rows.append({
            "task": group["task"].iloc[0], "model": TASKS[group["task"].iloc[0]].model,
            "optimizer": group["optimizer"].iloc[0], "track": track, "trial": trial if track == TUNED else None,
            "hparams": tag, "lr": config_number(setting.get("lr")), "eps": config_number(setting.get("eps")),
            "runs": len(group), "completed": int((group["state"] == "completed").sum()),
            "diverged": int(group["failed"].sum()), "unfinished": len(group) - len(done),
            "used": track == TUNED and set(done["seed"]) >= seeds,
            "val": done["val"].mean(), "val_min": done["val"].min(), "val_max": done["val"].max(),
            "test": done["test"].mean(), "run_dirs": ";".join(group.sort_values("seed")["run_dir"]),
        })
    rows.sort(key=lambda row: (row["track"] != TUNED, row["trial"] or 0, row["hparams"]))
    return pd.DataFrame(rows).astype({"trial": "Int64"})


def _defaults_flags(trials: pd.DataFrame) -> list[str]:
    defaults = trials[trials["track"] == DEFAULTS]
    flags = [f"{len(defaults)} defaults-track settings, averaged"] if len(defaults) > 1 else []
    if defaults["unfinished"].sum():
        flags.append(f"{int(defaults['unfinished'].sum())} defaults-track runs not done")
    return flags


def _task_flags(in_task: pd.DataFrame, matrices: dict, task: str) -> list[str]:
    """What the task's comparisons rest on: budgets and seeds that differ between its optimizers, FIDs from random
    Inception weights."""
    shapes = {optimizer: matrices[(t, optimizer)][0].shape for t, optimizer in matrices if t == task}
    flags = []
    if len({trials for trials, _ in shapes.values()}) > 1:
        flags.append("unequal budgets (" + ", ".join(f"{o} {k}" for o, (k, _) in shapes.items())
                     + "): compared at the budgets both have")
    tuned = in_task[in_task["track"] == TUNED]
    seed_sets = {o: tuple(sorted(set(group["seed"]))) for o, group in tuned.groupby("optimizer", sort=False)}
    if len(set(seed_sets.values())) > 1:
        flags.append("seeds differ: " + "; ".join(f"{o} {','.join(map(str, s))}" for o, s in seed_sets.items()))
    if (random := int(in_task["random_fid_weights"].sum())):
        flags.append(f"random Inception weights in {random} runs (not a real FID)")
    return flags


def _matrix(tuned: pd.DataFrame, column: str) -> np.ndarray:
    """Trials × seeds of one value column, trials in order, seeds ascending."""
    return tuned.pivot_table(index="trial", columns="seed", values=column, aggfunc="mean").to_numpy(dtype=float)


def _curve(task: str, optimizer: str, val: np.ndarray, test: np.ndarray, defaults_val: float,
           defaults_test: float) -> pd.DataFrame:
    """The view's curves of one (task, optimizer) from its trials × seeds matrices."""
    family = TASKS[task].family
    higher = family.higher_is_better
    mean_val, mean_test = val.mean(axis=1), test.mean(axis=1)
    trials, seeds = val.shape
    nan = np.full(trials, np.nan)
    band = (nan, nan)
    test_band = (nan, nan)
    if seeds >= 2:
        best, chosen = _bootstrap(val, test, higher)
        band, test_band = _interval(best), _interval(chosen)
    return pd.DataFrame({
        "task": task, "model": TASKS[task].model, "optimizer": optimizer,
        "val_metric": family.val_metric or family.metric, "metric": family.metric, "higher_is_better": higher,
        "trials": trials, "seeds": seeds, "k": np.arange(1, trials + 1),
        "expected_best_val": expected_best(mean_val, higher), "band_low": band[0], "band_high": band[1],
        "with_replacement": with_replacement(mean_val, higher),
        "chosen_test": chosen_test(mean_val, mean_test, higher),
        "chosen_test_low": test_band[0], "chosen_test_high": test_band[1],
        "defaults_val": defaults_val, "defaults_test": defaults_test,
    })


def _comparison(runs: pd.DataFrame, matrices: dict) -> pd.DataFrame:
    """AdaLA − AdaBelief per task: on the defaults track (Welch over the seeds, as the tables' answer), and at every
    budget k both have (the chosen trial's test value, a bootstrap CI over the seeds)."""
    rows = []
    for task in [t for t in TASKS if t in set(runs["task"])]:
        family = TASKS[task].family
        higher = family.higher_is_better
        common = {"task": task, "model": TASKS[task].model, "metric": family.metric, "higher_is_better": higher}
        defaults = runs[(runs["task"] == task) & (runs["track"] == DEFAULTS) & runs["test"].notna()]
        samples = {side: defaults.loc[defaults["optimizer"] == side, "test"].to_numpy(float) for side in SIDES}
        if any(len(sample) for sample in samples.values()):
            result = welch(samples["adala"], samples["adabelief"])
            means = {side: float(sample.mean()) if len(sample) else math.nan for side, sample in samples.items()}
            rows.append(_row(common, "defaults", {s: len(v) for s, v in samples.items()}, means, result.diff,
                             result.ci_low, result.ci_high))
        if not all((task, side) in matrices for side in SIDES):
            continue
        budget = min(len(matrices[(task, side)][0]) for side in SIDES)  # the first trials, both have them
        seeds = {side: matrices[(task, side)][0].shape[1] for side in SIDES}
        curves, draws = {}, {}
        for side in SIDES:
            val, test = (m[:budget] for m in matrices[(task, side)])
            curves[side] = chosen_test(val.mean(axis=1), test.mean(axis=1), higher)
            draws[side] = _bootstrap(val, test, higher)[1] if min(seeds.values()) >= 2 else np.full((1, budget), np.nan)
        with np.errstate(invalid="ignore"):  # inf − inf: both sides at the worst value, no difference to speak of
            diff = curves["adala"] - curves["adabelief"]
            low, high = _interval(draws["adala"] - draws["adabelief"])
        for k in range(budget):
            rows.append(_row(common, k + 1, seeds, {side: curves[side][k] for side in SIDES}, diff[k], low[k],
                             high[k]))
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _row(common: dict, budget, n: dict, means: dict, diff: float, low: float, high: float) -> dict:
    """One comparison row; its verdict is stats.verdict_kind's (n = the seeds of each side; no CI below two)."""
    testable = not (np.isnan(low) or np.isnan(high))
    row = {**common, "budget": budget, "n_adala": n["adala"], "n_adabelief": n["adabelief"], "adala": means["adala"],
           "adabelief": means["adabelief"], "diff": diff, "ci_low": low, "ci_high": high,
           "ci_contains_zero": bool(low <= 0 <= high) if testable else None}
    return row | {"verdict": verdict_kind(row)}
