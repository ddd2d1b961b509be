"""`adala-plan`: where a sweep stands, read from the run store alone, and the GPU-hours it still needs.

    adala-plan table2 --seeds 0,1,2                  # every run of Table 2's sweep, one line each
    adala-plan table3 --seeds 0-9 --summary          # per (task, optimizer) counts and the totals only
    adala-plan table2 profile=smoke --runs results/demo/runs

The runs are the ones `adala-train --multirun +experiment=EXPERIMENT seed=SEEDS [overrides]` would run: the
experiment's `hydra.sweeper.params` crossed with the overrides (a `key=a,b` override is a sweep axis, and an override
of a swept key replaces the experiment's list, as Hydra's basic sweeper does), times the seeds. The config is composed
once per (task, optimizer) (the seed is not part of the hparam tag) and each seed's directory is
`store.layout_path(<runs>, task, optimizer, hparam_tag, seed)`, so the names are exactly the runner's.

Each run's state, from its status.json and its lock:
  completed    status completed
  diverged     status diverged (with the epoch and step)
  running      status running and its `.lock` held by a live process (the trainer's OS lock)
  interrupted  status failed, or status running with the lock free (the process was killed)
  not started  no status.json
(`unreadable`: a status.json that cannot be read or names no known state; counted as left, all epochs to go.)
Completed and diverged runs are done (the runner never re-runs them); the others are left.

GPU-hours left = sum over the runs left of (epochs left) × (seconds per epoch). Seconds per epoch is measured where
the same (task, optimizer) cell of the sweep has finished runs: the mean over them of final wall_s / epochs (the last
line of metrics.jsonl; wall_s is training time only, evaluation excluded, so the estimate is low by the evaluation
time). Otherwise it is DEFAULT_SECONDS_PER_EPOCH of the task family, a rough guess, doubled for an optimizer that
takes the look-ahead closure (AdaLA: two gradient evaluations per step).

Nothing but the run store is read (status.json of every run, the lock of runs marked running, the last line of
metrics.jsonl of finished runs), and nothing is written. The lock probe takes the lock for microseconds and drops it
at once (it is never taken from a holder); only runs whose status says running are probed, and those are either held
by their trainer or were killed, so a trainer could only meet the probe when it resumes a killed run in that very
microsecond (it would then report the run busy: a sweep skips it, a single run stops).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from adala_bench.cli import OneLineParser

PROG = "adala-plan"
DEFAULT_SEEDS = "0,1,2"
# Rough guesses, NOT measurements: seconds per training epoch of the paper protocol (fp32) on one modern data-centre
# GPU (A100/H100 class), used only for a (task, optimizer) with no finished run yet. The CIFAR-10 models differ by
# a few times among themselves (VGG11 < ResNet34 < DenseNet121), and `profile=smoke` or `fast` runs are much quicker:
# finish one run per cell and the measured figure replaces the guess.
DEFAULT_SECONDS_PER_EPOCH = {"cifar10": 15.0, "ptb": 60.0, "gan": 120.0}
FALLBACK_SECONDS_PER_EPOCH = 60.0  # a task family not in the table
LOOKAHEAD_FACTOR = 2  # an optimizer that takes the look-ahead closure evaluates two gradients per step

DONE_STATES = ("completed", "diverged")
LEFT_STATES = ("running", "interrupted", "unreadable", "not started")
STATE_ORDER = DONE_STATES + LEFT_STATES
SEED_KEY = "seed"


class PlanError(ValueError):
    """Bad input: one line on stderr, exit status 2."""


@dataclass
class Cell:
    """One composed config of the sweep (a task × optimizer, × any other swept value) and its seeds."""

    task: str
    optimizer: str
    variant: str  # the other swept values, e.g. "lr_scale=0.5" ("" when only task and optimizer are swept)
    family: str
    tag: str
    epochs: int
    lookahead: bool
    seeds: list[int]
    runs: list["Run"] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    source: str = ""


@dataclass
class Run:
    seed: int
    path: Path
    state: str
    detail: str
    epochs_done: int = 0
    measured: float | None = None  # a finished run's seconds per epoch (final wall_s / epochs)


# -- the sweep ----------------------------------------------------------------------------------------------------------
def experiments(conf_dir: Path) -> list[str]:
    return sorted(path.stem for path in (conf_dir / "experiment").glob("*.yaml"))


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` or ranges `0-33` (inclusive), or both: `0-9,20`. Non-negative integers, each once."""
    seeds: list[int] = []
    for item in text.split(","):
        item = item.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise PlanError(f"--seeds {text!r}: {item!r} is not a seed; give non-negative integers like 0,1,2 or a "
                            "range like 0-33")
        first, last = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if last < first:
            raise PlanError(f"--seeds {text!r}: the range {item!r} is empty")
        seeds.extend(range(first, last + 1))
    return _check_seeds(seeds, f"--seeds {text!r}")


def _check_seeds(seeds: list[int], where: str) -> list[int]:
    seen = set()
    for seed in seeds:
        if seed in seen:
            raise PlanError(f"{where}: seed {seed} is given twice")
        seen.add(seed)
    return seeds


def sweep_groups(sweeper_params: dict[str, str], arguments: list[str]) -> tuple[list[list[str]], list[int] | None]:
    """The sweep's jobs with the seed left out, one list of overrides per composed config, in the sweep's order,
    and the seeds a `seed=` argument gives (None when there is none). Hydra's basic sweeper does the crossing."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(
        [f"{key}={value}" for key, value in sweeper_params.items()] + arguments)
    seeds = None
    rest = []
    for override in overrides:
        if override.get_key_element().lstrip("+~") != SEED_KEY:
            rest.append(override)
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() \
            else [override.get_value_element_as_str()]
        if not all(re.fullmatch(r"\d+", value) for value in values):
            raise PlanError(f"{override.input_line}: a seed must be a non-negative integer")
        seeds = _check_seeds([int(value) for value in values], override.input_line)
    return BasicSweeper.split_arguments(rest, None)[0], seeds


def compose_cells(experiment: str, overrides: list[str], seeds: list[int] | None, runs_root: str | None
                  ) -> tuple[list[Cell], Path]:
    """Compose the config once per cell of the sweep; returns the cells (seeds attached) and the results root."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from adala_bench.runner import CONF_DIR, ConfigError, apply_aliases, check_group_overrides
    from adala_bench.store import hparam_tag

    known = experiments(CONF_DIR)
    if experiment not in known:
        raise PlanError(f"unknown experiment {experiment!r}; allowed: {', '.join(known)}")
    if any(arg.lstrip("+~").split("=", 1)[0] == "experiment" for arg in overrides):
        raise PlanError("give the experiment as the first argument, not as an override")
    if runs_root is not None:
        if any(arg.lstrip("+~").startswith("results.root=") for arg in overrides):
            raise PlanError("give the results root once: --runs or results.root=, not both")
        overrides = [*overrides, f"results.root={runs_root}"]
    arguments = [f"+experiment={experiment}", *overrides]
    compose_errors = (HydraException, OmegaConfBaseException, ValueError, KeyError)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            params = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True
                             ).hydra.sweeper.get("params")
        except compose_errors as error:
            raise PlanError(f"experiment {experiment!r} cannot be composed: {_first_line(error)}") from None
        params = OmegaConf.to_container(params) if params else {}
        if not params:
            raise PlanError(f"experiment {experiment!r} sweeps nothing (no hydra.sweeper.params)")
        params = {key: str(value) for key, value in params.items()}
        try:
            check_group_overrides([f"{key}={value}" for key, value in params.items()] + overrides)
            groups, given_seeds = sweep_groups(params, arguments)
        except (ConfigError, HydraException) as error:
            override = getattr(error, "override", None)  # a parse error says which override it could not read
            raise PlanError((f"cannot read the override {override!r}: " if override else "") + _first_line(error)
                            ) from None
        if given_seeds is not None and seeds is not None:
            raise PlanError("give the seeds once: --seeds or seed=, not both")
        seeds = given_seeds if given_seeds is not None else seeds if seeds is not None else parse_seeds(DEFAULT_SEEDS)
        swept = {override.split("=", 1)[0] for group in groups for override in group
                 if sum(override in g for g in groups) < len(groups)}
        cells, root = [], None
        for group in groups:
            try:
                cfg = compose("config", overrides=group)
                with contextlib.redirect_stderr(io.StringIO()):  # the runner's deprecation line is for adala-train
                    apply_aliases(cfg)
                tag = hparam_tag(cfg)
            except ConfigError as error:
                raise PlanError(str(error)) from None
            except compose_errors as error:
                raise PlanError(f"cannot compose {' '.join(group)}: {_first_line(error)}") from None
            epochs = cfg.epochs
            if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= 0:
                raise PlanError(f"epochs={epochs!r} is not allowed; it must be a positive integer")
            root = Path(cfg.results.root)
            variant = " ".join(o for o in group if o.split("=", 1)[0] in swept
                               and o.split("=", 1)[0].lstrip("+~") not in ("task", "optimizer"))
            cells.append(Cell(task=cfg.task.name, optimizer=cfg.optimizer.name, variant=variant,
                              family=str(cfg.task.get("family")), tag=tag, epochs=epochs,
                              lookahead="lookahead_batch" in cfg.optimizer, seeds=seeds))
    return cells, root


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- the run store ------------------------------------------------------------------------------------------------------
def last_line(path: Path, chunk: int = 4096) -> str | None:
    """The last non-empty line of a text file, reading from its end (bytes that are not UTF-8 shown as U+FFFD);
    None if there is none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            data = b""
            while end > 0:
                start = max(0, end - chunk)
                handle.seek(start)
                data = handle.read(end - start) + data
                end = start
                lines = data.rstrip(b"\n").rsplit(b"\n", 1)
                if len(lines) == 2 or end == 0:
                    line = lines[-1].strip()
                    return line.decode(errors="replace") if line else None
    except OSError:
        return None
    return None


def finished_seconds_per_epoch(path: Path) -> float | None:
    """final wall_s / epochs from the last metrics row (wall_s: training time, evaluation excluded)."""
    from adala_bench.store import METRICS_FILE

    line = last_line(path / METRICS_FILE)
    try:
        row = json.loads(line) if line else None
        wall, epochs = float(row["wall_s"]), int(row["epoch"]) + 1
    except (ValueError, TypeError, KeyError):
        return None
    return wall / epochs if epochs > 0 and wall > 0 else None


def read_run(path: Path, seed: int, epochs: int) -> Run:
    from adala_bench.store import STATUS_FILE, lock_holder

    try:
        text = (path / STATUS_FILE).read_text()
    except FileNotFoundError:
        return Run(seed, path, "not started", "")
    except OSError as error:
        return Run(seed, path, "unreadable", f"status.json: {error.strerror}")
    try:
        status = json.loads(text)
        state = status["state"]
        done = int(status.get("epochs_done") or 0)
    except (ValueError, TypeError, KeyError):
        return Run(seed, path, "unreadable", "status.json is not a run status")
    of = f"{done}/{epochs} epochs"
    if state == "completed":
        measured = finished_seconds_per_epoch(path)
        return Run(seed, path, "completed", of + (f", {_seconds(measured)} s/epoch" if measured else ""), done, measured)
    if state == "diverged":
        at = status.get("diverged_at") or {}
        where = f"at epoch {at.get('epoch', '?')}, step {at.get('step', '?')}" if at else "(epoch not recorded)"
        return Run(seed, path, "diverged", where, done, finished_seconds_per_epoch(path))
    if state == "running":
        holder = lock_holder(path)
        if holder is not None:
            return Run(seed, path, "running", f"{of} done, pid {holder}", done)
        return Run(seed, path, "interrupted", f"{of} done; killed (status running, lock free)", done)
    if state == "failed":
        reason = str(status.get("reason") or "no reason recorded")
        reason = reason.removesuffix("; re-run to resume from the last checkpoint")
        return Run(seed, path, "interrupted", f"{of} done; failed: {reason}", done)
    return Run(seed, path, "unreadable", f"unknown state {state!r}", done)


def survey(cells: list[Cell], root: Path) -> None:
    """Fill in each cell's runs and its seconds per epoch."""
    from adala_bench.store import layout_path

    for cell in cells:
        cell.runs = [read_run(layout_path(root, cell.task, cell.optimizer, cell.tag, seed), seed, cell.epochs)
                     for seed in cell.seeds]
        measured = [run.measured for run in cell.runs if run.measured]
        if measured:
            cell.seconds_per_epoch = sum(measured) / len(measured)
            cell.source = f"measured (n={len(measured)})"
        else:
            guess = DEFAULT_SECONDS_PER_EPOCH.get(cell.family, FALLBACK_SECONDS_PER_EPOCH)
            cell.seconds_per_epoch = guess * (LOOKAHEAD_FACTOR if cell.lookahead else 1)
            cell.source = "guess" + (f" x{LOOKAHEAD_FACTOR} look-ahead" if cell.lookahead else "")


def hours_left(cell: Cell, run: Run) -> float:
    if run.state in DONE_STATES:
        return 0.0
    return max(cell.epochs - run.epochs_done, 0) * cell.seconds_per_epoch / 3600


# -- output -------------------------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [str(v).rjust(w) if i in right else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _shorten(text: str, width: int = 72) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render(experiment: str, cells: list[Cell], root: Path, summary: bool) -> str:
    variants = any(cell.variant for cell in cells)
    runs = [(cell, run) for cell in cells for run in cell.runs]
    seeds = cells[0].seeds if cells else []
    out = [f"{experiment}: {len(cells)} configs × {len(seeds)} seed{'s' * (len(seeds) != 1)} = {len(runs)} runs "
           f"under {root}"
           + ("" if root.is_dir() else " (which does not exist yet)")]
    if not summary:
        header = ["task", "optimizer", *(["sweep"] if variants else []), "seed", "state", "detail", "est. h left"]
        rows = [[cell.task, cell.optimizer, *([cell.variant] if variants else []), str(run.seed), run.state,
                 _shorten(run.detail), "-" if run.state in DONE_STATES else f"{hours_left(cell, run):.2f}"]
                for cell, run in runs]
        out += ["", *_table(header, rows, right={len(header) - 1, header.index("seed")})]
    counts = {state: sum(run.state == state for _, run in runs) for state in STATE_ORDER}
    shown = [state for state in STATE_ORDER if counts[state] or state != "unreadable"]
    header = ["task", "optimizer", *(["sweep"] if variants else []), "runs", "done", "left", *shown,
              "s/epoch", "from", "est. h left"]
    rows = []
    for cell in cells:
        cell_counts = {state: sum(run.state == state for run in cell.runs) for state in STATE_ORDER}
        done = sum(cell_counts[state] for state in DONE_STATES)
        rows.append([cell.task, cell.optimizer, *([cell.variant] if variants else []), str(len(cell.runs)),
                     str(done), str(len(cell.runs) - done), *(str(cell_counts[state]) for state in shown),
                     _seconds(cell.seconds_per_epoch), cell.source,
                     f"{sum(hours_left(cell, run) for run in cell.runs):.2f}"])
    first_number = header.index("runs")
    out += ["", *_table(header, rows, right=set(range(first_number, len(header))) - {header.index("from")})]

    done = sum(counts[state] for state in DONE_STATES)
    total_hours = sum(hours_left(cell, run) for cell, run in runs)
    measured = sum(cell.source.startswith("measured") for cell in cells)
    out += [
        "",
        "by state: " + ", ".join(f"{counts[state]} {state}" for state in shown),
        f"est. GPU-hours left: {total_hours:.1f}",
        f"  = epochs left × seconds per epoch, measured from finished runs in {measured} of {len(cells)} configs "
        "(wall_s: training only, evaluation excluded, so low by the evaluation time)"
        + ("" if measured == len(cells) else ";"),
        *([] if measured == len(cells) else [
            f"    elsewhere a rough guess per task family for one modern GPU ({_guesses()}; ×{LOOKAHEAD_FACTOR} for a "
            "look-ahead optimizer)"]),
        f"{len(runs)} runs: {done} done, {len(runs) - done} left",
    ]
    return "\n".join(out) + "\n"


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _guesses() -> str:
    return ", ".join(f"{family} {seconds:g} s/epoch" for family, seconds in DEFAULT_SECONDS_PER_EPOCH.items())


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="List every run of an experiment's sweep with its state (completed, diverged, running now, "
                    "interrupted, not started), read from the run store, and estimate the GPU-hours left. "
                    "Completed and diverged runs are done; the others are left.",
        epilog="examples: adala-plan table2 --seeds 0,1,2 | adala-plan table3 --seeds 0-9 --summary | "
               "adala-plan table2 profile=smoke --runs results/demo/runs",
    )
    parser.add_argument("experiment", nargs="?", help="an experiment of conf/experiment/ (table2, table3)")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="Hydra overrides as given to adala-train (profile=smoke epochs=4 data.root=...); "
                             "key=a,b sweeps, seed=... may give the seeds instead of --seeds")
    parser.add_argument("--seeds", default=None,
                        help=f"the sweep's seeds: 0,1,2 or a range 0-33 (inclusive); default {DEFAULT_SEEDS}")
    parser.add_argument("--runs", default=None,
                        help="the results root (default: the config's results.root, results/runs)")
    parser.add_argument("--summary", action="store_true",
                        help="only the per-(task, optimizer) counts and the totals, not one line per run")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)  # options may come after the overrides
    if args.experiment is None:
        parser.error("give an experiment: adala-plan EXPERIMENT [--seeds 0,1,2] [overrides]")
    try:
        seeds = parse_seeds(args.seeds) if args.seeds is not None else None
        cells, root = compose_cells(args.experiment, list(args.overrides), seeds, args.runs)
    except PlanError as error:
        parser.error(str(error))
    survey(cells, root)
    sys.stdout.write(render(args.experiment, cells, root, args.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
