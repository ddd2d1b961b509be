"""The paper's claims, each put to the runs: one row per claim with the paper's words and section, what is measured,
the two sides' values, the effect with its 95% CI, the verdict, and what would settle it. Pure functions on the
report's frames (like crosstask.py), returning DataFrames, and the view's page blocks.

    fix_rows              the rows of AdaLA runs at a lookahead_weight below 1: the fix the paper proposes (§7),
                          never a table cell's runs
    oscillations          each run's late-phase oscillation: the instability the paper reads off its Figs 1-2 (§6)
    improvement           P(a run of A beats a run of B on the same task) + ½ P(tie), per task
    expected_time         the expected running time to a target: every seed's cost until it reaches the target (its
                          whole run where it never does) over the seeds that reach it
    stratified_bootstrap  a statistic and its percentile CI over seeds resampled within each task and side
    seeds_needed          seeds per side that would bring a CI's half-width under a difference
    claims_view           every claim of one report, computed once (a Claims)
    claims_blocks         the view as page blocks: the claims table, the oscillation per task, the fix per weight

Sides: AdaLA and AdaBelief are the runs Tables 2-4 average; `w=<w>` are AdaLA's runs at lookahead_weight w
(conf/experiment/claims_mix.yaml), chosen per task and weight by the tables' own rule (select.choose_hparams).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from adala_bench.catalog import FAMILIES, TASKS, optimizer_label
from adala_bench.config import lookahead_weight_of_tag
from adala_bench.gpu_hours import estimated_seconds_per_epoch, seconds_per_epoch
from adala_bench.records import read_run
from .crosstask import metric_series, target_slack
from .format import MISSING, count, mean_std, number, signed, times
from .page import Block, Bullets, Heading, Table, Text, figure
from .select import choose_hparams, run_values
from .stats import sample_mean_std, summary, welch

ADALA, ADABELIEF = "adala", "adabelief"
RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same runs give the same report
CONFIDENCE = 0.95
# The smallest differences of interest: of a probability of improvement, P(A better) − P(B better) = 0.2 (a run of A
# beats a run of B 60% of the time); of a ratio, 10%.
SMALLEST_DIFFERENCE = 0.2
SMALLEST_RATIO = 1.1
# The metric whose epoch-to-epoch changes are the oscillation, and how many measurements a run needs for one.
OSCILLATION_METRICS = {"cifar10": "test_acc", "ptb": "test_ppl", "gan": "fid_curve"}
MIN_MEASUREMENTS = {"cifar10": 2, "ptb": 2, "gan": 3}
# The view's figures (figures.py draws them): the metric and the oscillation against w, one per family.
MIX_FIGURES = {family: f"fig8_lookahead_weight_{family}" for family in FAMILIES}

INSTABILITY_COLUMNS = ["run_dir", "task", "model", "optimizer", "lookahead_weight", "seed", "metric", "measurements",
                       "oscillation"]
CLAIM_COLUMNS = ["claim", "section", "paper_words", "measure", "side_a", "side_b", "value_a", "value_b", "effect",
                 "effect_kind", "ci_low", "ci_high", "null", "verdict", "verdict_text", "tasks", "left_out",
                 "seeds_per_side", "smallest_difference", "seeds_to_observed", "gpu_hours_to_observed",
                 "seeds_to_smallest", "gpu_hours_to_smallest"]
PER_TASK_COLUMNS = ["task", "model", "metric", "n_adala", "mean_adala", "std_adala", "n_adabelief", "mean_adabelief",
                    "std_adabelief", "diff", "ci_low", "ci_high", "p_value"]
MIX_COLUMNS = ["task", "model", "family", "metric", "side", "lookahead_weight", "n", "value_mean", "value_std",
               "oscillation_n", "oscillation_mean", "oscillation_std"]


# --- the sides' runs -------------------------------------------------------------------------------------------

def fix_rows(frame: pd.DataFrame) -> np.ndarray:
    """Which rows of the long frame belong to AdaLA runs at a lookahead_weight below 1 (their tag says so)."""
    tags = frame["hparams"].astype("category")
    weights = np.array([lookahead_weight_of_tag(str(tag)) for tag in tags.cat.categories] + [1.0])
    return (frame["optimizer"] == ADALA).to_numpy() & (weights[tags.cat.codes.to_numpy()] < 1)


def side_label(side: str) -> str:
    return optimizer_label(side) if side in (ADALA, ADABELIEF) else side


def _weight_side(weight: float) -> str:
    return f"w={weight:g}"


def fix_runs(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The fix's runs, one row each (select.run_values), `optimizer` named by their side (`w=0.25`), so that the
    tables' rule chooses one hparams tag per task and weight, and `lookahead_weight`."""
    runs = run_values(frame[fix_rows(frame)], rule)
    weights = runs["hparams"].astype(object).map(lookahead_weight_of_tag)
    runs = runs.assign(optimizer=weights.map(_weight_side), lookahead_weight=weights)
    return choose_hparams(runs)


def oscillations(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's late-phase oscillation: the mean absolute change of its task's metric between consecutive
    measurements over the last ⌈E/4⌉ + 1 of its E measurements (⌈E/4⌉ changes: one for E ≤ 4, two from E = 5).
    The metric is test_acc, test_ppl, or a GAN's fid_curve (the FID of the final epoch, from more samples, is left
    out); NaN with fewer than MIN_MEASUREMENTS (2; 3 for fid_curve). `runs`: run, task; the frame's rows of a run
    in epoch order, as load_runs gives them. Returns run, metric, measurements, oscillation."""
    family = runs["task"].astype(object).map(lambda t: TASKS[t].family.name)
    metric_of_run = pd.Series(family.map(OSCILLATION_METRICS).to_numpy(), index=runs["run"].to_numpy())
    rows = frame[frame["run"].isin(runs["run"])]
    metric = rows["run"].map(metric_of_run).to_numpy()
    value = np.full(len(rows), np.nan)
    for name in OSCILLATION_METRICS.values():
        if name in rows:
            take = metric == name
            value[take] = rows[name].to_numpy(dtype=float)[take]
    measured = ~np.isnan(value)
    out = pd.DataFrame({"run": runs["run"].to_numpy(), "metric": metric_of_run.to_numpy()})
    out = out.join(_late_changes(rows["run"].to_numpy()[measured], value[measured]), on="run")
    out["measurements"] = out["measurements"].fillna(0).astype(int)
    enough = out["measurements"] >= family.map(MIN_MEASUREMENTS).to_numpy()
    out["oscillation"] = out["oscillation"].where(enough)
    return out


def _late_changes(run: np.ndarray, value: np.ndarray) -> pd.DataFrame:
    """Per run (its values in order, runs one after another): E, its number of values, and the mean absolute
    change between neighbours among its last ⌈E/4⌉ + 1 values."""
    if not len(run):
        return pd.DataFrame({"measurements": [], "oscillation": []})
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    sizes = np.diff(np.r_[starts, len(run)])  # E
    changes_kept = -(-sizes // 4)  # ⌈E/4⌉
    from_end = np.repeat(starts + sizes, sizes) - np.arange(len(run))  # 1 for a run's last value
    # the change from value i to i+1 counts where i is in the window (i+1, nearer the end, then is too)
    counted = np.r_[(from_end[:-1] <= np.repeat(changes_kept + 1, sizes)[:-1]) & (run[1:] == run[:-1]), False]
    changes = np.where(counted, np.abs(np.diff(value, append=np.nan)), 0.0)
    oscillation = np.add.reduceat(changes, starts) / changes_kept
    return pd.DataFrame({"measurements": sizes, "oscillation": oscillation}, index=run[starts])


# --- the statistics --------------------------------------------------------------------------------------------

def improvement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) for X drawn from a row of `a` and Y from the same row of `b` (shapes (B, n) and
    (B, m)): the Mann–Whitney count from midranks of the pooled row, (rank sum of a − n(n + 1)/2) / (n·m)."""
    n, m = a.shape[-1], b.shape[-1]
    ranks = rankdata(np.concatenate([a, b], axis=-1), axis=-1)
    return (ranks[..., :n].sum(axis=-1) - n * (n + 1) / 2) / (n * m)


@dataclass(frozen=True)
class Curves:
    """What a side's runs on one task took to get where: per run, the best value so far at each measurement (in
    the better-is-higher direction: a metric where lower is better is negated), its cost there (gradient
    evaluations or wall seconds), and its final value."""
    best: list[np.ndarray]
    cost: list[np.ndarray]
    final: np.ndarray


def expected_time(curves: Curves, drawn: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The expected running time to each resample's target (COCO's ERT): over the runs drawn in that resample (rows
    of `drawn`, indices into the runs), the total cost of every run until it first reaches the target (its whole
    run where it never does) over the number that reached it; ∞ where none did. A seed that never reaches the
    target counts: its cost is in the total, and it is no success."""
    slack = target_slack(targets)
    spent = np.empty((len(curves.best), len(targets)))
    reached = np.empty(spent.shape, dtype=bool)
    for run, (best, cost) in enumerate(zip(curves.best, curves.cost)):
        first = np.searchsorted(best, targets - slack, side="left")  # `best` never falls
        reached[run] = first < len(best)
        spent[run] = np.where(reached[run], cost[np.minimum(first, len(best) - 1)], cost[-1])
    resample = np.arange(len(targets))[:, None]
    with np.errstate(divide="ignore"):
        return spent[drawn, resample].sum(axis=1) / reached[drawn, resample].sum(axis=1)


def stratified_bootstrap(samples: list[np.ndarray], statistic, resamples: int = RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(statistic of the samples, and the 2.5th and 97.5th percentiles of it over `resamples` resamples), where each
    sample (the seeds of one side on one task) is drawn with replacement on its own: the bootstrap over seeds,
    stratified by task and side. `statistic` maps arrays of shape (B, n_i) to (B,). The percentiles are order
    statistics (no interpolation, so a bound may be ∞); a resample where the statistic is undefined (NaN) is left
    out. A fixed seed makes the interval reproducible."""
    observed = float(statistic([x[None, :] for x in samples])[0])
    rng = np.random.default_rng(seed)
    values = statistic([x[rng.integers(0, len(x), size=(resamples, len(x)))] for x in samples])
    values = values[~np.isnan(values)]
    if not len(values):
        return observed, math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return observed, float(low), float(high)


def seeds_needed(half_width: float, seeds: float, difference: float) -> float:
    """Seeds per side that would bring a 95% CI of half-width `half_width`, measured with `seeds` per side, under
    `difference`, the half-width falling as 1/√n: the smallest whole n ≥ 2 with half_width · √(seeds / n) <
    difference. ∞ where the difference is 0; NaN where the spread is unknown."""
    if not (math.isfinite(half_width) and half_width >= 0 and seeds > 0 and math.isfinite(difference)):
        return math.nan
    if difference <= 0:
        return math.inf
    return float(max(2, math.floor(seeds * (half_width / difference) ** 2) + 1))


def _harmonic_seeds(counts: list[int]) -> float:
    """The seeds per side a stratified interval rests on: the harmonic mean of the (task, side) counts (a mean's
    variance goes as the mean of 1/n)."""
    return len(counts) / sum(1 / k for k in counts) if counts else math.nan


# --- the claims ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    name: str
    section: str
    words: str
    measure: str  # what is measured, {a} and {b} the sides
    kind: str  # "difference": of probabilities of improvement; "ratio": a over b
    direction: int  # the side of the null the paper claims: +1 above, −1 below
    supported: str
    contradicted: str
    null: float | None = None  # default: 0 for a difference, 1 for a ratio


BETTER = Claim(
    "Better across tasks", "Abstract; §7",
    "AdaLA leads to better convergence across a variety of Deep Learning tasks, datasets, and models",
    "P(a run of {a} beats a run of {b} on the same task), value by the selection rule, mean over the tasks",
    "difference", +1, "supported: AdaLA better across the tasks", "contradicted: AdaBelief better across the tasks")
INSTABILITY = Claim(
    "Instability", "§6", "the instability of AdaLA during gradient descent",
    "P(a run of {a} oscillates more late in training than a run of {b}), mean over the tasks",
    "difference", +1, "supported: AdaLA oscillates more", "contradicted: AdaLA oscillates less")
FASTER_EVALS = Claim(
    "Faster convergence (gradient evaluations)", "§6; §7", "AdaLA leads to improved convergence",
    "expected gradient evaluations to reach AdaBelief's final value, {a} / {b}, geometric mean over the tasks",
    "ratio", -1, "supported: AdaLA reaches it with fewer gradient evaluations",
    "contradicted: AdaLA needs more gradient evaluations")
FASTER_WALL = Claim(
    "Faster convergence (wall time)", "§6; §7", "AdaLA leads to improved convergence",
    "expected wall seconds to reach AdaBelief's final value, {a} / {b}, geometric mean over the tasks", "ratio", -1,
    "supported: AdaLA reaches it sooner", "contradicted: AdaLA takes longer to reach it")
COST = Claim(
    "Longer training times", "§6; §7",
    "AdaLA [...] leads to longer training times as a result of \"looking ahead\"",
    "wall seconds per training epoch, {a} / {b}, geometric mean over the tasks", "ratio", +1,
    "supported: AdaLA's epochs take longer", "contradicted: AdaLA's epochs are no slower")
FIX_STABILITY = Claim(
    "The proposed fix: more stable", "§7",
    "a weighted linear or non-linear combination of the \"looked ahead\" gradients and EMA gradient estimates will "
    "lead to improved stability", "P(a run of {a} oscillates less late in training than a run of {b}), mean over the "
    "tasks", "difference", +1, "supported: more stable than AdaLA", "contradicted: less stable than AdaLA")
FIX_CONVERGENCE = Claim(
    "The proposed fix: convergence kept", "§7", "while retaining AdaLA's improved convergence",
    "P(a run of {a} beats a run of {b}), mean over the tasks; kept if the CI stays above −" f"{SMALLEST_DIFFERENCE:g}",
    "difference", +1, "supported: not worse than AdaLA by the smallest difference of interest",
    "contradicted: worse than AdaLA by more than the smallest difference of interest", null=-SMALLEST_DIFFERENCE)


@dataclass(frozen=True)
class Claims:
    rows: pd.DataFrame  # CLAIM_COLUMNS: claims.csv
    instability: pd.DataFrame  # INSTABILITY_COLUMNS, one row per run: instability.csv
    per_task: pd.DataFrame  # PER_TASK_COLUMNS: AdaLA's and AdaBelief's oscillation per task, with Welch's CI
    mix: pd.DataFrame  # MIX_COLUMNS: per task and side (AdaBelief, each weight w, AdaLA) value and oscillation
    holm: str  # the answer table's cells after Holm's adjustment, in words


def claims_view(frame: pd.DataFrame, runs: pd.DataFrame, comparison: pd.DataFrame, rule: str) -> Claims:
    """The whole view: `frame` the report's long frame (the fix's runs included), `runs` the tables' runs
    (choose_hparams), `comparison` the answer (stats.adala_vs_adabelief)."""
    fix = fix_runs(frame, rule)
    fix = fix[fix["used"]]
    table = runs[runs["used"] & runs["table"].notna()]
    every = pd.concat([  # every run a table cell or the fix averages: instability.csv
        table.assign(side=table["optimizer"].astype(object),
                     lookahead_weight=np.where(table["optimizer"] == ADALA, 1.0, np.nan)),
        fix.assign(side=fix["optimizer"], optimizer=ADALA)], ignore_index=True)
    every["task"], every["optimizer"] = every["task"].astype(object), every["optimizer"].astype(object)
    every = every.drop(columns="metric").merge(oscillations(frame, every), on="run", how="left")
    sides = every[every["side"].isin([ADALA, ADABELIEF, *fix["optimizer"]])].reset_index(drop=True)
    sides = _with_seconds_per_epoch(sides)
    curves = _curves(frame, sides, ("grad_evals", "wall_s"))

    rows = [_difference_row(BETTER, sides, ADALA, ADABELIEF, "value"),
            _difference_row(INSTABILITY, sides, ADALA, ADABELIEF, "oscillation", more_is_better=True),
            _time_row(FASTER_EVALS, sides, curves["grad_evals"]),
            _time_row(FASTER_WALL, sides, curves["wall_s"]),
            _cost_row(sides)]
    weights = sorted(w for w in set(fix["lookahead_weight"]) if w > 0)
    for weight in weights:
        rows += [_difference_row(FIX_STABILITY, sides, _weight_side(weight), ADALA, "oscillation",
                                 more_is_better=False),
                 _difference_row(FIX_CONVERGENCE, sides, _weight_side(weight), ADALA, "value")]
    if not weights:
        rows.append(_no_fix_row(fix))
    every["model"] = every["task"].map(lambda t: TASKS[t].model)
    instability = every.sort_values(["task", "optimizer", "lookahead_weight", "seed"], key=_catalog_order)
    return Claims(rows=pd.DataFrame(rows, columns=CLAIM_COLUMNS),
                  instability=instability[INSTABILITY_COLUMNS].reset_index(drop=True),
                  per_task=_per_task(sides), mix=_mix(sides, set(fix["task"])), holm=_holm_words(comparison))


def _catalog_order(column: pd.Series) -> pd.Series:
    return column.map({name: i for i, name in enumerate(TASKS)}) if column.name == "task" else column


def _with_seconds_per_epoch(sides: pd.DataFrame) -> pd.DataFrame:
    """The sides' runs with adala-plan's reading of each (its seconds per epoch and epochs done) and adala-plan's
    estimate of seconds per epoch for each task and side (what GPU-hours are counted in)."""
    records = [read_run(path) for path in sides["run_dir"].astype(str)]
    epochs = np.array([record.epochs_done for record in records], dtype=float)
    sides = sides.assign(seconds_per_epoch=[seconds_per_epoch(record) or math.nan for record in records],
                         epochs_done=epochs, grad_evals_per_epoch=sides["final_grad_evals"] / np.maximum(epochs, 1))
    estimates = {}
    for (task, side), group in sides.groupby(["task", "side"]):
        takes_lookahead = side == ADALA or group["lookahead_weight"].iloc[0] > 0
        estimates[(task, side)] = estimated_seconds_per_epoch([records[i] for i in group.index],
                                                              TASKS[task].family.name, takes_lookahead)[0]
    return sides.assign(estimated_seconds_per_epoch=[estimates[key] for key in zip(sides["task"], sides["side"])])


def _curves(frame: pd.DataFrame, sides: pd.DataFrame, costs: tuple[str, ...]
            ) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray, float]]]:
    """Per cost, per run of the sides with a measured metric: its best value so far at each measurement (negated
    where lower is better, so higher is better), its cost there, and its final value (the metric at the last
    measurement; a GAN's FID on fid_curve before the last epoch and fid at it, as the cross-task view reads it)."""
    rows = frame[frame["run"].isin(sides["run"])]
    higher = rows["task"].astype(object).map(lambda t: TASKS[t].family.higher_is_better).to_numpy(dtype=bool)
    measured = metric_series(rows)
    measured = np.where(higher, measured, -measured)
    curves = {}
    for cost in costs:
        spent = rows[cost].to_numpy(dtype=float)
        keep = ~np.isnan(measured) & ~np.isnan(spent)
        run, value, spent = rows["run"].to_numpy()[keep], measured[keep], spent[keep]
        starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]]) if len(run) else []
        curves[cost] = {int(run[start]): (np.maximum.accumulate(v), c, float(v[-1]))
                        for start, v, c in zip(starts, np.split(value, starts[1:]), np.split(spent, starts[1:]))}
    return curves


def _paired_runs(sides: pd.DataFrame, a: str, b: str, has) -> tuple[list[str], list[np.ndarray], str]:
    """Per task in catalog order where two or more runs of each side have what the claim measures (`has`: a mask
    of the sides' rows): the task, and the positions of a's and of b's runs in `sides`; and the tasks left out, by
    why."""
    tasks, positions, left = [], [], {}
    for task in TASKS:
        here = (sides["task"] == task).to_numpy()
        pair = [np.flatnonzero(here & (sides["side"] == side).to_numpy()) for side in (a, b)]
        measured = [p[has[p]] for p in pair]
        if min(len(p) for p in measured) >= 2:
            tasks.append(task)
            positions += measured
            continue
        reasons = [_shortfall(side, len(p), len(m)) for side, p, m in zip((a, b), pair, measured)]
        if reasons[0] == f"no runs of {side_label(a)}" and reasons[1] == f"no runs of {side_label(b)}":
            reasons = [f"no runs of {side_label(a)} or {side_label(b)}"]
        left.setdefault("; ".join(r for r in reasons if r), []).append(TASKS[task].model)
    if len(left) == 1 and not tasks:
        (reason, _), = left.items()
        return tasks, positions, f"{reason} on any task"
    return tasks, positions, "; ".join(f"{reason} ({', '.join(models)})" for reason, models in left.items())


def _shortfall(side: str, runs: int, measured: int) -> str:
    """Why one side of a task cannot enter a claim's interval ('' when it can)."""
    label = side_label(side)
    if runs == 0:
        return f"no runs of {label}"
    if measured >= 2:
        return ""
    if runs == 1:
        return f"one seed of {label}"
    return f"{measured} of {runs} runs of {label} measured"


def _difference_row(claim: Claim, sides: pd.DataFrame, a: str, b: str, column: str,
                    more_is_better: bool | None = None) -> dict:
    """A probability-of-improvement claim: P(a beats b) averaged over the tasks, and its difference P(a beats b) −
    P(b beats a) = 2P − 1 with a stratified bootstrap CI. 'Beats' is the task's better direction for values, and
    `more_is_better` for anything else."""
    values = sides[column].to_numpy(dtype=float)
    tasks, positions, left = _paired_runs(sides, a, b, ~np.isnan(values))
    row = _row_start(claim, a, b, tasks, left)
    if not tasks:
        return row
    signs = [1.0 if (TASKS[t].family.higher_is_better if more_is_better is None else more_is_better) else -1.0
             for t in tasks for _ in (a, b)]
    samples = [sign * values[p] for sign, p in zip(signs, positions)]

    def statistic(drawn: list[np.ndarray]) -> np.ndarray:
        return np.mean([improvement(drawn[i], drawn[i + 1]) for i in range(0, len(drawn), 2)], axis=0)

    chance, low, high = stratified_bootstrap(samples, statistic)
    effect, low, high = 2 * chance - 1, 2 * low - 1, 2 * high - 1
    row.update(value_a=chance, value_b=1 - chance)
    return _row_end(row, claim, sides, (a, b), tasks, positions, effect, low, high, (high - low) / 2,
                    abs(effect - row["null"]), SMALLEST_DIFFERENCE)


def _time_row(claim: Claim, sides: pd.DataFrame, curves: dict) -> dict:
    """Time to AdaBelief's final value: per task, AdaLA's expected running time over AdaBelief's, the target being
    the mean final value of the AdaBelief runs drawn (so it is re-estimated in every resample, and at least one of
    them reaches it); the geometric mean over the tasks, with each side's own geometric mean as its value."""
    tasks, positions, left = _paired_runs(sides, ADALA, ADABELIEF, sides["run"].isin(curves).to_numpy())
    row = _row_start(claim, ADALA, ADABELIEF, tasks, left)
    if not tasks:
        return row
    run_ids = sides["run"].to_numpy()
    sets = [_curve_set(curves, run_ids[p]) for p in positions]

    def times_(drawn: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        pairs = []
        for i in range(0, len(drawn), 2):
            targets = sets[i + 1].final[drawn[i + 1]].mean(axis=1)
            pairs.append((expected_time(sets[i], drawn[i], targets), expected_time(sets[i + 1], drawn[i + 1], targets)))
        return pairs

    def statistic(drawn: list[np.ndarray]) -> np.ndarray:
        return np.exp(np.mean([np.log(ta) - np.log(tb) for ta, tb in times_(drawn)], axis=0))

    identity = [np.arange(len(p)) for p in positions]
    ratio, low, high = stratified_bootstrap(identity, statistic)
    observed = times_([x[None, :] for x in identity])
    row.update(value_a=_geomean([ta[0] for ta, _ in observed]), value_b=_geomean([tb[0] for _, tb in observed]))
    if never := [TASKS[task].model for task, (ta, _) in zip(tasks, observed) if ta[0] == math.inf]:
        row["measure"] += f"; no AdaLA run reached it on {', '.join(never)}"
    return _ratio_end(row, claim, sides, tasks, positions, ratio, low, high)


def _curve_set(curves: dict, runs: np.ndarray) -> Curves:
    best, cost, final = zip(*(curves[run] for run in runs))
    return Curves(list(best), list(cost), np.array(final))


def _cost_row(sides: pd.DataFrame) -> dict:
    """Wall seconds per epoch: per task AdaLA's mean over AdaBelief's, the geometric mean over the tasks."""
    seconds = sides["seconds_per_epoch"].to_numpy(dtype=float)
    tasks, positions, left = _paired_runs(sides, ADALA, ADABELIEF, ~np.isnan(seconds))
    row = _row_start(COST, ADALA, ADABELIEF, tasks, left)
    if not tasks:
        return row
    samples = [seconds[p] for p in positions]

    def statistic(drawn: list[np.ndarray]) -> np.ndarray:
        return np.exp(np.mean([np.log(drawn[i].mean(axis=1) / drawn[i + 1].mean(axis=1))
                               for i in range(0, len(drawn), 2)], axis=0))

    ratio, low, high = stratified_bootstrap(samples, statistic)
    row.update(value_a=_geomean([x.mean() for x in samples[0::2]]), value_b=_geomean([x.mean() for x in samples[1::2]]))
    evals = sides["grad_evals_per_epoch"].to_numpy(dtype=float)
    evals_ratio = _geomean([evals[a].mean() / evals[b].mean() for a, b in zip(positions[0::2], positions[1::2])])
    row["measure"] += f" (gradient evaluations per epoch: {times(evals_ratio)})"
    return _ratio_end(row, COST, sides, tasks, positions, ratio, low, high)


def _ratio_end(row: dict, claim: Claim, sides: pd.DataFrame, tasks: list[str], positions: list[np.ndarray],
               ratio: float, low: float, high: float) -> dict:
    """A ratio's interval is symmetric on the log scale: its half-width and distances are taken there."""
    with np.errstate(divide="ignore", invalid="ignore"):
        half_width = float((np.log(high) - np.log(low)) / 2)
        observed = float(abs(np.log(ratio)))
    return _row_end(row, claim, sides, (ADALA, ADABELIEF), tasks, positions, ratio, low, high, half_width, observed,
                    math.log(SMALLEST_RATIO))


def _geomean(values: list[float]) -> float:
    values = np.asarray(values, dtype=float)
    return math.inf if np.isinf(values).any() else float(np.exp(np.log(values).mean()))


def _row_start(claim: Claim, a: str, b: str, tasks: list[str], left: str) -> dict:
    row = dict.fromkeys(CLAIM_COLUMNS, math.nan)
    labels = {"a": side_label(a), "b": side_label(b)}
    row.update(claim=claim.name, section=claim.section, paper_words=claim.words, measure=claim.measure.format(**labels),
               side_a=labels["a"], side_b=labels["b"], effect_kind=claim.kind,
               null=claim.null if claim.null is not None else (0.0 if claim.kind == "difference" else 1.0),
               tasks=len(tasks), left_out=left, verdict="no data", verdict_text=f"no data: {left}",
               smallest_difference=SMALLEST_DIFFERENCE if claim.kind == "difference" else SMALLEST_RATIO)
    return row


def _row_end(row: dict, claim: Claim, sides: pd.DataFrame, names: tuple[str, str], tasks: list[str],
             positions: list[np.ndarray], effect: float, low: float, high: float, half_width: float,
             observed: float, smallest: float) -> dict:
    """The interval, the verdict and what would settle it: seeds per side for the half-width (`half_width`, on the
    scale the CI is symmetric on) to fall under the observed distance from the null and under the smallest
    difference of interest, and the GPU-hours of the seeds to add."""
    seeds = _harmonic_seeds([len(p) for p in positions])
    verdict = _verdict(low, high, row["null"], claim.direction)
    to_observed, to_smallest = (seeds_needed(half_width, seeds, d) for d in (observed, smallest))
    row.update(effect=effect, ci_low=low, ci_high=high, verdict=verdict, seeds_per_side=seeds,
               verdict_text={"supported": claim.supported, "contradicted": claim.contradicted}.get(
                   verdict, f"not settled: the CI holds both sides of {_null_text(row['null'], claim.kind)}"),
               seeds_to_observed=to_observed, gpu_hours_to_observed=_gpu_hours(sides, tasks, names, to_observed),
               seeds_to_smallest=to_smallest, gpu_hours_to_smallest=_gpu_hours(sides, tasks, names, to_smallest))
    return row


def _null_text(null: float, kind: str) -> str:
    return f"×{null:g}" if kind == "ratio" else f"{null:g}"


def _verdict(low: float, high: float, null: float, direction: int) -> str:
    """supported: the CI lies wholly on the side of the null the paper claims; contradicted: wholly on the other."""
    if math.isnan(low) or math.isnan(high):
        return "no data"
    above, below = low > null, high < null
    if (above and direction > 0) or (below and direction < 0):
        return "supported"
    if above or below:
        return "contradicted"
    return "not settled"


def _gpu_hours(sides: pd.DataFrame, tasks: list[str], names: tuple[str, str], seeds: float) -> float:
    """Hours (adala-plan's seconds-per-epoch estimate × the epochs the runs trained) of the seeds each task and
    side lacks to reach `seeds`."""
    if not math.isfinite(seeds):
        return seeds
    hours = 0.0
    for task in tasks:
        for side in names:
            mine = sides[(sides["task"] == task) & (sides["side"] == side)]
            missing = max(seeds - len(mine), 0)
            hours += missing * mine["epochs_done"].max() * mine["estimated_seconds_per_epoch"].iloc[0] / 3600
    return hours


def _no_fix_row(fix: pd.DataFrame) -> dict:
    only_zero = "only w=0 (AdaBelief's residual), " if len(fix) else ""
    left = f"{only_zero}no AdaLA runs at a lookahead_weight between 0 and 1"
    row = _row_start(FIX_STABILITY, "w<1", ADALA, [], left)
    row.update(claim="The proposed fix", paper_words=f"{FIX_STABILITY.words} {FIX_CONVERGENCE.words}",
               measure="stability and value at each lookahead_weight w between 0 and 1, against AdaLA",
               verdict_text=f"no data: {left} (adala-train --multirun +experiment=claims_mix runs them)")
    return row


def _effect_text(value: float, kind: str) -> str:
    if value == math.inf:
        return "×∞"
    return times(value) if kind == "ratio" else signed(value)


def _per_task(sides: pd.DataFrame) -> pd.DataFrame:
    """Per task, AdaLA's and AdaBelief's oscillation: mean, sample std, n, and AdaLA − AdaBelief with Welch's CI."""
    rows = []
    for task, info in TASKS.items():
        here = sides[sides["task"] == task]
        values = {side: here.loc[here["side"] == side, "oscillation"].dropna().to_numpy(dtype=float)
                  for side in (ADALA, ADABELIEF)}
        result = welch(values[ADALA], values[ADABELIEF])
        row = {"task": task, "model": info.model, "metric": OSCILLATION_METRICS[info.family.name],
               "diff": result.diff, "ci_low": result.ci_low, "ci_high": result.ci_high, "p_value": result.p_value}
        for side, x in values.items():
            row.update(summary(side, x))
        rows.append(row)
    return pd.DataFrame(rows, columns=PER_TASK_COLUMNS)


def _mix(sides: pd.DataFrame, tasks: set[str]) -> pd.DataFrame:
    """Per task with runs of the fix, per side (AdaBelief, then w ascending, AdaLA as w = 1): the value and the
    oscillation, mean, sample std and n."""
    rows = []
    for task in (t for t in TASKS if t in tasks):
        here = sides[sides["task"] == task]
        ordered = here.assign(order=here["lookahead_weight"].fillna(-1.0)).sort_values("order")
        for side, runs in ordered.groupby("side", sort=False):
            row = {"task": task, "model": TASKS[task].model, "family": TASKS[task].family.name,
                   "metric": TASKS[task].family.metric, "side": side_label(side),
                   "lookahead_weight": runs["lookahead_weight"].iloc[0]}
            shaken = runs["oscillation"].dropna().to_numpy(dtype=float)
            row.update(n=len(runs), **_mean_std("value", runs["value"].to_numpy(dtype=float)),
                       oscillation_n=len(shaken), **_mean_std("oscillation", shaken))
            rows.append(row)
    return pd.DataFrame(rows, columns=MIX_COLUMNS)


def _mean_std(prefix: str, x: np.ndarray) -> dict:
    """<prefix>_mean and <prefix>_std: stats.sample_mean_std under the mix table's names."""
    return dict(zip((f"{prefix}_mean", f"{prefix}_std"), sample_mean_std(x)))


def _holm_words(comparison: pd.DataFrame) -> str:
    """The answer's cells after Holm's adjustment, in one sentence."""
    tested = comparison[comparison["p_holm"].notna()]
    if tested.empty:
        return "No cell has two runs on each side: no per-cell test to adjust."
    significant = tested[tested["p_holm"] < 1 - CONFIDENCE]
    better = int(((significant["diff"] > 0) == significant["higher_is_better"]).sum())
    worse = len(significant) - better
    return (f"Per cell (the answer's table), after Holm's adjustment over the {count(len(tested), 'tested cell')}: "
            f"AdaLA better in {better}, worse in {worse}, neither in {len(tested) - len(significant)} at the 5% level.")


# --- the view as page blocks ----------------------------------------------------------------------------------

OSCILLATION_DEFINITION = (
    "**Late-phase oscillation**, per run: the mean absolute change of the task's test metric between consecutive "
    "measurements over the last quarter of the run, precisely its last ⌈E/4⌉ + 1 of E measurements (⌈E/4⌉ changes: "
    "one for E ≤ 4, two from E = 5, 50 of a 200-epoch run). The metric is test_acc (CIFAR-10), test_ppl (PTB), or "
    "for the GANs fid_curve (measured every `task.fid.every` epochs; the final FID, from more samples, is left out) "
    "where it was measured at least three times. A run with fewer measurements has none.")


def claims_blocks(view: Claims, rule: str, figures: set[str] | None, level: int = 2) -> list[Block]:
    """The claims table, how each number is made, the oscillation per task, and the fix at each weight with its
    figures where `figures` (the file names drawn; None: figures were not asked for) has them."""
    rows = view.rows
    blocks: list[Block] = [
        Heading(level, "The paper's claims, tested"),
        Text("Each claim of the paper as these runs test it: the paper's words, what is measured, the two sides, "
             "their difference (or ratio) with a 95% CI, the verdict, and what would settle it. " + _tally(rows)),
        Table(["Claim", "The paper (§)", "Measured", "A", "B", "A vs B [95% CI]", "Verdict", "Would settle it"],
              [_claim_cells(r) for r in rows.itertuples()], align="lllrrrll"),
        Bullets([
            f"Intervals: a bootstrap over seeds, stratified by task and side (each side's seeds on each task "
            f"resampled on their own; {RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}, so the same runs give the "
            "same report); a task enters a claim with two or more runs on each side, and the row says which were "
            "left out and why.",
            "A vs B for a probability of improvement P (a run of A beats a run of B on the same task, ties count "
            "half; mean over the tasks): P(A better) − P(B better) = 2P − 1, 0 when neither side is better. For a "
            "ratio: the geometric mean over the tasks of A's figure over B's, 1 when they are alike; A's and B's "
            "columns are each side's geometric mean.",
            f"Values by the selection rule `{rule}`. Time to target: the target is AdaBelief's final value on the "
            "task (the mean of its runs' last measured values, as the cross-task view's; re-estimated in every "
            "resample); a side's time is its expected running time (COCO's ERT): the gradient evaluations (or wall "
            "seconds) all its runs spent until each first reached the target, a run that never reaches it with its "
            "whole budget, over the number that reached it. A seed that never reaches the target counts as not "
            "reached, never as dropped; ∞ where none does.",
            "Verdict: supported where the CI lies wholly on the side the paper claims, contradicted where it lies "
            "wholly on the other, not settled where it holds both.",
            "Would settle it: the seeds per side at which the CI's half-width, falling as 1/√n from the observed "
            "spread, drops under the observed distance from no difference (first figure), and under the smallest "
            f"difference of interest (second: {SMALLEST_DIFFERENCE:g} in 2P − 1, i.e. P = "
            f"{(1 + SMALLEST_DIFFERENCE) / 2:g}; ×{SMALLEST_RATIO:g} in a ratio); with the GPU-hours of the seeds "
            "to add (adala-plan's estimate: seconds per epoch measured from these runs).",
            view.holm]),
    ]
    blocks += _instability_blocks(view, level + 1)
    blocks += _fix_blocks(view, rule, figures, level + 1)
    return blocks + [Text("As CSV: [claims.csv](claims.csv) (the table), [instability.csv](instability.csv) (every "
                          "run's oscillation).")]


def _tally(rows: pd.DataFrame) -> str:
    kinds = rows["verdict"].value_counts()
    said = ", ".join(f"{kinds[kind]} {kind}" for kind in ("supported", "contradicted", "not settled", "no data")
                     if kind in kinds)
    return f"Of {count(len(rows), 'row')}: {said}."


def _claim_cells(r) -> list[str]:
    spec = ".3g" if r.effect_kind == "ratio" else ".2f"

    def value(x: float) -> str:
        return "∞ (not reached on a task)" if x == math.inf else number(x, spec)

    effect = MISSING if r.verdict == "no data" else (
        f"{_effect_text(r.effect, r.effect_kind)} [{_effect_text(r.ci_low, r.effect_kind)}, "
        f"{_effect_text(r.ci_high, r.effect_kind)}]")
    scope = f"; over {count(r.tasks, 'task')}" if r.tasks else ""
    left = f"; left out: {r.left_out}" if r.tasks and r.left_out else ""
    return [r.claim, f"\u201c{r.paper_words}\u201d ({r.section})", f"{r.measure}{scope}{left}",
            f"{r.side_a} {value(r.value_a)}", f"{r.side_b} {value(r.value_b)}",
            effect, r.verdict_text, _settle(r)]


def _settle(r) -> str:
    if r.verdict == "no data" or math.isnan(r.seeds_to_observed) and math.isnan(r.seeds_to_smallest):
        return MISSING
    smallest = times(r.smallest_difference, ".1f") if r.effect_kind == "ratio" else f"{r.smallest_difference:g}"
    return (f"{_seeds(r.seeds_to_observed, r.gpu_hours_to_observed)} at the observed effect; "
            f"{_seeds(r.seeds_to_smallest, r.gpu_hours_to_smallest)} at {smallest} "
            f"(now {number(r.seeds_per_side, '.3g')})")


def _seeds(seeds: float, hours: float) -> str:
    if math.isnan(seeds):
        return MISSING
    if math.isinf(seeds):
        return "never (no difference)"
    return f"{seeds:.0f} seeds per side ({'+' + number(hours, '.2g') + ' GPU-h' if hours > 0 else 'there now'})"


def _instability_blocks(view: Claims, level: int) -> list[Block]:
    per_task = view.per_task[(view.per_task["n_adala"] > 0) | (view.per_task["n_adabelief"] > 0)]
    blocks: list[Block] = [Heading(level, "Instability: late-phase oscillation per task"), Text(OSCILLATION_DEFINITION)]
    if per_task.empty:
        return blocks + [Text("No AdaLA or AdaBelief run has an oscillation.")]
    rows = []
    for r in per_task.itertuples():
        result = "–" if math.isnan(r.ci_low) else (
            "inside the noise (CI contains 0)" if r.ci_low <= 0 <= r.ci_high else
            f"AdaLA oscillates {'more' if r.diff > 0 else 'less'} (CI excludes 0)")
        rows.append([r.model, r.metric, mean_std(r.mean_adala, r.std_adala, r.n_adala, n_text="({n})"),
                     mean_std(r.mean_adabelief, r.std_adabelief, r.n_adabelief, n_text="({n})"),
                     f"{signed(r.diff, '.3g')} [{signed(r.ci_low, '.3g')}, {signed(r.ci_high, '.3g')}]", result])
    return blocks + [Table(["Model", "metric", "AdaLA ± std (n)", "AdaBelief ± std (n)", "diff [95% CI, Welch]",
                            "verdict"], rows, align="llrrrl")]


def _fix_blocks(view: Claims, rule: str, figures: set[str] | None, level: int) -> list[Block]:
    blocks: list[Block] = [
        Heading(level, "The proposed fix: the residual g − (w·g′ + (1 − w)·m)"),
        Text("AdaLA's belief residual blended with AdaBelief's (`optimizer.lookahead_weight=w`, docs/ADALA.md step "
             "5): w = 1 is AdaLA, w = 0 AdaBelief's residual through AdaLA's code; AdaBelief's own runs beside "
             "them. `adala-train --multirun +experiment=claims_mix` runs w = 0, 0.25, 0.5, 0.75 and 1 on every "
             "task. The runs at w < 1 are never a table cell's: only this view reads them."),
    ]
    mix = view.mix
    if mix.empty:
        return blocks + [Text("No AdaLA runs at a lookahead_weight below 1 in these runs.")]
    for family in dict.fromkeys(mix["family"]):
        blocks += figure(figures, MIX_FIGURES[family],
                         f"{FAMILIES[family].title.split(' (')[0]}: the value (rule `{rule}`) and the late-phase "
                         "oscillation against w, mean ± std over seeds; AdaBelief's runs dashed.")
    sides = list(dict.fromkeys(mix.sort_values("lookahead_weight", na_position="first")["side"]))
    by = mix.set_index(["model", "side"])
    for title, column in ((f"Value (rule `{rule}`), mean ± std (n)", "value"),
                          ("Late-phase oscillation, mean ± std (n)", "oscillation")):
        n = "n" if column == "value" else "oscillation_n"
        rows = [[model] + [mean_std(by.loc[(model, side), f"{column}_mean"], by.loc[(model, side), f"{column}_std"],
                                    int(by.loc[(model, side), n]), n_text="({n})")
                           if (model, side) in by.index else MISSING for side in sides]
                for model in dict.fromkeys(mix["model"])]
        blocks += [Text(title + ":"), Table(["Model"] + sides, rows)]
    return blocks
