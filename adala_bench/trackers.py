"""Experiment trackers: each run also where researchers already watch runs (TensorBoard, MLflow, Weights & Biases).

    logger=tensorboard                  TensorBoard event files in <run dir>/tensorboard/
    logger=mlflow                       an MLflow run: a local store beside the run store (<results.root>/../mlruns)
                                        unless logger.mlflow.tracking_uri names another (a team server)
    logger=wandb                        a W&B run, offline by default: <run dir>/wandb/, `wandb sync` uploads it
    logger=[tensorboard,mlflow,wandb]   several at once

The run store stays the record (metrics.jsonl); a tracker gets a copy: every row at step = epoch, the resolved config
and the run's tags, its end state (completed, diverged or failed, with the reason) and its artifacts (config.yaml, a
GAN's samples/*.png). A logger never changes what a run is or computes (config.py leaves it out of the run's identity).

One tracker run per run directory, across resumes: the MLflow run id and the W&B id are kept in the run directory
(trackers.json). At every start each tracker says which epochs it holds (the `epoch` values it has: `epoch` comes
last in every row it is given) and gets every other row of metrics.jsonl, so each epoch lands once, even when a
SIGKILL fell between the run store's write of an epoch and the tracker's. A sweep's runs are grouped by the sweep (an
MLflow experiment, a W&B group) named after its +experiment, else after its sweep folder.

A tracker never stops a run: its first failure (an unreachable server, a full disk, an unwritable folder) is one
warning line, and it is off for the rest of that session (the next start catches it up). A missing package is refused
before anything trains (`check_installed`). A tracker's package is imported only when that tracker is chosen.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from adala_bench.config import ConfigError, RunConfig
from adala_bench.settings import LoggerSettings, MlflowSettings, WandbSettings
from adala_bench.store import SAMPLES_DIR, RunDir

log = logging.getLogger(__name__)
PROBE = "epoch"  # given last in every row: the epochs a tracker holds are its values of it
DEFAULT_EXPERIMENT = "adala-bench"  # the MLflow experiment of a run outside a sweep


def check_installed(chosen: LoggerSettings) -> None:
    """ConfigError in one line naming the extra to install, for the first chosen tracker whose package is missing."""
    for name in chosen.names:
        try:
            importlib.import_module(name)  # each tracker's package, and its extra, has the tracker's name
        except ImportError:
            raise ConfigError(f"logger={name} needs the {name} package: pip install -e '.[{name}]'") from None


@dataclass(frozen=True)
class TrackedRun:
    """What every tracker is told of a run."""

    run_dir: RunDir
    name: str  # <task>/<optimizer>/<hparam-tag>/seed=<n>: the run directory below the results root
    config: dict[str, Any]  # config.yaml
    tags: dict[str, str]
    sweep: str | None
    results_root: Path

    @classmethod
    def of(cls, run: RunConfig, run_dir: RunDir, status: dict[str, Any]) -> "TrackedRun":
        """`status`: what the run's start wrote to status.json (its provenance: the git commit)."""
        tags = {"task": run.task, "optimizer": run.optimizer.name, "seed": str(run.run.seed),
                "profile": str(run.cfg.get("profile")), "hparam_tag": run.tag, "run_dir": str(run_dir.path.resolve()),
                "git_commit": status.get("git_commit") or "unknown"}
        return cls(run_dir, run_dir.path.relative_to(run.results_root).as_posix(),
                   yaml.safe_load(run_dir.config_file.read_text()), tags, sweep_name(), run.results_root)

    @property
    def samples(self) -> list[Path]:
        """A GAN's sample grids as they are now (none for the other tasks)."""
        return sorted((self.run_dir.path / SAMPLES_DIR).glob("*.png"))


def sweep_name() -> str | None:
    """The Hydra sweep this job is one of (None for a single run): its +experiment's name, else the name of its sweep
    folder (outputs/multirun/<time>; adala-sweep's workers, each in <logs>/worker<w>, share the name of <logs>)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra = HydraConfig.get()
    if experiment := hydra.runtime.choices.get("experiment"):
        return experiment
    folder = Path(hydra.sweep.dir)
    return folder.parent.name if re.fullmatch(r"worker\d+", folder.name) else folder.name


def numbers(row: dict[str, Any]) -> list[tuple[str, float]]:
    """A metrics.jsonl row's numbers, `epoch` last (so a tracker that has it has the whole row)."""
    values = [(key, value) for key, value in row.items()
              if key != PROBE and isinstance(value, (int, float)) and not isinstance(value, bool)]
    return values + [(PROBE, row[PROBE])]


def flat(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """A nested config as dotted keys: {"optimizer": {"lr": 0.1}} -> ("optimizer.lr", 0.1)."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Trackers:
    """The chosen trackers of one session of training; a tracker's failure is caught here and said once."""

    def __init__(self, trackers: list, run_dir: RunDir):
        self.live, self.run_dir = trackers, run_dir

    @classmethod
    def start(cls, run: RunConfig, run_dir: RunDir, rows: list[dict[str, Any]], status: dict[str, Any]) -> "Trackers":
        """Open each chosen tracker on the run (its own tracker run, continued on a resume) and log the rows it lacks;
        `status` is the run's status as its start wrote it."""
        chosen = run.run.logger
        trackers = cls([TRACKERS[name](getattr(chosen, name)) for name in chosen.names], run_dir)
        if trackers.live:
            tracked = TrackedRun.of(run, run_dir, status)
            for tracker in list(trackers.live):
                trackers._guard(tracker, lambda t=tracker: t.log(missing(rows, t.open(tracked))))
        return trackers

    def epoch_done(self, rows: list[dict[str, Any]]) -> None:
        for tracker in list(self.live):
            self._guard(tracker, lambda t=tracker: t.log(rows[-1:]))

    def end(self) -> None:
        """The run's end as status.json has it (completed, diverged, or failed with the reason); a session that ended
        without one (the status still says running) only lets its trackers go."""
        if not self.live:
            return
        status = self.run_dir.read_status() or {}
        state, reason = status.get("state"), status.get("reason")
        for tracker in list(self.live):
            self._guard(tracker, lambda t=tracker: t.end(state, reason) if state != "running" else t.release())
        self.live = []

    def _guard(self, tracker, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:
            self.live.remove(tracker)
            log.warning("logger %s is off for the rest of this session (metrics.jsonl keeps every epoch; the next start "
                        "catches the tracker up): %s", tracker.name, one_line(error))
            with contextlib.suppress(Exception):
                tracker.release()


def missing(rows: list[dict[str, Any]], held: set[int]) -> list[dict[str, Any]]:
    return [row for row in rows if row[PROBE] not in held]


def one_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 500 else text[:497] + "..."


# -- the trackers: open(run) -> the epochs held, log(rows), end(state, reason) with the artifacts, release() --------
class TensorBoardTracker:
    """Every number of a row as a TensorBoard scalar, at step = epoch."""

    name = "tensorboard"
    FOLDER = "tensorboard"

    def __init__(self, chosen: bool):
        self.writer = None

    def open(self, run: TrackedRun) -> set[int]:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        self.folder = run.run_dir.path / self.FOLDER
        if not self.folder.is_dir():
            return set()
        events = EventAccumulator(str(self.folder), size_guidance={"scalars": 0})  # 0: every event
        events.Reload()
        return {event.step for event in events.Scalars(PROBE)} if PROBE in events.Tags()["scalars"] else set()

    def log(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # Readers drop what an earlier session wrote from this epoch on (a row it left half-written).
            self.writer = SummaryWriter(str(self.folder), purge_step=rows[0][PROBE])
        for row in rows:
            for key, value in numbers(row):
                self.writer.add_scalar(key, value, row[PROBE])
        self.writer.flush()

    def end(self, state: str, reason: str | None) -> None:
        self.release()

    def release(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MlflowTracker:
    """An MLflow run: the resolved config as params (flattened), the tags, every row at step = epoch, the end state
    (status FINISHED, FAILED or KILLED, and the tags `state` and `reason`), config.yaml and samples/ as artifacts."""

    name = "mlflow"
    STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "KILLED"}

    def __init__(self, settings: MlflowSettings):
        self.settings = settings

    def open(self, run: TrackedRun) -> set[int]:
        # An unreachable server must not hold training up: MLflow's defaults retry each call for minutes (a user's own
        # MLFLOW_HTTP_REQUEST_* settings win). Its own log lines are off: a failure is said once, in the warning line.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.CRITICAL)  # after the import, which sets it up

        self.run = run
        uri = self.settings.tracking_uri or f"sqlite:///{run.results_root.resolve().parent / 'mlruns' / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        ids = run.run_dir.read_trackers()
        self.run_id = ids.get(self.name, {}).get(uri)
        if self.run_id is not None and self._exists(self.run_id):
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(self._experiment(uri, run), run_name=run.name).info.run_id
            ids.setdefault(self.name, {})[uri] = self.run_id
            run.run_dir.write_trackers(ids)
        tags = [RunTag(key, value) for key, value in run.tags.items()]
        for params in chunks([Param(key, str(value)) for key, value in flat(run.config)], 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=params, tags=tags)
            tags = []
        self.client.log_artifact(self.run_id, str(run.run_dir.config_file))
        return {int(metric.step) for metric in self.client.get_metric_history(self.run_id, PROBE)}

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return False

    def _experiment(self, uri: str, run: TrackedRun) -> str:
        """The experiment's id, made if needed; a local store keeps its artifacts beside its database."""
        from mlflow.exceptions import MlflowException

        name = self.settings.experiment or run.sweep or DEFAULT_EXPERIMENT
        if (found := self.client.get_experiment_by_name(name)) is not None:
            return found.experiment_id
        location = None
        if uri.startswith("sqlite:///"):
            location = str(Path(uri.removeprefix("sqlite:///")).resolve().parent / "artifacts")
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another worker of the sweep made it meanwhile
            if (found := self.client.get_experiment_by_name(name)) is None:
                raise
            return found.experiment_id

    def log(self, rows: list[dict[str, Any]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, row[PROBE]) for row in rows for key, value in numbers(row)]
        for batch in chunks(metrics, 1000):  # MLflow's batch limit; `epoch` stays after the rest of its row
            self.client.log_batch(self.run_id, metrics=batch)

    def end(self, state: str, reason: str | None) -> None:
        from mlflow.entities import RunTag

        for sample in self.run.samples:
            self.client.log_artifact(self.run_id, str(sample), artifact_path=SAMPLES_DIR)
        self.client.log_batch(self.run_id, tags=[RunTag("state", state), RunTag("reason", reason or "")])
        self.client.set_terminated(self.run_id, status=self.STATUS[state])

    def release(self) -> None:
        """Nothing is held between calls."""


class WandbTracker:
    """A W&B run: the resolved config (and the tags, as config.run), every row at step = epoch, the end state (the
    exit code, and `state` and `reason` in the summary), config.yaml and samples/ as files. Offline unless
    logger.wandb.mode or WANDB_MODE says online; its files are in <run dir>/wandb/ either way (W&B's own folder
    layout: one offline-run-<time>-<id>/ or run-<time>-<id>/ per session, all of one W&B run)."""

    name = "wandb"
    FOLDER = "wandb"

    def __init__(self, settings: WandbSettings):
        self.settings, self.wandb_run = settings, None

    def open(self, run: TrackedRun) -> set[int]:
        folder = run.run_dir.path / self.FOLDER
        folder.mkdir(exist_ok=True)
        if not os.access(folder, os.W_OK):  # wandb would fall back to the system's temp folder, away from the run
            raise PermissionError(f"{folder} is not writable")
        mode = self.settings.mode or os.environ.get("WANDB_MODE") or "offline"
        if mode == "offline":  # offline: nothing leaves the machine, wandb-core's error reports neither
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        import wandb

        self.run = run
        ids = run.run_dir.read_trackers()
        if self.name not in ids:
            ids[self.name] = secrets.token_hex(8)
            run.run_dir.write_trackers(ids)
        held = wandb_epochs(folder, ids[self.name])
        self.wandb_run = wandb.init(
            project=self.settings.project, entity=self.settings.entity, group=self.settings.group or run.sweep,
            name=run.name, id=ids[self.name], resume="allow", dir=str(run.run_dir.path), mode=mode,
            config={**run.config, "run": run.tags}, tags=[run.tags[key] for key in ("task", "optimizer", "profile")],
            settings=wandb.Settings(silent=True, console="off"),
        )
        self._save(run.run_dir.config_file)
        return held

    def _save(self, path: Path) -> None:
        """A file of the run directory among the W&B run's files, as run/<its path there>: a copy (wandb warns of the
        links it makes to files outside its folder), kept apart from wandb's own config.yaml."""
        files = Path(self.wandb_run.dir)
        copy = files / "run" / path.relative_to(self.run.run_dir.path)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        self.wandb_run.save(str(copy), base_path=str(files), policy="now")

    def log(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.wandb_run.log(dict(numbers(row)), step=row[PROBE])

    def end(self, state: str, reason: str | None) -> None:
        for sample in self.run.samples:
            self._save(sample)
        self.wandb_run.summary.update({"state": state, "reason": reason or ""})
        self.wandb_run.finish(exit_code=0 if state == "completed" else 1)
        self.wandb_run = None

    def release(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=1)
            self.wandb_run = None


def wandb_epochs(folder: Path, run_id: str) -> set[int]:
    """The epochs the earlier sessions of this W&B run hold (offline sessions know nothing of each other): their
    transaction logs, <folder>/<session>/run-<id>.wandb, as wandb's own reader prints them (`wandb leet inspect
    --json`)."""
    epochs = set()
    for transaction_log in folder.glob(f"*/run-{run_id}.wandb"):
        if transaction_log.parent.is_symlink():  # latest-run: a link to the newest session
            continue
        for record in wandb_records(transaction_log):
            if record.get("type") == "history" and PROBE in record["history"].get("item", {}):
                epochs.add(int(record["history"]["item"][PROBE]))
    return epochs


def wandb_records(transaction_log: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false"}  # reading needs no network
    printed = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(transaction_log)],
                             capture_output=True, text=True, check=True, timeout=120, env=env).stdout
    return [json.loads(line) for line in printed.splitlines() if line.strip()]


TRACKERS = {tracker.name: tracker for tracker in (TensorBoardTracker, MlflowTracker, WandbTracker)}
