"""The runs a sweep names: `adala-train --multirun ARGS`'s jobs (overrides.sweep_jobs, as Hydra makes them), each
composed and named exactly as the runner names it (config.RunConfig), without training anything.

The config is composed once per cell (one composed config: a task × optimizer × any other swept value) and each of its
seeds is a directory of that cell's tag, so listing a 1,000-run sweep takes seconds; the keys only config.normalised
reads (lr_scale, trial) are set on a composed config, so a tuning sweep's K trials of a task × optimizer compose once.
adala-plan and adala-sweep read the state of these runs from the run store (records.read_run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from adala_bench.config import ConfigError, RunConfig, compose
from adala_bench.overrides import parse, sweep_jobs
from adala_bench.settings import SettingsError, check_type
from adala_bench.store import layout_path

SEED = "seed"
NOT_A_VARIANT = ("task", "optimizer", SEED)
LATE_KEYS = ("lr_scale", "trial")  # top-level keys that only config.normalised reads (conf/config.yaml)


@dataclass
class Cell:
    """One composed config of a sweep and the seeds it runs with."""

    run: RunConfig
    variant: str  # the other swept values, e.g. "lr_scale=0.3" ("" when only task, optimizer and seed are swept)
    seeds: list[int]

    task = property(lambda self: self.run.task)
    optimizer = property(lambda self: self.run.optimizer.name)
    family = property(lambda self: self.run.family)
    epochs = property(lambda self: self.run.run.epochs)
    root = property(lambda self: self.run.results_root)

    def path(self, seed: int) -> Path:
        return layout_path(self.run.results_root, self.task, self.optimizer, self.run.tag, seed)

    @property
    def paths(self) -> list[Path]:
        return [self.path(seed) for seed in self.seeds]


def sweep_cells(args: list[str]) -> list[Cell]:
    """The sweep's cells in the sweep's order (ConfigError in one line for anything adala-train would refuse)."""
    jobs = sweep_jobs(args)
    swept = _swept_keys(jobs)
    groups: dict[tuple[str, ...], list[str | None]] = {}
    for job in jobs:
        rest = tuple(override for override in job if _key(override) != SEED)
        seed = next((override.split("=", 1)[1] for override in job if _key(override) == SEED), None)
        groups.setdefault(rest, []).append(seed)
    cells = []
    for rest, seeds in groups.items():
        try:
            run = RunConfig.of(_compose(rest))
        except (HydraException, OmegaConfBaseException) as error:
            raise ConfigError(f"cannot compose {' '.join(rest)}: {_first_line(error)}") from None
        given = [_seed(value) for value in seeds if value is not None]
        if len(set(given)) != len(given):
            raise ConfigError(f"{SEED}: a seed is given twice in {', '.join(map(str, given))}")
        variant = " ".join(override for override in rest if _key(override) in swept
                           and _key(override) not in NOT_A_VARIANT)
        cells.append(Cell(run, variant, given or [run.run.seed]))
    return cells


def _compose(overrides: tuple[str, ...]):
    """compose(*overrides), where the keys only config.normalised reads (lr_scale, trial) are set on the config the
    other overrides compose instead of composed anew: the trials of a tuning sweep's cell compose once, not K times."""
    late = [override for override in overrides if override.split("=", 1)[0] in LATE_KEYS]
    cfg = compose(*[override for override in overrides if override not in late])
    for override in parse(late):
        cfg[override.key_or_group] = override.value()
    return cfg


def sweep_paths(args: list[str]) -> list[Path]:
    """Every run directory of the sweep, in the sweep's order."""
    return [path for cell in sweep_cells(args) for path in cell.paths]


def _seed(value: str) -> int:
    try:
        seed = check_type(SEED, int(value) if value.lstrip("-").isdigit() else value, int)
    except SettingsError as error:
        raise ConfigError(str(error)) from None
    if seed < 0:
        raise ConfigError(f"{SEED}={seed} is not allowed; it must be a non-negative integer")
    return seed


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _swept_keys(jobs: list[list[str]]) -> set[str]:
    """Keys whose value differs between jobs."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            values.setdefault(_key(override), set()).add(override)
    return {key for key, seen in values.items() if len(seen) > 1}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
