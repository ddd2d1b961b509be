"""The run directory: where one run's config, metrics, status and checkpoint live.

A run is identified by its resolved config, not by a timestamp (config.py names it):

    <results.root>/<task>/<optimizer>/<hparam-tag>/seed=<n>/
        config.yaml     the resolved config
        metrics.jsonl   one JSON object per finished epoch
        status.json     state (running | completed | diverged | failed), reason, provenance
        checkpoint.pt   everything needed to resume (+ checkpoint.pt.sha256)
        samples/        generated images (GAN tasks): epoch_XXX.png, final.png
        trackers.json   the run's experiment-tracker run ids (trackers.py: logger=mlflow, wandb)
        tensorboard/, wandb/   what those trackers' own libraries write (logger=tensorboard, wandb)

`RunDir` is the one owner of these files: the runner hands it the config, and after every epoch the trainer's
progress and state to save (`start`, `record_epoch`, `finish`); nothing else writes into a run directory but the
trackers' libraries, each in its own folder.
Every file is written atomically (temp file + rename), so a crash never leaves a half-written file behind, and
an exclusive lock keeps two processes out of the same run directory. The store knows files, not config keys: what a
run is, and so where it lives, is config.py's; how a run directory reads as a state is records.py's.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from adala_bench.files import atomic_write

CONFIG_FILE, METRICS_FILE, STATUS_FILE, CHECKPOINT_FILE = "config.yaml", "metrics.jsonl", "status.json", "checkpoint.pt"
TRACKERS_FILE = "trackers.json"
LOCK_FILE = ".lock"  # RunDir.lock holds an exclusive flock on it while the run trains
SAMPLES_DIR = "samples"
SAMPLES_FILE = f"{SAMPLES_DIR}/final.png"
SEED_PREFIX = "seed="
# The values status.json's "state" may hold, as the runner writes them. They are raw: a run's state (records.py's
# one vocabulary: completed, diverged, running, interrupted, not started, unreadable) also depends on its lock.
STATUS_VALUES = ("running", "completed", "diverged", "failed")


class RunStoreError(RuntimeError):
    """A run directory that cannot be used as it is (busy, corrupt checkpoint)."""


def layout_path(root: str | Path, task: str, optimizer: str, tag: str, seed: int) -> Path:
    """<root>/<task>/<optimizer>/<hparam-tag>/seed=<n>: the one place the layout is spelled out."""
    return Path(root) / task / optimizer / tag / f"{SEED_PREFIX}{seed}"


def lock_holder(run_dir: Path) -> str | None:
    """The pid written in the run's lock file if a live process holds the lock; None if it is free. The probe takes
    the lock only when it is free, and drops it at once; it creates nothing."""
    try:
        handle = open(Path(run_dir) / LOCK_FILE)
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held (EWOULDBLOCK)
            return handle.read().strip() or "unknown"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RunDir:
    """One run's directory. The store knows files, not models: the checkpoint is a dict it is handed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_handle: io.TextIOWrapper | None = None
        self._checkpoint_sha256: str | None = None  # of the checkpoint file in place, once loaded or saved here

    config_file = property(lambda self: self.path / CONFIG_FILE)
    metrics_file = property(lambda self: self.path / METRICS_FILE)
    status_file = property(lambda self: self.path / STATUS_FILE)
    checkpoint_file = property(lambda self: self.path / CHECKPOINT_FILE)
    checksum_file = property(lambda self: self.path / f"{CHECKPOINT_FILE}.sha256")

    # -- lock ---------------------------------------------------------------------------------------------------
    def lock(self) -> "RunDir":
        """Take the run's exclusive lock; the OS drops it when the process dies, however it dies."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunStoreError(self._busy(holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle
        return self

    def check_free(self) -> None:
        """RunStoreError if another process holds the run's lock now (creates nothing): a cheap look before the
        costly set-up of a run, which `lock` then takes for real."""
        if (holder := lock_holder(self.path)) is not None:
            raise RunStoreError(self._busy(holder))

    def _busy(self, holder: str) -> str:
        return f"run directory {self.path} is in use by another process (pid {holder}); not starting a second one"

    def unlock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> "RunDir":
        return self.lock()

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    # -- config, status, metrics ----------------------------------------------------------------------------------
    def write_config(self, cfg: DictConfig) -> None:
        atomic_write(self.config_file, OmegaConf.to_yaml(cfg, resolve=True).encode())

    def read_status(self) -> dict[str, Any] | None:
        if not self.status_file.exists():
            return None
        return json.loads(self.status_file.read_text())

    def write_status(self, state: str, **fields: Any) -> dict[str, Any]:
        """Update status.json, keeping the fields already there (provenance, start time)."""
        if state not in STATUS_VALUES:
            raise ValueError(f"unknown run state {state!r}; allowed: {', '.join(STATUS_VALUES)}")
        status = {**(self.read_status() or {}), **fields, "state": state}
        atomic_write(self.status_file, (json.dumps(status, indent=2, sort_keys=True) + "\n").encode())
        return status

    def write_metrics(self, rows: list[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(row, sort_keys=False) + "\n" for row in rows)
        atomic_write(self.metrics_file, text.encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def read_trackers(self) -> dict[str, Any]:
        """The tracker run ids this run has (trackers.py), {} before the first."""
        try:
            return json.loads((self.path / TRACKERS_FILE).read_text())
        except FileNotFoundError:
            return {}

    def write_trackers(self, ids: Mapping[str, Any]) -> None:
        atomic_write(self.path / TRACKERS_FILE, (json.dumps(ids, indent=2, sort_keys=True) + "\n").encode())

    # -- a run's life: start, one record per epoch, finish -----------------------------------------------------------
    def start(self, cfg: DictConfig, metrics: list[Mapping[str, Any]], **provenance: Any) -> dict[str, Any]:
        """Mark the run running. A new run gets its config; a resumed one gets the checkpoint's metrics back, so
        metrics.jsonl never lags the checkpoint (a crash between the two writes of an epoch can leave it so)."""
        status = self.read_status()
        if not self.config_file.exists():
            self.write_config(cfg)
        self.write_metrics(metrics)
        return self.write_status(
            "running", reason=None, epochs_done=len(metrics), ended_at=None,
            started_at=(status or {}).get("started_at") or now_iso(), **provenance,
        )

    def record_epoch(self, metrics: list[Mapping[str, Any]], checkpoint: Mapping[str, Any],
                     artifacts: Mapping[str, bytes] = {}) -> None:
        """After an epoch: its artifacts (sample grids, made again by a resume), the checkpoint (the record a resume
        starts from), then metrics and status."""
        for relative, data in artifacts.items():
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data)
        self.save_checkpoint(checkpoint)
        self.write_metrics(metrics)
        self.write_status("running", epochs_done=len(metrics))

    def finish(self, state: str, reason: str | None = None, **fields: Any) -> dict[str, Any]:
        """The run's end: completed, diverged (both final) or failed (re-running resumes)."""
        return self.write_status(state, reason=reason, ended_at=now_iso(), **fields)

    # -- checkpoint -----------------------------------------------------------------------------------------------
    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(dict(state), buffer)
        data = buffer.getvalue()
        # Two renames cannot be made one. The checksum file goes first and vouches for the new file and for the one
        # still in place, so an interruption between the renames (Ctrl-C, SIGKILL) leaves the previous checkpoint,
        # whole and accepted, and a resume redoes one epoch; no checksum ever vouches for a file that is not whole.
        new = hashlib.sha256(data).hexdigest()
        in_place = [self._checkpoint_sha256] if self._checkpoint_sha256 else self._recorded_checksums()
        atomic_write(self.checksum_file, "\n".join(dict.fromkeys([new, *in_place])).encode())
        atomic_write(self.checkpoint_file, data)
        self._checkpoint_sha256 = new

    def _recorded_checksums(self) -> list[str]:
        try:
            return self.checksum_file.read_text().split()
        except FileNotFoundError:
            return []

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The saved state, None when there is none; RunStoreError when it is truncated or corrupt."""
        if not self.checkpoint_file.exists():
            return None
        data = self.checkpoint_file.read_bytes()
        recorded = self._recorded_checksums()
        actual = hashlib.sha256(data).hexdigest()
        if actual not in recorded:
            raise RunStoreError(
                f"checkpoint {self.checkpoint_file} is corrupt or truncated (sha256 {actual[:12]} != recorded "
                f"{(recorded[0] if recorded else 'none')[:12]}); delete the run directory to start this run again"
            )
        self._checkpoint_sha256 = actual
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception as error:  # a valid checksum over unreadable bytes: report it the same way
            raise RunStoreError(f"checkpoint {self.checkpoint_file} cannot be read ({error}); delete the run directory to start again") from error

