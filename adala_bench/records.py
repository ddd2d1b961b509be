"""The one reader of the run store: a run directory -> its record, in one state vocabulary.

adala-plan, adala-sweep and the report all read runs through `read_run`; nothing else interprets status.json.

    completed    status.json says completed
    diverged     status.json says diverged (where: `diverged_at`)
    running      status.json says running and a live process holds the run's lock (the trainer's OS lock)
    interrupted  status.json says failed (Ctrl-C, SIGTERM, an error, a corrupt checkpoint), or running with the lock
                 free (the process was killed): running it again resumes it
    not started  no status.json
    unreadable   a status.json that cannot be read, or names no known state

Completed and diverged runs are done: a sweep never runs them again. Reading creates and writes nothing; the lock is
probed only for runs whose status says running, and only for microseconds (store.lock_holder). A record reads the
last metrics row and the config only when asked (`last_row`, `config`, and by a line scan `profile`, `data_source`
and `tuning`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

from adala_bench.store import CONFIG_FILE, METRICS_FILE, STATUS_FILE, lock_holder

DONE_STATES = ("completed", "diverged")
LEFT_STATES = ("running", "interrupted", "not started", "unreadable")
STATES = DONE_STATES + LEFT_STATES
RESUME_HINT = "; re-run to resume from the last checkpoint"  # the runner's suffix of a failed run's reason


@dataclass
class RunRecord:
    path: Path
    state: str
    epochs_done: int = 0
    reason: str | None = None  # why a run is interrupted or unreadable
    holder: str | None = None  # the pid of the process training a running run
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES

    @property
    def diverged_at(self) -> dict[str, Any]:
        return self.status.get("diverged_at") or {}

    @cached_property
    def last_row(self) -> dict[str, Any] | None:
        """The last metrics row, None when there is none or it cannot be read."""
        line = last_line(self.path / METRICS_FILE)
        try:
            row = json.loads(line) if line else None
        except ValueError:
            return None
        return row if isinstance(row, dict) else None

    @cached_property
    def config(self) -> dict[str, Any] | None:
        """config.yaml as a dict, None when there is none or it cannot be read."""
        import yaml

        try:
            config = yaml.safe_load((self.path / CONFIG_FILE).read_text())
        except (OSError, yaml.YAMLError):
            return None
        return config if isinstance(config, dict) else None

    @cached_property
    def profile(self) -> str | None:
        """The `profile:` line of config.yaml (the top-level key every composed config has)."""
        for line in self._config_lines():
            if line.startswith("profile:"):
                return line.partition(":")[2].strip() or None
        return None

    @cached_property
    def data_source(self) -> str | None:
        """data.source from config.yaml."""
        return self._block("data").get("source")

    @cached_property
    def tuning(self) -> dict[str, str]:
        """config.yaml's `tuning` block, which a run of a tuning sweep or of the defaults track records ({"track":
        "tuned", "trial": "3"}, {"track": "defaults"}; search_space.py); {} for any other run."""
        return self._block("tuning")

    def _block(self, name: str) -> dict[str, str]:
        """The scalar keys of config.yaml's top-level block `name`, as text: its `  key: value` lines (OmegaConf
        writes nested keys indented by two spaces)."""
        block, inside = {}, False
        for line in self._config_lines():
            if not line.startswith(" "):
                inside = line.rstrip() == f"{name}:"
            elif inside and line.startswith("  ") and not line.startswith("   ") and ":" in line:
                key, _, value = line.strip().partition(":")
                if value.strip():
                    block[key] = value.strip()
        return block

    def _config_lines(self) -> Iterator[str]:
        """config.yaml line by line, nothing when it cannot be read: a line scan, no YAML parse, because the report
        reads thousands of runs this way."""
        try:
            with open(self.path / CONFIG_FILE, encoding="utf-8", errors="replace") as handle:
                yield from handle
        except OSError:
            return


def read_run(path: str | os.PathLike) -> RunRecord:
    """The record of the run directory at `path` (which may not exist yet: not started)."""
    path = Path(path)
    try:
        text = (path / STATUS_FILE).read_bytes()
    except FileNotFoundError:
        return RunRecord(path, "not started")
    except OSError as error:
        return RunRecord(path, "unreadable", reason=f"{STATUS_FILE}: {error.strerror}")
    try:
        status = json.loads(text)
        state = status["state"]
        done = int(status.get("epochs_done") or 0)
    except (ValueError, TypeError, KeyError):
        return RunRecord(path, "unreadable", reason=f"{STATUS_FILE} is not a run status")
    reason = None if status.get("reason") is None else str(status["reason"])
    if state in DONE_STATES:
        return RunRecord(path, state, done, reason, status=status)
    if state == "running":
        holder = lock_holder(path)
        if holder is not None:
            return RunRecord(path, "running", done, holder=holder, status=status)
        return RunRecord(path, "interrupted", done, "killed (status running, lock free)", status=status)
    if state == "failed":
        return RunRecord(path, "interrupted", done, (reason or "no reason recorded").removesuffix(RESUME_HINT),
                         status=status)
    return RunRecord(path, "unreadable", done, f"unknown state {state!r}", status=status)


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
