"""One line, once, instead of submitit's sacct errors on a SLURM cluster that keeps no accounting.

submitit (hydra/launcher=slurm_gpu|slurm_cpu) follows a sweep's jobs by calling `sacct` at 0, 2, 4, 8 ... s after each
submission and then every few minutes, for as long as the submitting `adala-train --multirun` waits. Where the
cluster has no accounting database (no slurmdbd, e.g. scripts/slurm_local.sh), every call fails, and each failure
shows up four times: sacct's own "Slurm accounting storage is disabled" on stderr, and submitit's

    submitit WARNING (...) - Call #N - Bypassing sacct error Command '['sacct', ...]' returned non-zero exit
    status 1., status may be inaccurate.

through the 'submitit' logger's two handlers (stderr and stdout, configured when submitit is imported) and once
more through the root logger, where Hydra's console handler prints it again.

`quiet_sacct_errors()` (adala-train's main() calls it once, before Hydra starts) leaves one line per process, on
stderr, at the first failure, saying what it means, and drops every later one:

- a filter on the 'submitit' logger drops its "Bypassing sacct error" records (a logger's filter runs before any of
  its handlers and before the record reaches the root logger, so all three copies go);
- submitit's module-level `subprocess`, for its sacct calls only, captures sacct's stderr instead of letting it
  through (its text goes into that one line).

Nothing else changes: submitit still calls sacct, still sees the state UNKNOWN when it fails, and still learns that
a job has ended from the result file the job writes in the submitit folder.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

LOGGER = "submitit"
SACCT_ERROR = "Bypassing sacct error"
NO_ACCOUNTING = "accounting storage is disabled"

_lock = threading.Lock()
_installed: "SacctErrors | None" = None


class SacctErrors(logging.Filter):
    """Drops submitit's "Bypassing sacct error" records; at the first, writes one line saying what they mean."""

    def __init__(self, prog: str = "adala-train", stream: TextIO | None = None) -> None:
        super().__init__()
        self.prog = prog
        self.stream = stream
        self.shown = False
        self.dropped = 0
        self.sacct_stderr = ""  # the last failed sacct's stderr, kept by SacctStderr

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is not ours to judge
            return True
        if SACCT_ERROR not in message:
            return True
        self.dropped += 1
        if not self.shown:
            self.shown = True
            stream = self.stream or sys.stderr
            print(self.explanation(message), file=stream, flush=True)
        return False

    def explanation(self, message: str) -> str:
        said = self.sacct_stderr.strip().splitlines()
        said = said[-1].strip() if said else ""
        if NO_ACCOUNTING in said.lower() or NO_ACCOUNTING in message.lower():
            return (f"{self.prog}: sacct fails on this cluster ({said or 'Slurm accounting storage is disabled'}: "
                    "no accounting database), so submitit cannot read job states; it logs 'Bypassing sacct error' "
                    "on every check (not shown again) and learns that a job has ended only from the result file the "
                    "job writes in the submitit folder. Jobs that finish, raise an error or requeue are followed as "
                    "usual; a job that ends without writing one (cancelled with scancel, or killed) leaves this sweep "
                    "waiting until you stop it (Ctrl-C): submitting the same sweep again resumes its runs.")
        error = message.split(SACCT_ERROR, 1)[1].split(", status may be inaccurate", 1)[0].strip()
        return (f"{self.prog}: sacct failed ({said or error}); submitit reads job states from sacct, so it may show "
                "them inaccurately until sacct answers again, and goes on watching each job's result file in the "
                "submitit folder. Later sacct errors in this process are not shown.")


class SacctStderr:
    """Stands in for the `subprocess` module inside submitit.core.core: the same module, except that a `sacct` call's
    stderr is captured (and kept for the explanation) instead of going to the sweep's stderr."""

    def __init__(self, module: Any, errors: SacctErrors) -> None:
        self._module = module
        self._errors = errors

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def check_output(self, args, *rest, **kwargs):
        command = args if isinstance(args, (list, tuple)) else [args]
        if not command or str(command[0]).rsplit("/", 1)[-1] != "sacct" or "stderr" in kwargs:
            return self._module.check_output(args, *rest, **kwargs)
        try:
            return self._module.check_output(args, *rest, stderr=self._module.PIPE, **kwargs)
        except self._module.CalledProcessError as error:
            stderr = error.stderr
            if isinstance(stderr, bytes):
                stderr = stderr.decode(errors="replace")
            self._errors.sacct_stderr = str(stderr or "")
            raise


def quiet_sacct_errors(prog: str = "adala-train", stream: TextIO | None = None) -> SacctErrors:
    """Install the filter on the 'submitit' logger and the sacct stderr capture, once per process; returns the filter
    (later calls return the same one and change nothing)."""
    global _installed
    with _lock:
        if _installed is None:
            _installed = SacctErrors(prog, stream)
            logging.getLogger(LOGGER).addFilter(_installed)
        try:
            from submitit.core import core
        except ImportError:  # no submitit: nothing submits to SLURM, nothing to quiet
            return _installed
        if not isinstance(core.subprocess, SacctStderr):
            core.subprocess = SacctStderr(core.subprocess, _installed)
        return _installed
