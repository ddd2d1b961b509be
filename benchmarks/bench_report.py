"""Loading and tabulating 10,000 synthetic runs × 200 epochs (goal: under 10 s on this CPU).

Writes the run directories to a temporary folder (not timed), then times, on the same files:
- report: adala_bench.report's bulk loader + selection + Tables 2-4 (cells, with each cell's run directories and
  epochs, and Markdown/LaTeX);
- the cross-task view on that frame (ranks, performance profile, time to AdaBelief's final value), shown apart;
- the claims view on that frame (the oscillation of every run, the bootstrap intervals), shown apart;
- baseline: the plain way (yaml config, status JSON, json.loads per metrics line, one DataFrame), followed by
  the same tabulation.
Both must give the same table cells.

    .venv/bin/python benchmarks/bench_report.py [--runs 10000] [--epochs 200] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from adala_bench.catalog import OPTIMIZER_ORDER, TABLES, TASKS, default_reference_dir
from adala_bench.report.claims import RESAMPLES, claims_view
from adala_bench.report.crosstask import performance_profile, profile_ratios, rank_table, ranks, time_to_target
from adala_bench.report.load import RUN_COLUMNS, find_run_dirs, load_runs
from adala_bench.report.reference import paper_values
from adala_bench.store import CONFIG_FILE as CONFIG
from adala_bench.store import METRICS_FILE as METRICS
from adala_bench.store import layout_path
from adala_bench.store import STATUS_FILE as STATUS
from adala_bench.report.select import choose_hparams, run_values
from adala_bench.report.stats import adala_vs_adabelief
from adala_bench.report.tables import build_cells, render_latex, render_markdown


def synthetic_curves(family: str, epochs: int, rng: np.random.Generator, grad_per_epoch: int) -> list[dict]:
    """metrics.jsonl records of one run, shaped like the runner's (full-precision floats)."""
    epoch = np.arange(epochs)
    progress = (epoch + 1) / epochs
    columns = {
        "epoch": epoch.tolist(),
        "grad_evals": (grad_per_epoch * (epoch + 1)).tolist(),
        "wall_s": (30.0 * (epoch + 1) + rng.random(epochs)).tolist(),
        "lr": np.where(epoch < 0.75 * epochs, 0.1, 0.01).tolist(),
    }
    noise = rng.normal(size=epochs)
    if family == "cifar10":
        acc = 60 + 30 * progress + noise
        columns.update(train_loss=(1 - 0.9 * progress + 0.01 * noise).tolist(), train_acc=(acc + 3).tolist(),
                       test_loss=(1.1 - 0.8 * progress + 0.01 * noise).tolist(), test_acc=acc.tolist())
    elif family == "ptb":
        ppl = 300 - 230 * progress + noise
        columns.update(train_loss=np.log(ppl + 5).tolist(), train_ppl=(ppl + 5).tolist(),
                       test_loss=np.log(ppl).tolist(), test_ppl=ppl.tolist())
    else:
        columns.update(d_loss=(-0.3 + 0.01 * noise).tolist(), g_loss=(0.2 - 0.01 * noise).tolist())
    records = [dict(zip(columns, values)) for values in zip(*columns.values())]
    if family == "gan":
        records[-1]["fid"] = float(80 + 5 * rng.random())  # FID only at the final epoch
    return records


def write_synthetic_runs(root: Path, n_runs: int, epochs: int, seed: int = 0) -> None:
    """n_runs spread over the 8 tasks × 10 optimizers; 2% diverged and 1% still running."""
    rng = np.random.default_rng(seed)
    cells = [(task, optimizer) for task in TASKS for optimizer in OPTIMIZER_ORDER]
    for i in range(n_runs):
        task, optimizer = cells[i % len(cells)]
        family = TASKS[task].family.name
        state = rng.choice(["completed", "diverged", "running"], p=[0.97, 0.02, 0.01])
        records = synthetic_curves(family, epochs, rng, 391 * (2 if optimizer == "adala" else 1))
        path = layout_path(root, task, optimizer, "default", i // len(cells))
        path.mkdir(parents=True, exist_ok=True)
        (path / METRICS).write_text("".join(json.dumps(r) + "\n" for r in records))
        (path / STATUS).write_text(json.dumps({"state": str(state), "reason": None, "epochs_done": epochs}))
        config = {"task": {"name": task, "family": family, "model": TASKS[task].model},
                  "optimizer": {"name": optimizer}, "seed": i // len(cells), "epochs": epochs}
        (path / CONFIG).write_text(yaml.safe_dump(config))


def baseline_load(root: Path) -> pd.DataFrame:
    """The plain loader: every file parsed with yaml / json, one DataFrame from all records."""
    records, owners, info = [], [], []
    for i, run in enumerate(find_run_dirs(root)):
        config = yaml.safe_load(Path(run.path, CONFIG).read_text())
        status = json.loads(Path(run.path, STATUS).read_text())
        info.append((i, run.task, config["task"]["family"], config["task"]["model"], run.optimizer, run.hparams,
                     config.get("profile", "paper"), run.seed, status["state"], status["reason"], run.path))
        with open(os.path.join(run.path, METRICS)) as f:
            for line in f:
                records.append(json.loads(line))
                owners.append(i)
    runs = pd.DataFrame(info, columns=RUN_COLUMNS).set_index("run")
    frame = runs.loc[owners].reset_index()
    return pd.concat([frame, pd.DataFrame(records)], axis=1)


def tabulate(frame: pd.DataFrame, paper: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 2-4: the runs as the report selects them once (results.compute), and the cells they make."""
    runs = choose_hparams(run_values(frame, "paper"))
    cells = build_cells(runs, paper, "paper")
    for table in TABLES:
        render_markdown(cells, table)
        render_latex(cells, table)
    return runs, cells


def cross_task(frame: pd.DataFrame, runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The page's cross-task view: ranks, the performance profile and time-to-target (on the whole frame)."""
    rank_table(ranks(cells))
    performance_profile(profile_ratios(cells))
    return time_to_target(frame, runs)


def claims(frame: pd.DataFrame, runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The page's claims view: every claim's interval, instability.csv's oscillations (on the whole frame)."""
    return claims_view(frame, runs, adala_vs_adabelief(runs, cells), "paper").rows


def timed(function, *args):
    """(wall seconds, CPU seconds of this process, all threads), result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--keep", type=Path, default=None, help="write (or reuse) the runs here and keep them")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        if not any(root.glob("*/*/*/seed=*")):
            (seconds, _), _ = timed(write_synthetic_runs, root, args.runs, args.epochs)
            print(f"(wrote {args.runs} runs × {args.epochs} epochs in {seconds:.1f} s, not timed)")
        paper = paper_values(default_reference_dir())
        (load_s, load_cpu), frame = timed(load_runs, root)
        (table_s, table_cpu), (runs, cells) = timed(tabulate, frame, paper)
        (cross_s, cross_cpu), ttt = timed(cross_task, frame, runs, cells)
        (claims_s, claims_cpu), rows = timed(claims, frame, runs, cells)
        (base_load_s, _), base_frame = timed(baseline_load, root)
        (base_table_s, _), (_, base_cells) = timed(tabulate, base_frame, paper)
        same = np.allclose(cells["mean"], base_cells["mean"], equal_nan=True) and cells["n"].equals(base_cells["n"])
        n_runs = frame["run"].nunique()
        print(f"report load: {load_s:.2f} s (cpu {load_cpu:.2f} s) for {n_runs} runs, {len(frame)} rows "
              f"(baseline {base_load_s:.2f} s) ratio {load_s / base_load_s:.2f}")
        print(f"report tabulate Tables 2-4: {table_s:.2f} s (cpu {table_cpu:.2f} s; on the baseline's frame "
              f"{base_table_s:.2f} s)")
        total, base_total = load_s + table_s, base_load_s + base_table_s
        print(f"report load+tabulate {n_runs} runs × {args.epochs} epochs: {total:.2f} s "
              f"(cpu {load_cpu + table_cpu:.2f} s; baseline {base_total:.2f} s) ratio {total / base_total:.2f} "
              f"(goal: under 10 s, {'met' if total < 10 else 'NOT met'}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); tables identical to baseline: {same}")
        print(f"report cross-task view (ranks, performance profile, time-to-target over {len(ttt)} cells): "
              f"{cross_s:.2f} s (cpu {cross_cpu:.2f} s); load+tabulate+cross-task {total + cross_s:.2f} s")
        print(f"report claims view ({len(rows)} claims, {RESAMPLES} bootstrap resamples each): {claims_s:.2f} s "
              f"(cpu {claims_cpu:.2f} s)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
