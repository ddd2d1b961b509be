"""`adala-train`: train one task × optimizer × seed combination (a Hydra app; `--multirun` sweeps many).

    adala-train task=cifar10_resnet34 optimizer=adala seed=0
    adala-train --multirun task=cifar10_vgg11,cifar10_resnet34 optimizer=sgd,adam seed=0,1 profile=smoke

A finished run is skipped, an interrupted one resumes from its checkpoint, a diverged one is recorded and the
sweep goes on. Bad input stops with one line on stderr and exit status 2.

The runner reads the config once: it validates it, builds the task (tasks.build_task) and the trainer, and hands
each epoch's progress and state from the trainer to the run directory (store.RunDir), which writes every file.
"""

from __future__ import annotations

import logging
import os
import platform
import time
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from adala_bench.catalog import FAMILIES, TASKS
from adala_bench.store import FINAL_STATES, RunDir, RunStoreError, run_path
from adala_bench.trainer import Diverged, OptimizerSpec, Progress, Schedule, Trainer, TrainerSettings, seed_everything

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
log = logging.getLogger(__name__)
# Optimizer config keys that are not constructor arguments (lookahead_batch: the deprecated alias, see below).
NOT_HPARAMS = ("name", "lookahead_batch")
LOGGERS = ("none", "tensorboard")
TENSORBOARD_DIR = "tensorboard"
CUSTOM = "custom"  # conf/optimizer/custom.yaml: any optimizer class by import path
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
                if group == "task" and choice in TASKS and not TASKS[choice].built:
                    raise ConfigError(f"task {choice!r} ({TASKS[choice].family.table}) is not built yet; "
                                      f"built: {', '.join(choices(group))}")
                if choice not in choices(group):
                    raise ConfigError(f"unknown {group} {choice!r}; allowed: {', '.join(choices(group))}")


def apply_aliases(cfg: DictConfig) -> None:
    """Put the config in its one spelling before anything reads it.

    - `optimizer=custom optimizer._target_=pkg.Class`: the optimizer's name becomes its import path (its run
      directories and its rows in the report are named after it).
    - `lr_scale=k` (an lr search, conf/experiment/search_*.yaml) multiplies the as-run lr: the run is the one that
      `optimizer.lr=<lr·k>` names, so a chosen setting is re-run by its lr alone.
    - `optimizer.lookahead_batch` is the old spelling of `trainer.lookahead_batch`: honour it, say so in one line.
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} has no value; give it on the command line, e.g. {missing[0]}=...")
    if cfg.optimizer.name == CUSTOM:
        with open_dict(cfg):
            cfg.optimizer.name = cfg.optimizer.pop("_target_")
    with open_dict(cfg):  # an lr search's multiplier becomes the lr it means (the run is named by that lr)
        scale = cfg.pop("lr_scale", 1.0)
        if scale != 1.0:
            if not (isinstance(scale, (int, float)) and scale > 0):
                raise ConfigError(f"lr_scale={scale!r} is not allowed; it must be a number > 0")
            cfg.optimizer.lr = cfg.optimizer.lr * scale
    alias = cfg.optimizer.get("lookahead_batch")
    if alias is None:
        return
    print(f"adala-train: warning: optimizer.lookahead_batch is deprecated; use trainer.lookahead_batch={alias}",
          file=sys.stderr)
    with open_dict(cfg):
        cfg.trainer.lookahead_batch = alias
        cfg.optimizer.lookahead_batch = None


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


def optimizer_spec(cfg: DictConfig) -> OptimizerSpec:
    hparams = OmegaConf.to_container(cfg.optimizer, resolve=True)
    return OptimizerSpec(cfg.optimizer.name, {key: value for key, value in hparams.items() if key not in NOT_HPARAMS})


def trainer_settings(cfg: DictConfig) -> TrainerSettings:
    return TrainerSettings(lookahead_batch=cfg.trainer.lookahead_batch, clip_grad_norm=cfg.task.get("clip_grad_norm"),
                           precision=cfg.trainer.precision, channels_last=cfg.trainer.channels_last,
                           compile=cfg.trainer.compile)


def validate(cfg: DictConfig) -> tuple[torch.device, OptimizerSpec, TrainerSettings]:
    """Check everything that can be checked before any file is written (the data is checked as it loads)."""
    for key in ("epochs", "batch_size"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key}={value!r} is not allowed; it must be a positive integer")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed!r} is not allowed; it must be a non-negative integer")
    if cfg.logger not in LOGGERS:
        raise ConfigError(f"logger={cfg.logger!r} is not allowed; allowed: {', '.join(LOGGERS)}")
    if cfg.logger == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError("logger=tensorboard needs the tensorboard package: pip install -e '.[tensorboard]'") from None
    if not isinstance(cfg.data.val_size, int) or cfg.data.val_size < 0:
        raise ConfigError(f"data.val_size={cfg.data.val_size!r} is not allowed; it must be an integer ≥ 0")
    try:
        settings = trainer_settings(cfg)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    spec = optimizer_spec(cfg)
    try:  # the registry validates names and values the same way for every optimizer
        spec.build([torch.zeros(1, requires_grad=True)])
    except (ValueError, TypeError) as error:
        raise ConfigError(f"optimizer {cfg.optimizer.name}: {error}") from None
    check_writable(Path(cfg.results.root))
    return resolve_device(cfg.device), spec, settings


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
    from adala_bench.tasks import build_task

    apply_aliases(cfg)
    device, spec, settings = validate(cfg)
    run = RunDir(run_path(cfg))
    if state := final_state(run):
        return state
    try:  # a run another worker trains is skipped before its task is built (data, networks, FID statistics)
        run.check_free()
    except RunStoreError as error:
        raise RunBusy(str(error)) from None

    seed_everything(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the reference
        # TF32 did not exist when the reference ran (torch 1.1): the paper's protocol is plain fp32; `fast` allows it.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = settings.fast
    try:
        task = build_task(cfg, device)
    except ValueError as error:  # DataError, FIDError, bad widths: the user's to fix, said in one line
        raise ConfigError(str(error)) from None
    trainer = Trainer(
        task, {player: spec for player in task.players},  # a GAN's two networks use the same optimizer, as the reference
        epochs=cfg.epochs,
        schedule=Schedule(list(cfg.task.schedule.milestones), cfg.task.schedule.gamma),
        device=device,
        settings=settings,
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
    try:
        checkpoint = run.load_checkpoint()
    except RunStoreError as error:
        run.finish("failed", reason=str(error))
        raise ConfigError(str(error)) from None
    progress = trainer.load_state_dict(checkpoint) if checkpoint else Progress()
    print(f"adala-train: {'resuming' if checkpoint else 'starting'} {run.path}"
          + (f" at epoch {progress.epoch}" if checkpoint else ""))
    run.start(cfg, progress.metrics, **provenance(device))
    epoch_log = EpochLog(cfg, progress.epoch, tensorboard=run.path / TENSORBOARD_DIR if cfg.logger == "tensorboard" else None)
    try:
        for progress, state, artifacts in trainer.fit(progress):
            run.record_epoch(progress.metrics, state, artifacts)
            epoch_log.epoch_done(progress.metrics[-1])
    except Diverged as diverged:
        at = {"epoch": diverged.epoch, "step": diverged.step}
        run.finish("diverged", reason=f"non-finite loss at epoch {at['epoch']}, step {at['step']}", diverged_at=at)
        print(f"adala-train: {run.path} diverged at epoch {at['epoch']}, step {at['step']}")
        return "diverged"
    except BaseException as error:
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
        run.finish("failed", reason=f"{reason}; re-run to resume from the last checkpoint")
        raise
    finally:
        epoch_log.close()
    run.finish("completed", epochs_done=progress.epoch)
    last = progress.metrics[-1]
    shown = [key for key, value in last.items() if isinstance(value, float) and ("test" in key or key in ("fid", "fid_curve"))]
    print(f"adala-train: {run.path} completed: " + ", ".join(f"{key}={last[key]:.4g}" for key in shown))
    return "completed"


class EpochLog:
    """One log line per finished epoch: where the run is, its training loss, the task's test metric, lr, the
    epoch's seconds (evaluation included) and the time left at that pace; with `logger=tensorboard` also every
    numeric metric as a TensorBoard scalar (in the run directory's tensorboard/, redone epochs replaced)."""

    def __init__(self, cfg: DictConfig, first_epoch: int, tensorboard: Path | None = None):
        family = FAMILIES.get(cfg.task.family)
        self.metrics = (family.metric, f"{family.metric}_curve") if family else ()
        self.name = f"{cfg.task.name} {cfg.optimizer.name} seed={cfg.seed}"
        self.epochs, self.first_epoch, self.started = cfg.epochs, first_epoch, time.perf_counter()
        self.last = self.started
        self.writer = None
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter  # the optional `tensorboard` extra

            self.writer = SummaryWriter(str(tensorboard), purge_step=first_epoch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def epoch_done(self, row: dict) -> None:
        now = time.perf_counter()
        done = row["epoch"] + 1
        seconds, self.last = now - self.last, now
        pace = (now - self.started) / (done - self.first_epoch)
        fields = [f"epoch {done}/{self.epochs}"]
        fields += [f"{key} {row[key]:.4g}" for key in ("train_loss", "d_loss", "g_loss", *self.metrics)
                   if isinstance(row.get(key), float)]
        fields += [f"lr {row['lr']:.3g}", f"{seconds:.1f} s/epoch", f"ETA {_duration(pace * (self.epochs - done))}"]
        log.info("%s: %s", self.name, ", ".join(fields))
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> str:
    job_log = None
    if HydraConfig.get().mode == RunMode.MULTIRUN:  # each job's lines also go to the sweep's own folder
        job_log = logging.FileHandler(Path(HydraConfig.get().runtime.output_dir) / "adala-train.log")
        job_log.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger("adala_bench").addHandler(job_log)
    try:
        return train_one(cfg)
    except RunBusy as busy:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            fail(busy)
        print(f"adala-train: skipping: {busy}")
        return "busy"
    except ConfigError as error:
        fail(error)
    finally:
        if job_log is not None:
            logging.getLogger("adala_bench").removeHandler(job_log)
            job_log.close()


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
