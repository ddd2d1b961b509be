"""Search spaces and the points of a tuning sweep's trials (conf/spaces/, conf/experiment/tune_*.yaml).

A search space is a YAML mapping whose keys are numeric hyperparameters of the optimizer's config section, each a
dimension (settings.SpaceDimension):

    lr:  {low: 0.1, high: 10, scale: log, relative: true}     # × the lr the config gives: as-run lr × [0.1, 10]
    eps: {low: 1.0e-16, high: 1.0e-6, scale: log}

Trial i is the i-th point u of ONE scrambled Sobol sequence in [0, 1)^MAX_DIMENSIONS (scipy.stats.qmc.Sobol, seed
SOBOL_SEED): the same point whatever the optimizer, so every optimizer's trial i draws the same quantiles. A space of
d dimensions takes the first d coordinates, in the order its file lists them (the shipped spaces list lr first), and
maps u_j to low·(high/low)^u_j (log) or low + (high − low)·u_j (linear), times the config's value where relative.
The points of a sequence do not depend on how many are drawn, so trial i names the same run whatever the budget.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from adala_bench.settings import SettingsError, SpaceDimension

MAX_DIMENSIONS = 8
SOBOL_SEED = 0
KEYS = ("low", "high", "scale", "relative")
# A tuning run's track, as its config.yaml records it under `tuning` (left out of the run's identity): a trial of a
# tuning sweep (`tuning: {track: tuned, trial: i}`), or a run of the defaults track (conf/experiment/defaults_*).
TUNED, DEFAULTS = "tuned", "defaults"


def load(path: Path, section: Mapping[str, Any], optimizer: str) -> list[SpaceDimension]:
    """The space in the YAML file `path`, checked against the optimizer's config section (SettingsError in one
    line naming the file and the key): every dimension is a hyperparameter the section gives a number for."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    where = f"space {str(path)!r}"
    try:
        loaded = OmegaConf.to_container(OmegaConf.load(path))
    except FileNotFoundError:
        raise SettingsError(f"{where}: no such file") from None
    except (OSError, OmegaConfBaseException, ValueError) as error:
        raise SettingsError(f"{where} cannot be read: {' '.join(str(error).split())}") from None
    if not isinstance(loaded, dict) or not loaded:
        raise SettingsError(f"{where} must map hyperparameters to dimensions, e.g. "
                            "lr: {low: 0.1, high: 10, scale: log, relative: true}")
    if len(loaded) > MAX_DIMENSIONS:
        raise SettingsError(f"{where} has {len(loaded)} dimensions; at most {MAX_DIMENSIONS}")
    numeric = [key for key, value in section.items() if _is_number(value)]
    dimensions = []
    for name, spec in loaded.items():
        if name not in numeric:
            raise SettingsError(f"{where}: unknown dimension {name!r} for optimizer {optimizer}; allowed: "
                                f"{', '.join(numeric)} (the numbers its config gives)")
        if not isinstance(spec, dict):
            raise SettingsError(f"{where}: {name} must be a mapping of {', '.join(KEYS)}")
        unknown = sorted(set(spec) - set(KEYS))
        if unknown:
            raise SettingsError(f"{where}: {name}.{unknown[0]} is not a key of a dimension; allowed: {', '.join(KEYS)}")
        absent = [key for key in ("low", "high") if key not in spec]
        if absent:
            raise SettingsError(f"{where}: {name}.{absent[0]} is missing")
        try:
            dimension = SpaceDimension(name=name, **spec)
        except SettingsError as error:
            raise SettingsError(f"{where}: {error}") from None
        if dimension.relative and not section[name] > 0:
            raise SettingsError(f"{where}: {name} is relative, but optimizer.{name}={section[name]!r} is not > 0")
        dimensions.append(dimension)
    return dimensions


@functools.lru_cache(maxsize=None)
def _sobol(m: int) -> np.ndarray:
    from scipy.stats import qmc

    return qmc.Sobol(d=MAX_DIMENSIONS, scramble=True, rng=SOBOL_SEED).random_base2(m)


def sobol_point(index: int) -> np.ndarray:
    """Point `index` (from 0) of the tuning sequence: MAX_DIMENSIONS coordinates in [0, 1). The first 2^m points are
    drawn at once (a power of two keeps Sobol's balance; scipy warns otherwise)."""
    if index < 0:
        raise ValueError(f"a trial index is ≥ 0, got {index}")
    return _sobol(max(0, math.ceil(math.log2(index + 1))))[index]


def value(dimension: SpaceDimension, u: float, base: float) -> float:
    """The hyperparameter value of coordinate u ∈ [0, 1) (`base`: the config's value, the unit of a relative one)."""
    low, high = dimension.low, dimension.high
    x = low * (high / low) ** u if dimension.scale == "log" else low + (high - low) * u
    return float(x * base if dimension.relative else x)


def trial_values(index: int, dimensions: list[SpaceDimension], section: Mapping[str, Any]) -> dict[str, float]:
    """Trial `index`'s hyperparameters: each dimension's value at its coordinate of the trial's point."""
    point = sobol_point(index)
    return {d.name: value(d, float(point[j]), section[d.name]) for j, d in enumerate(dimensions)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
