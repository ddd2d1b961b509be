"""adala-plan on a 1,000-run sweep (Table 2 × 34 seeds = 1,020 runs, mixed states): how many seconds it takes.

Writes the run tree to a temporary folder (not timed): the paper profile's run directories of Table 2, 40% completed
(200 metrics rows with wall_s), 2% diverged, 1% running now (their locks held by this process), 4% killed (status
running, lock free), 4% failed, the rest not started. Then times, on the same files:
- plan: `adala_bench.plan.main([...])` in-process, output to a string (after one warm-up call: the imports);
  also split into its two parts, composing the 30 configs and reading the store;
- baseline: json.load of every run's status.json in a loop (the least any status listing must do);
- cold: the `adala-plan` console script as a user runs it (interpreter start and imports included).
No goal beyond "seconds".

    .venv/bin/python benchmarks/bench_plan.py [--seeds 34] [--repeat 3] [--keep DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adala_bench.plan import main, render, survey
from adala_bench.sweep_runs import sweep_cells
from adala_bench.store import METRICS_FILE, STATUS_FILE, RunDir

REPO = Path(__file__).resolve().parents[1]
STATES = (("completed", 0.40), ("diverged", 0.02), ("running", 0.01), ("killed", 0.04), ("failed", 0.04))


def write_tree(root: Path, n_seeds: int, rng: random.Random) -> tuple[list[Path], list[RunDir], dict[str, int]]:
    """Every run directory of Table 2 × n_seeds (written with plain writes, in the store's format: fsync-ing
    atomic writes for a thousand runs would only slow the set-up). Returns the paths, the held locks, the counts."""
    cells = sweep_cells(overrides(root, n_seeds))
    paths, held, counts = [], [], {}
    for cell in cells:
        for path in cell.paths:
            paths.append(path)
            draw, state = rng.random(), "not started"
            for name, share in STATES:
                if draw < share:
                    state = name
                    break
                draw -= share
            counts[state] = counts.get(state, 0) + 1
            if state == "not started":
                continue
            path.mkdir(parents=True)
            epochs = cell.epochs if state == "completed" else rng.randrange(1, cell.epochs)
            pace = 20.0 + 5 * rng.random()
            rows = [{"epoch": e, "step": 391 * (e + 1), "grad_evals": 391 * (e + 1), "wall_s": round(pace * (e + 1), 3),
                     "lr": 0.1, "train_loss": 0.5, "train_acc": 90.0, "test_loss": 0.6, "test_acc": 88.0}
                    for e in range(epochs)]
            (path / METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
            status = {"state": {"killed": "running"}.get(state, state), "epochs_done": epochs, "reason": None,
                      "started_at": "2026-01-01T00:00:00+00:00", "ended_at": None, "device": "cuda:0 (bench)"}
            if state == "diverged":
                status["diverged_at"] = {"epoch": epochs, "step": 391 * epochs + 17}
            if state == "failed":
                status["reason"] = "interrupted; re-run to resume from the last checkpoint"
            (path / STATUS_FILE).write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
            if state == "running":
                held.append(RunDir(path).lock())
            elif state == "killed":
                RunDir(path).lock().unlock()  # the lock file of a dead holder
    return paths, held, counts


def overrides(root: Path, n_seeds: int) -> list[str]:
    return ["+experiment=table2", f"seed=range(0,{n_seeds})", f"results.root={root}"]


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=34)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="write the tree here and keep it")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_plan_"))
    root = base / "runs"
    try:
        started = time.perf_counter()
        paths, held, counts = write_tree(root, args.seeds, random.Random(0))
        print(f"tree: {len(paths)} runs ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}) under {root}, "
              f"written in {time.perf_counter() - started:.1f} s (not timed)")
        argv = overrides(root, args.seeds)

        def plan(extra=()):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert main([*argv, *extra]) == 0
            return out.getvalue()

        output = plan().splitlines()  # warm-up: hydra's and the runner's imports
        last = output[-1]
        by_state = (f"by state: {counts.get('completed', 0)} completed, {counts.get('diverged', 0)} diverged, "
                    f"{counts.get('running', 0)} running, {counts.get('killed', 0) + counts.get('failed', 0)} "
                    f"interrupted, {counts.get('not started', 0)} not started")
        assert by_state in output, by_state
        expected_done = counts.get("completed", 0) + counts.get("diverged", 0)
        assert last == f"{len(paths)} runs: {expected_done} done, {len(paths) - expected_done} left", last

        def statuses():
            for path in paths:
                try:
                    with open(path / STATUS_FILE) as handle:
                        json.load(handle)
                except FileNotFoundError:
                    pass

        t_plan = best_of(args.repeat, plan)
        t_summary = best_of(args.repeat, lambda: plan(["--summary"]))
        cells = []
        t_compose = best_of(args.repeat, lambda: cells.__setitem__(slice(None), sweep_cells(argv)))
        t_read = best_of(args.repeat, lambda: render(argv, survey(cells), False))
        t_base = best_of(args.repeat, statuses)
        started = time.perf_counter()
        done = subprocess.run([str(REPO / ".venv" / "bin" / "adala-plan"), *argv, "--summary"], capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        t_cold = time.perf_counter() - started
        assert done.returncode == 0 and done.stdout.splitlines()[-1] == last, done.stderr

        print(f"adala-plan, in-process (median of {args.repeat}): {t_plan:.2f} s for {len(paths)} runs "
              f"(--summary {t_summary:.2f} s)")
        print(f"  of which composing {len(cells)} configs {t_compose:.2f} s, reading the store and rendering "
              f"{t_read:.3f} s")
        print(f"baseline, json.load of every status.json: {t_base:.3f} s; plan / baseline = {t_plan / t_base:.0f}x "
              f"(reading alone: {t_read / t_base:.1f}x)")
        print(f"adala-plan console script, cold (interpreter, torch and hydra imports included): {t_cold:.2f} s")
        for lock in held:
            lock.unlock()
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main_bench())
