"""`adala-train`: train one task × optimizer × seed combination (a Hydra app; `--multirun` sweeps many).

    adala-train task=cifar10_resnet34 optimizer=adala seed=0
    adala-train --multirun task=cifar10_vgg11,cifar10_resnet34 optimizer=sgd,adam seed=0,1 profile=smoke

A finished run is skipped, an interrupted one resumes from its checkpoint, a diverged one is recorded and the
sweep goes on. Bad input stops with one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from adala_bench import optim
from adala_bench.store import FINAL_STATES, RunDir, RunStoreError, now_iso, run_path
from adala_bench.trainer import LOOKAHEAD_BATCHES, Progress, Schedule, Trainer, seed_everything

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
DATA_SOURCES = ("real", "synthetic")
TRAINER_KEYS = ("name", "lookahead_batch")  # optimizer config keys that are not constructor arguments
PACKAGES = ("torch", "torchvision", "hydra-core", "omegaconf", "adabelief-pytorch", "adabound", "torch-optimizer", "adala-bench")


class ConfigError(ValueError):
    """Bad input: reported as one line, exit status 2."""


class RunBusy(ConfigError):
    """Another process holds the run. A single run stops; a sweep skips it and goes on, so the same sweep started
    once per GPU shares out the work."""


def choices(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def check_group_overrides(argv: list[str]) -> None:
    """Fail fast, in one line, on an unknown task/optimizer/profile given on the command line (sweeps included)."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in ("task", "optimizer", "profile"):
            group = key.lstrip("+~")
            for choice in value.split(","):
                if choice not in choices(group):
                    raise ConfigError(f"unknown {group} {choice!r}; allowed: {', '.join(choices(group))}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not valid; allowed: auto, cpu, cuda, cuda:<index>") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; allowed: auto, cpu, cuda, cuda:<index>")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA device is available; use device=cpu or device=auto")
    return device


def optimizer_hparams(cfg: DictConfig) -> dict:
    hparams = OmegaConf.to_container(cfg.optimizer, resolve=True)
    return {key: value for key, value in hparams.items() if key not in TRAINER_KEYS}


def validate(cfg: DictConfig) -> torch.device:
    """Check everything that can be checked before any file is written."""
    for key in ("epochs", "batch_size"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key}={value!r} is not allowed; it must be a positive integer")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed!r} is not allowed; it must be a non-negative integer")
    if cfg.data.source not in DATA_SOURCES:
        raise ConfigError(f"data.source={cfg.data.source!r} is not allowed; allowed: {', '.join(DATA_SOURCES)}")
    if not isinstance(cfg.data.val_size, int) or cfg.data.val_size < 0:
        raise ConfigError(f"data.val_size={cfg.data.val_size!r} is not allowed; it must be an integer ≥ 0")
    lookahead_batch = cfg.optimizer.get("lookahead_batch", "next")
    if lookahead_batch not in LOOKAHEAD_BATCHES:
        raise ConfigError(f"optimizer.lookahead_batch={lookahead_batch!r} is not allowed; allowed: {', '.join(LOOKAHEAD_BATCHES)}")
    try:  # the registry validates names and values the same way for every optimizer
        optim.build(cfg.optimizer.name, [torch.zeros(1, requires_grad=True)], **optimizer_hparams(cfg))
    except (ValueError, TypeError) as error:
        raise ConfigError(f"optimizer {cfg.optimizer.name}: {error}") from None
    check_writable(Path(cfg.results.root))
    return resolve_device(cfg.device)


def check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"results.root={str(root)!r} is not writable ({error.strerror}); choose a writable directory") from None


def provenance(device: torch.device) -> dict:
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
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"git_commit": commit, "versions": versions, "device": f"{device} ({name})", "python": platform.python_version()}


def train_one(cfg: DictConfig) -> str:
    """Run (or resume, or skip) the run the config names; returns its final state."""
    from adala_bench.data import DataError
    from adala_bench.tasks import build_task

    device = validate(cfg)
    run = RunDir(run_path(cfg))
    if state := final_state(run):
        return state

    seed_everything(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the reference
    try:
        task = build_task(cfg, device)
    except DataError as error:
        raise ConfigError(str(error)) from None
    optimizer = optim.build(cfg.optimizer.name, task.model.parameters(), **optimizer_hparams(cfg))
    trainer = Trainer(
        task, optimizer,
        epochs=cfg.epochs,
        schedule=Schedule(list(cfg.task.schedule.milestones), cfg.task.schedule.gamma),
        device=device,
        lookahead_batch=cfg.optimizer.get("lookahead_batch", "next"),
    )

    try:
        run.lock()
    except RunStoreError as error:
        raise RunBusy(str(error)) from None
    try:
        return _train_locked(cfg, run, trainer, device)
    finally:
        run.unlock()


def final_state(run: RunDir) -> str | None:
    """The run's state if it is finished (completed or diverged), saying so; None if there is work to do."""
    status = run.read_status()
    if status and status["state"] in FINAL_STATES:
        print(f"adala-train: {run.path} is already {status['state']}; nothing to do")
        return status["state"]
    return None


def _train_locked(cfg: DictConfig, run: RunDir, trainer: Trainer, device: torch.device) -> str:
    if state := final_state(run):  # again, under the lock: another process may have finished it meanwhile
        return state
    status = run.read_status()
    try:
        checkpoint = run.load_checkpoint()
    except RunStoreError as error:
        run.write_status("failed", reason=str(error), ended_at=now_iso())
        raise ConfigError(str(error)) from None
    progress = trainer.load_state_dict(checkpoint) if checkpoint else Progress()
    if checkpoint:
        print(f"adala-train: resuming {run.path} at epoch {progress.epoch}")
    else:
        print(f"adala-train: starting {run.path}")
        run.write_config(cfg)
    # The checkpoint is the record: metrics.jsonl may lag it by an epoch after a crash between the two writes.
    run.write_metrics(progress.metrics)
    run.write_status(
        "running", reason=None, epochs_done=progress.epoch, started_at=(status or {}).get("started_at") or now_iso(),
        ended_at=None, **provenance(device),
    )
    trainer.on_epoch_end = lambda p: run.write_status("running", epochs_done=p.epoch)
    try:
        outcome = trainer.fit(run, progress)
    except BaseException as error:
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
        run.write_status("failed", reason=f"{reason}; re-run to resume from the last checkpoint", ended_at=now_iso())
        raise
    if outcome.state == "diverged":
        at = outcome.diverged_at
        run.write_status("diverged", reason=f"non-finite loss at epoch {at['epoch']}, step {at['step']}",
                         diverged_at=at, ended_at=now_iso())
        print(f"adala-train: {run.path} diverged at epoch {at['epoch']}, step {at['step']}")
    else:
        run.write_status("completed", reason=None, epochs_done=outcome.progress.epoch, ended_at=now_iso())
        last = outcome.progress.metrics[-1]
        print(f"adala-train: {run.path} completed: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if "test" in k))
    return outcome.state


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> str:
    try:
        return train_one(cfg)
    except RunBusy as busy:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            fail(busy)
        print(f"adala-train: skipping: {busy}")
        return "busy"
    except ConfigError as error:
        fail(error)


def fail(error: Exception) -> NoReturn:
    print(f"adala-train: error: {error}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    try:
        check_group_overrides(sys.argv[1:])
    except ConfigError as error:
        fail(error)
    hydra_main()


if __name__ == "__main__":
    main()
