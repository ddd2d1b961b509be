"""`adala-train`: train one task × optimizer × seed combination (a Hydra app; `--multirun` sweeps many).

    adala-train task=cifar10_resnet34 optimizer=adala seed=0
    adala-train --multirun task=cifar10_vgg11,cifar10_resnet34 optimizer=sgd,adam seed=0,1 profile=smoke

A finished run is skipped, an interrupted one resumes from its checkpoint, a diverged one is recorded and the
sweep goes on. Bad input stops with one line on stderr and exit status 2.

The runner reads the config through config.RunConfig, builds the task (tasks.build_task) and the trainer, and hands
each epoch's progress and state from the trainer to the run directory (store.RunDir), which writes every file. The
lines it prints are for people; tools read the run store (records.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from adala_bench.config import CONF_DIR, ConfigError, RunConfig
from adala_bench.devices import (CUBLAS_WORKSPACE_CONFIG, DeviceError, device_line, device_name, missing_c_compiler,
                                 precision_that_runs, resolve_device, set_backend_flags)
from adala_bench.overrides import check_groups, override_args
from adala_bench.progress import EpochLog
from adala_bench.seeding import seed_everything
from adala_bench.slurm_logs import quiet_sacct_errors
from adala_bench.records import read_run
from adala_bench.store import RunDir, RunStoreError
from adala_bench.trackers import Trackers, check_installed
from adala_bench.trainer import Diverged, Progress, Trainer

PACKAGES = ("torch", "torchvision", "hydra-core", "omegaconf", "adabelief-pytorch", "adabound", "torch-optimizer",
            "adala-bench")
ADAPTIVE_SWEEPER = "hydra_plugins.hydra_optuna_sweeper."  # its sweeper's _target_ (docs/USAGE.md, An adaptive search)


class RunBusy(ConfigError):
    """Another process holds the run. A single run stops; a sweep skips it and goes on, so the same sweep started
    once per GPU shares out the work."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`docker stop`, `timeout`, a scheduler's kill), handled as Ctrl-C is: the run is recorded interrupted."""


def train_one(cfg: DictConfig) -> str:
    """Run (or resume, or skip) the run the config names; returns its final state."""
    run = RunConfig.of(cfg)
    check_installed(run.run.logger)
    check_writable(run.results_root)
    try:
        device = resolve_device(run.run.device)
    except DeviceError as error:
        raise ConfigError(str(error)) from None
    run_dir = RunDir(run.path)
    if state := final_state(run_dir):
        return state
    try:  # a run another worker trains is skipped before its task is built (data, networks, FID statistics)
        run_dir.check_free()
    except RunStoreError as error:
        raise RunBusy(str(error)) from None

    print(f"adala-train: {device_line(device)}")
    precision = precision_that_runs(run.trainer.precision, device)
    if precision != run.trainer.precision:
        print(f"adala-train: this CPU ({device_name(device)}) has no bf16 units (AVX-512 BF16, AMX or ARM BF16), "
              f"where bf16 is emulated and several times slower: trainer.precision={run.trainer.precision} trains "
              f"in {precision} here")
    if device.type == "cuda" and run.trainer.compile and (missing := missing_c_compiler()):
        raise ConfigError(missing)
    seed_everything(run.run.seed)
    # TF32 did not exist when the reference ran (torch 1.1): the paper's protocol is plain fp32; `fast` allows it.
    set_backend_flags(device, deterministic=run.trainer.deterministic, tf32=run.trainer.fast)
    try:
        trainer = build_trainer(run, device)
    except ValueError as error:  # DataError, FIDError, bad widths: the user's to fix, said in one line
        raise ConfigError(str(error)) from None
    try:
        run_dir.lock()
    except RunStoreError as error:
        raise RunBusy(str(error)) from None
    try:
        with sigterm_as_interrupt():
            return _train_locked(run, run_dir, trainer, device)
    finally:
        run_dir.unlock()


def build_trainer(run: RunConfig, device: torch.device) -> Trainer:
    """The run's task (data loaded and checked, models built: seed the RNGs first) in its trainer, computing in the
    precision the device runs (precision_that_runs)."""
    from adala_bench.tasks import build_task

    task = build_task(run, device)
    settings = dataclasses.replace(run.trainer, precision=precision_that_runs(run.trainer.precision, device))
    # A GAN's two networks use the same optimizer, as the reference.
    return Trainer(task, {player: run.optimizer for player in task.players}, epochs=run.run.epochs,
                   schedule=run.schedule, device=device, settings=settings)


def final_state(run_dir: RunDir) -> str | None:
    """The run's state if it is done (records.py: completed or diverged), saying so; None if there is work to do."""
    record = read_run(run_dir.path)
    if record.state == "unreadable":
        raise ConfigError(f"{run_dir.path}: {record.reason}; delete the run directory to start this run again")
    if record.done:
        print(f"adala-train: {run_dir.path} is already {record.state}; nothing to do")
        return record.state
    return None


def _train_locked(run: RunConfig, run_dir: RunDir, trainer: Trainer, device: torch.device) -> str:
    if state := final_state(run_dir):  # again, under the lock: another process may have finished it meanwhile
        return state
    try:
        checkpoint = run_dir.load_checkpoint()
    except RunStoreError as error:
        run_dir.finish("failed", reason=str(error))
        raise ConfigError(str(error)) from None
    progress = trainer.load_state_dict(checkpoint) if checkpoint else Progress()
    print(f"adala-train: {'resuming' if checkpoint else 'starting'} {run_dir.path}"
          + (f" at epoch {progress.epoch}" if checkpoint else ""))
    status = run_dir.start(run.recorded(), progress.metrics, **provenance(device), precision=trainer.settings.precision)
    trackers = Trackers.start(run, run_dir, progress.metrics, status)  # logger=: each tracker's copy (trackers.py)
    epoch_log = EpochLog(f"{run.task} {run.optimizer.name} seed={run.run.seed}", run.family, run.run.epochs,
                         progress.epoch)
    try:
        for progress, state, artifacts in trainer.fit(progress):
            run_dir.record_epoch(progress.metrics, state, artifacts)
            epoch_log.epoch_done(progress.metrics[-1])
            trackers.epoch_done(progress.metrics)
    except Diverged as diverged:
        at = {"epoch": diverged.epoch, "step": diverged.step}
        run_dir.finish("diverged", reason=f"non-finite loss at epoch {at['epoch']}, step {at['step']}", diverged_at=at)
        print(f"adala-train: {run_dir.path} diverged at epoch {at['epoch']}, step {at['step']}")
        return "diverged"
    except BaseException as error:
        if isinstance(error, Terminated):
            reason = "terminated (SIGTERM)"
        elif isinstance(error, KeyboardInterrupt):
            reason = "interrupted"
        else:
            reason = f"{type(error).__name__}: {error}"
        run_dir.finish("failed", reason=f"{reason}; re-run to resume from the last checkpoint")
        raise
    else:
        run_dir.finish("completed", epochs_done=progress.epoch)
    finally:
        trackers.end()  # with the state and reason just recorded
    last = progress.metrics[-1]
    shown = [key for key, value in last.items() if isinstance(value, float) and ("test" in key or key in ("fid", "fid_curve"))]
    print(f"adala-train: {run_dir.path} completed: " + ", ".join(f"{key}={last[key]:.4g}" for key in shown))
    return "completed"


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While a run trains, SIGTERM raises Terminated (so the run is recorded interrupted, as with Ctrl-C), unless
    someone else handles SIGTERM already (submitit in a SLURM job: there a killed run reads as interrupted all the
    same, from its free lock)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"results.root={str(root)!r} is not writable ({error.strerror}); choose a writable "
                          "directory") from None


def provenance(device: torch.device) -> dict:
    """What status.json records of where and with what the run ran."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(CONF_DIR.parent), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip() or None
    except OSError:
        commit = None
    return {"git_commit": commit, "versions": versions, "device": f"{device} ({device_name(device)})",
            "python": platform.python_version()}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> str | float:
    job_log = None
    if HydraConfig.get().mode == RunMode.MULTIRUN:  # each job's lines also go to the sweep's own folder
        job_log = logging.FileHandler(Path(HydraConfig.get().runtime.output_dir) / "adala-train.log")
        job_log.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger("adala_bench").addHandler(job_log)
    try:
        return job_result(cfg, train_one(cfg), HydraConfig.get().sweeper.get("_target_", ""))
    except RunBusy as busy:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            fail(busy)
        print(f"adala-train: skipping: {busy}")
        return "busy"
    except ConfigError as error:
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
            # In a SLURM job the error must reach the sweep that waits for it, as the job's result (submitit writes
            # it): an exit writes no result, and the sweep would wait for ever.
            raise RuntimeError(f"adala-train: error: {error}") from None
        fail(error)
    finally:
        if job_log is not None:
            logging.getLogger("adala_bench").removeHandler(job_log)
            job_log.close()


def job_result(cfg: DictConfig, state: str, sweeper: str) -> str | float:
    """What a job hands its Hydra sweeper: the run's final state; for an adaptive sweeper (hydra-optuna-sweeper,
    which steers on the number each job returns) the run's validation value as the tuning view counts it."""
    if ADAPTIVE_SWEEPER not in sweeper:
        return state
    from adala_bench.report.tuning import run_validation

    return run_validation(RunConfig.of(cfg).path)


def fail(error: Exception) -> NoReturn:
    print(f"adala-train: error: {error}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    # cuBLAS reads this when it creates its handle, i.e. before the first CUDA matmul: trainer.deterministic needs it
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    try:  # unknown tasks, optimizers, profiles and experiments, and unreadable overrides: one line, before Hydra
        check_groups(override_args(sys.argv[1:]))
    except ConfigError as error:
        fail(error)
    quiet_sacct_errors()  # a cluster without accounting: submitit's sacct errors in one line, once
    hydra_main()


if __name__ == "__main__":
    main()
