"""How the report writes numbers and counts, in one place for every view (the page, the tables, the lr search).

    number     a value with a format spec; MISSING ("–") for None, NaN and infinity; never "-0.00"
    signed     the same with its sign: "+1.25", "-0.50"
    times      a ratio: "×1.23"
    rank       a rank: "1", "1.5"
    mean_std   "mean ± std (n=k)"
    exact      a logged number exactly (shortest round-trip repr), integers without ".0"
    count      a count with its noun: "1 run", "3 cells"
    unbounded  number, with +inf as "∞"
"""
from __future__ import annotations

import math

MISSING = "–"


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def number(x, spec: str = ".2f", missing: str = MISSING) -> str:
    if not _finite(x):
        return missing
    text = format(float(x), spec)
    return format(0.0, spec) if float(text) == 0 else text  # a value that rounds to 0 has no minus sign


def signed(x, spec: str = ".2f", missing: str = MISSING) -> str:
    return number(x, "+" + spec, missing)


def times(x, spec: str = ".2f", missing: str = MISSING) -> str:
    return "×" + number(x, spec) if _finite(x) else missing


def rank(x) -> str:
    return f"{x:g}" if _finite(x) else MISSING


def mean_std(mean, std, n: int, pm: str = "±", n_text: str = "(n={n})", missing: str = MISSING) -> str:
    """'62.50 ± 0.71 (n=2)'; `missing` when nothing was averaged (n = 0), '–' for a std of one value."""
    if n == 0:
        return missing
    return f"{number(mean, missing=missing)} {pm} {number(std, missing=missing)} {n_text.format(n=n)}"


def exact(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def count(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"


def unbounded(x, spec: str = ".2f") -> str:
    """A value that may be +inf (the worst a perplexity or an FID can be: a diverged run's, in the tuning view)."""
    return "∞" if x == math.inf else number(x, spec)
