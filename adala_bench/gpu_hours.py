"""GPU-hours from the run store: how long an epoch of a config takes, measured where its runs have finished, guessed
where none has. adala-plan counts the hours a sweep has left with it; the report's claims view the hours the seeds a
claim needs would cost.

A finished run's seconds per epoch is its final wall_s / epochs (the last metrics row; wall_s is training time only,
evaluation excluded, so the estimate is low by the evaluation time). A config's is the mean over its finished runs,
else DEFAULT_SECONDS_PER_EPOCH of its task family, doubled for an optimizer that takes the look-ahead closure (AdaLA:
two gradient evaluations per step).
"""

from __future__ import annotations

from adala_bench.records import RunRecord

# Rough guesses, NOT measurements: seconds per training epoch of the paper protocol (fp32) on one modern data-centre
# GPU (A100/H100 class), used only for a config with no finished run yet. The CIFAR-10 models differ by a few times
# among themselves (VGG11 < ResNet34 < DenseNet121), and `profile=smoke` or `fast` runs are much quicker: finish one
# run per config and the measured figure replaces the guess.
DEFAULT_SECONDS_PER_EPOCH = {"cifar10": 15.0, "ptb": 60.0, "gan": 120.0}
LOOKAHEAD_FACTOR = 2  # an optimizer that takes the look-ahead closure evaluates two gradients per step


def estimated_seconds_per_epoch(records: list[RunRecord], family: str, takes_lookahead: bool) -> tuple[float, str]:
    """(seconds per epoch, where it comes from) for runs of one config: the mean over its finished runs, or the task
    family's guess (doubled for an optimizer that takes the look-ahead closure) where none has finished."""
    measured = [s for s in map(seconds_per_epoch, records) if s]
    if measured:
        return sum(measured) / len(measured), f"measured (n={len(measured)})"
    factor = LOOKAHEAD_FACTOR if takes_lookahead else 1
    return DEFAULT_SECONDS_PER_EPOCH[family] * factor, "guess" + (f" x{LOOKAHEAD_FACTOR} look-ahead" if factor > 1
                                                                   else "")


def seconds_per_epoch(record: RunRecord) -> float | None:
    """A finished run's final wall_s / epochs (wall_s: training time, evaluation excluded)."""
    if not record.done or record.last_row is None:
        return None
    try:
        wall, epochs = float(record.last_row["wall_s"]), int(record.last_row["epoch"]) + 1
    except (ValueError, TypeError, KeyError):
        return None
    return wall / epochs if epochs > 0 and wall > 0 else None
