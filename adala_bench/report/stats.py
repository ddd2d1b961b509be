"""AdaLA against AdaBelief per cell: difference of means, Welch 95% confidence interval and p-value (with Holm's
adjustment for testing every cell at once), and the verdict each row supports (one of VERDICTS, computed once; the
words on the page follow from it)."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from adala_bench.catalog import TABLES, optimizer_label, table_family, table_tasks
from .format import mean_std, number, signed
from .page import Block, Bullets, Heading, Table, Text, to_markdown
from .tables import NO_RUNS, shared_flags


@dataclass(frozen=True)
class Welch:
    diff: float
    ci_low: float
    ci_high: float
    df: float
    p_value: float


def welch(a, b, confidence: float = 0.95) -> Welch:
    """mean(a) − mean(b) with the Welch–Satterthwaite interval; NaN unless both samples have n ≥ 2."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        nan = math.nan
        return Welch(float(a.mean()) - float(b.mean()) if len(a) and len(b) else nan, nan, nan, nan, nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return Welch(diff, diff, diff, math.nan, math.nan)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return Welch(diff, diff - half, diff + half, float(df), p_value)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of the finite p-values (m of them; NaN stays NaN): the i-th smallest becomes
    max over j ≤ i of min(1, (m − j + 1) · p_(j)), so that rejecting where it is below α keeps the chance of any
    false rejection among the m under α."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


COMPARISON_COLUMNS = [
    "table", "model", "metric", "higher_is_better", "n_adala", "mean_adala", "std_adala", "n_adabelief",
    "mean_adabelief", "std_adabelief", "diff", "ci_low", "ci_high", "df", "p_value", "p_holm", "paper_diff",
    "ci_contains_zero", "ci_contains_paper_diff", "verdict", "flags",
]
SIDES = ("adala", "adabelief")
# What a row supports (its `verdict`), each with the name the answer's tally gives it.
VERDICTS = {
    "better": "AdaLA better",
    "worse": "AdaLA worse",
    "inside the noise": "inside the noise",
    "not testable": "not testable (n < 2 on a side)",
    "no runs": "without runs of one or both",
}


def adala_vs_adabelief(runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per model column: AdaLA − AdaBelief over the runs each table cell averages."""
    rows = []
    used = runs[runs["used"]]
    for table in TABLES:
        family = table_family(table)
        for task in table_tasks(table):
            values = {
                name: used.loc[(used["task"] == task.name) & (used["optimizer"] == name), "value"].to_numpy(float)
                for name in SIDES
            }
            result = welch(values["adala"], values["adabelief"])
            cell = cells[(cells["table"] == table) & (cells["model"] == task.model)].set_index("optimizer")
            paper_diff = cell["paper"].get("adala", math.nan) - cell["paper"].get("adabelief", math.nan)
            flags = [f"{name}: {cell['flags'].get(name)}" for name in SIDES if cell["flags"].get(name)]
            if min(len(v) for v in values.values()) < 2:
                flags.insert(0, "n<2")
            testable = np.isfinite(result.ci_low)
            row = {
                "table": table, "model": task.model, "metric": family.metric,
                "higher_is_better": family.higher_is_better,
                **summary("adala", values["adala"]), **summary("adabelief", values["adabelief"]),
                "diff": result.diff, "ci_low": result.ci_low, "ci_high": result.ci_high, "df": result.df,
                "p_value": result.p_value, "paper_diff": paper_diff,
                "ci_contains_zero": bool(result.ci_low <= 0 <= result.ci_high) if testable else None,
                "ci_contains_paper_diff": bool(result.ci_low <= paper_diff <= result.ci_high) if testable else None,
                "flags": "; ".join(flags),
            }
            rows.append(row | {"verdict": verdict_kind(row)})
    comparison = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    comparison["p_holm"] = holm(comparison["p_value"])
    return comparison


def sample_mean_std(sample: np.ndarray) -> tuple[float, float]:
    """The mean (NaN of no value) and the sample standard deviation, ddof 1 (NaN below two values)."""
    return (float(sample.mean()) if len(sample) else math.nan,
            float(sample.std(ddof=1)) if len(sample) >= 2 else math.nan)


def summary(name: str, sample: np.ndarray) -> dict:
    """n_<name>, mean_<name> and std_<name> of a sample (the comparison tables' columns)."""
    mean, std = sample_mean_std(sample)
    return {f"n_{name}": len(sample), f"mean_{name}": mean, f"std_{name}": std}


def verdict_kind(row) -> str:
    """What a comparison row (a mapping of its columns) supports: one of VERDICTS."""
    if row["n_adala"] == 0 or row["n_adabelief"] == 0:
        return "no runs"
    if pd.isna(row["ci_contains_zero"]):  # None; NaN as read back from the CSV
        return "not testable"
    if row["ci_contains_zero"]:
        return "inside the noise"
    return "better" if (row["diff"] > 0) == row["higher_is_better"] else "worse"


def verdict(row) -> str:
    """A row's verdict in words, from its kind."""
    kind = row.verdict
    if kind == "no runs":
        missing = [name for name, n in (("AdaLA", row.n_adala), ("AdaBelief", row.n_adabelief)) if n == 0]
        return f"no runs of {' and '.join(missing)}"
    if kind == "not testable":
        return "not testable (needs n ≥ 2 on both sides)"
    if kind == "inside the noise":
        return "difference inside the noise (CI contains 0)"
    return f"{VERDICTS[kind]} (CI excludes 0)"


def tally(comparison: pd.DataFrame) -> str:
    """'Of the 8 cells of Tables 2-4: AdaLA worse in 1, inside the noise in 7.'"""
    kinds = comparison["verdict"].value_counts()
    counts = ", ".join(f"{name} in {kinds[kind]}" for kind, name in VERDICTS.items() if kind in kinds)
    return f"Of the {len(comparison)} cells of Tables 2-4: {counts}."


COMPARISON_NOTE = (
    "diff = mean(AdaLA) − mean(AdaBelief) over the runs each table cell averages; 95% CI by Welch–"
    "Satterthwaite; p from Welch's t-test (scipy.stats.ttest_ind, equal_var=False); p (Holm): the same p-values "
    "adjusted by Holm's step-down method for the cells tested together (a difference holds at 5% over the whole "
    "table only where it is below 0.05). paper diff = the paper's AdaLA − AdaBelief. Accuracy: higher is better; "
    "perplexity and FID: lower is better."
)


def comparison_table(comparison: pd.DataFrame, with_std: bool = False) -> Table:
    """One row per model column: both means (n), the difference with its CI, p, the paper's difference, the
    verdict; `with_std` adds each side's sample std."""
    def side(mean, std, n) -> str:
        return mean_std(mean, std, n, n_text="({n})") if with_std and n else f"{number(mean)} ({n})"

    rows = []
    for r in comparison.itertuples():
        ci = f"[{signed(r.ci_low)}, {signed(r.ci_high)}]"
        rows.append([f"{r.table[:5]} {r.table[5:]}", r.model, side(r.mean_adala, r.std_adala, r.n_adala),
                     side(r.mean_adabelief, r.std_adabelief, r.n_adabelief), f"{signed(r.diff)} {ci}",
                     number(r.p_value, ".3g"), number(r.p_holm, ".3g"), signed(r.paper_diff), verdict(r)])
    spread = " ± std" if with_std else ""
    header = ["Table", "Model", f"AdaLA{spread} (n)", f"AdaBelief{spread} (n)", "diff [95% CI]", "p (Welch)",
              "p (Holm)", "paper diff", "verdict"]
    return Table(header, rows, align="llrrrrrrl")


def comparison_flags(comparison: pd.DataFrame, cells: pd.DataFrame) -> tuple[str, list[str]]:
    """The flags of the compared cells: what every side with runs carries, said once ('' when nothing is), and one
    line per row with flags of its own (n < 2 on a side; each side's cell flags, once where both sides share
    them)."""
    flag_list = cells.set_index(["table", "model", "optimizer"])["flag_list"]

    def flags_of(r, side) -> tuple[str, ...]:
        return flag_list.get((r.table, r.model, side), (NO_RUNS,))

    rows = list(comparison.itertuples())
    with_runs = [flags_of(r, side) for r in rows for side in SIDES if getattr(r, f"n_{side}")]
    shared = shared_flags(with_runs)
    lines = []
    for r in rows:
        own = {side: ", ".join(f for f in flags_of(r, side) if f not in shared) for side in SIDES}
        parts = ["n < 2 on a side"] if min(r.n_adala, r.n_adabelief) < 2 else []
        if own["adala"] and own["adala"] == own["adabelief"]:
            parts.append(f"AdaLA and AdaBelief: {own['adala']}")
        else:
            parts += [f"{optimizer_label(side)}: {own[side]}" for side in SIDES if own[side]]
        if parts:
            lines.append(f"{r.table[:5]} {r.table[5:]} / {r.model}: " + "; ".join(parts))
    return ", ".join(shared), lines


def flag_blocks(comparison: pd.DataFrame, cells: pd.DataFrame) -> list[Block]:
    shared, lines = comparison_flags(comparison, cells)
    if not shared and not lines:
        return []
    every = f" Every cell: {shared}." if shared else ""
    return [Text(f"Flags of these cells.{every}")] + ([Bullets(lines)] if lines else [])


def comparison_blocks(comparison: pd.DataFrame, cells: pd.DataFrame, rule: str) -> list[Block]:
    return ([Heading(2, f"AdaLA against AdaBelief (rule `{rule}`)"), comparison_table(comparison),
             Text(COMPARISON_NOTE)] + flag_blocks(comparison, cells))


def render_comparison_markdown(comparison: pd.DataFrame, cells: pd.DataFrame, rule: str) -> str:
    return to_markdown(comparison_blocks(comparison, cells, rule))
