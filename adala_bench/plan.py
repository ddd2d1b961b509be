"""`adala-plan`: where a sweep stands, read from the run store alone, and the GPU-hours it still needs.

    adala-plan +experiment=table2 seed=0,1,2              # every run of Table 2's sweep, one line each
    adala-plan +experiment=table3 'seed=range(0,10)' --summary
    adala-plan task=cifar10_vgg11,ptb_lstm1 optimizer=sgd,adam seed=0,1 profile=smoke results.root=results/tour

It takes exactly what `adala-train --multirun` takes (the same overrides, Hydra's sweep syntax), and lists the runs
that sweep names (sweep_runs.py: composed and named as the runner names them) with their state from the run store
(records.py): completed, diverged (the epoch and step), running, interrupted, not started, unreadable. Completed
and diverged runs are done (the runner never re-runs them); the others are left.

GPU-hours left = sum over the runs left of (epochs left) × (seconds per epoch). Seconds per epoch is gpu_hours.py's:
measured where the same cell of the sweep has finished runs (the mean over them of final wall_s / epochs), otherwise
a rough guess per task family, doubled for an optimizer that takes the look-ahead closure (AdaLA: two gradient
evaluations per step).

Nothing is written; the lock of a run whose status says running is probed for microseconds (records.read_run).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from adala_bench.cli import OneLineParser
from adala_bench.config import ConfigError, options
from adala_bench.gpu_hours import (DEFAULT_SECONDS_PER_EPOCH, LOOKAHEAD_FACTOR, estimated_seconds_per_epoch,
                                   seconds_per_epoch)
from adala_bench.records import DONE_STATES, STATES, RunRecord, read_run
from adala_bench.sweep_runs import Cell, sweep_cells

PROG = "adala-plan"
EXAMPLES = ("adala-plan +experiment=table2 seed=0,1,2 | adala-plan +experiment=table3 'seed=range(0,10)' --summary | "
            "adala-plan task=cifar10_vgg11 optimizer=sgd,adam seed=0,1 profile=smoke results.root=results/tour")


@dataclass
class Estimate:
    """A cell's runs as read from the store, and its seconds per epoch."""

    cell: Cell
    records: list[RunRecord] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    source: str = ""

    def hours_left(self, record: RunRecord) -> float:
        if record.done:
            return 0.0
        return max(self.cell.epochs - record.epochs_done, 0) * self.seconds_per_epoch / 3600


def survey(cells: list[Cell]) -> list[Estimate]:
    """Each cell's run records and its seconds per epoch (measured where it has finished runs)."""
    estimates = []
    for cell in cells:
        estimate = Estimate(cell, [read_run(path) for path in cell.paths])
        estimate.seconds_per_epoch, estimate.source = estimated_seconds_per_epoch(
            estimate.records, cell.family, cell.run.takes_lookahead)
        estimates.append(estimate)
    return estimates


def detail(record: RunRecord, epochs: int) -> str:
    """The state's particulars in words."""
    done = f"{record.epochs_done}/{epochs} epochs"
    if record.state == "completed":
        measured = seconds_per_epoch(record)
        return done + (f", {_seconds(measured)} s/epoch" if measured else "")
    if record.state == "diverged":
        at = record.diverged_at
        return f"at epoch {at.get('epoch', '?')}, step {at.get('step', '?')}" if at else "(epoch not recorded)"
    if record.state == "running":
        return f"{done} done, pid {record.holder}"
    if record.state == "interrupted":
        return f"{done} done; {record.reason}"
    return record.reason or ""


# -- output -------------------------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [str(v).rjust(w) if i in right else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _shorten(text: str, width: int = 72) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render(args: list[str], estimates: list[Estimate], summary: bool) -> str:
    variants = any(e.cell.variant for e in estimates)
    runs = [(e, record, seed) for e in estimates for record, seed in zip(e.records, e.cell.seeds)]
    roots = list(dict.fromkeys(e.cell.root for e in estimates))
    where = ", ".join(f"{root}" + ("" if root.is_dir() else " (which does not exist yet)") for root in roots)
    seeds = sorted({seed for e in estimates for seed in e.cell.seeds})
    out = [f"{' '.join(args) or '(no overrides)'}: {len(estimates)} configs, {len(runs)} runs "
           f"(seeds {_seed_list(seeds)}) under {where}"]
    if not summary:
        header = ["task", "optimizer", *(["sweep"] if variants else []), "seed", "state", "detail", "est. h left"]
        rows = [[e.cell.task, e.cell.optimizer, *([e.cell.variant] if variants else []), str(seed), record.state,
                 _shorten(detail(record, e.cell.epochs)), "-" if record.done else f"{e.hours_left(record):.2f}"]
                for e, record, seed in runs]
        out += ["", *_table(header, rows, right={len(header) - 1, header.index("seed")})]
    counts = {state: sum(record.state == state for _, record, _ in runs) for state in STATES}
    shown = [state for state in STATES if counts[state] or state != "unreadable"]
    header = ["task", "optimizer", *(["sweep"] if variants else []), "runs", "done", "left", *shown,
              "s/epoch", "from", "est. h left"]
    rows = []
    for e in estimates:
        cell_counts = {state: sum(record.state == state for record in e.records) for state in STATES}
        done = sum(cell_counts[state] for state in DONE_STATES)
        rows.append([e.cell.task, e.cell.optimizer, *([e.cell.variant] if variants else []), str(len(e.records)),
                     str(done), str(len(e.records) - done), *(str(cell_counts[state]) for state in shown),
                     _seconds(e.seconds_per_epoch), e.source, f"{sum(map(e.hours_left, e.records)):.2f}"])
    first_number = header.index("runs")
    out += ["", *_table(header, rows, right=set(range(first_number, len(header))) - {header.index("from")})]

    done = sum(counts[state] for state in DONE_STATES)
    total_hours = sum(e.hours_left(record) for e, record, _ in runs)
    measured = sum(e.source.startswith("measured") for e in estimates)
    out += [
        "",
        "by state: " + ", ".join(f"{counts[state]} {state}" for state in shown),
        f"est. GPU-hours left: {total_hours:.1f}",
        f"  = epochs left × seconds per epoch, measured from finished runs in {measured} of {len(estimates)} configs "
        "(wall_s: training only, evaluation excluded, so low by the evaluation time)"
        + ("" if measured == len(estimates) else ";"),
        *([] if measured == len(estimates) else [
            f"    elsewhere a rough guess per task family for one modern GPU ({_guesses()}; ×{LOOKAHEAD_FACTOR} for a "
            "look-ahead optimizer)"]),
        f"{len(runs)} runs: {done} done, {len(runs) - done} left",
    ]
    return "\n".join(out) + "\n"


def _seed_list(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}..{seeds[-1]}"
    return ",".join(map(str, seeds))


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _guesses() -> str:
    return ", ".join(f"{family} {seconds:g} s/epoch" for family, seconds in DEFAULT_SECONDS_PER_EPOCH.items())


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        usage=f"{PROG} [--summary] OVERRIDE [OVERRIDE ...]",
        description="List every run of the sweep that `adala-train --multirun OVERRIDES` runs, with its state "
                    "(completed, diverged, running now, interrupted, not started), read from the run store, and "
                    "estimate the GPU-hours left. Completed and diverged runs are done; the others are left.",
        epilog=f"examples: {EXAMPLES}",
    )
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="adala-train's overrides, Hydra's syntax: +experiment=table2, seed=0,1,2 or "
                             "'seed=range(0,10)', profile=smoke, results.root=..., task=a,b ...")
    parser.add_argument("--summary", action="store_true",
                        help="only the per-config counts and the totals, not one line per run")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)  # --summary may come after the overrides
    experiments = options("experiment")
    for arg in args.overrides:
        if "=" not in arg and arg in experiments:
            parser.error(f"give the experiment as +experiment={arg} (adala-plan takes adala-train's overrides)")
        if "=" not in arg:
            parser.error(f"{arg!r} is not an override; give key=value as to adala-train, e.g. {EXAMPLES.split(' | ')[0]}")
    try:
        cells = sweep_cells(list(args.overrides))
    except ConfigError as error:
        parser.error(str(error))
    sys.stdout.write(render(list(args.overrides), survey(cells), args.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
