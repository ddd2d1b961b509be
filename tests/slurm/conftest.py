"""tests/slurm: adala-train's SLURM launcher end to end, against a real one-node cluster on this machine
(scripts/slurm_local.sh). `make test-slurm` runs them; `make test` does not (pyproject's testpaths are tests/unit and
tests/e2e).

The cluster fixture starts the cluster (as root; the script installs slurm-wlm and munge with apt-get when they are
missing) and stops it at the end only if it started it: a cluster that was up already is left up. Without root, or
without SLURM and no apt-get to install it, the tests are skipped with the reason in one line; with
ADALA_SLURM_REQUIRE=1 (`make test-slurm`) that is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
SLURM_COMMANDS = ("slurmctld", "slurmd", "munged", "sinfo", "sbatch", "scontrol", "squeue", "scancel")


def _unavailable(step: str, reason: str) -> None:
    if os.environ.get("ADALA_SLURM_REQUIRE") == "1":
        pytest.fail(f"step '{step}': {reason} (ADALA_SLURM_REQUIRE=1: not skipped)", pytrace=False)
    pytest.skip(reason)


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """scripts/slurm_local.sh, without OMP_NUM_THREADS / OMP_THREAD_LIMIT (tests/conftest.py sets the first to 1, and
    GNU nproc, which sizes the node, honours both)."""
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT")}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def _one_line(done: subprocess.CompletedProcess) -> str:
    """The script's own one-line verdict ("slurm_local: FAILED at <step>: ..."), else its last line."""
    lines = (done.stderr + done.stdout).strip().splitlines()
    failed = [line for line in lines if "FAILED at" in line]
    return (failed or lines or [f"exit status {done.returncode}, no output"])[-1]


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node SLURM cluster on this machine, up for the whole session (partition `cpu`, node `hostname -s`)."""
    if os.geteuid() != 0:
        _unavailable("cluster start",
                     "tests/slurm need root to start the one-node SLURM cluster (sudo make test-slurm)")
    missing = [name for name in SLURM_COMMANDS if shutil.which(name) is None
               and not Path("/usr/sbin", name).exists()]
    if missing and shutil.which("apt-get") is None:
        _unavailable("install",
                     f"SLURM is not installed ({', '.join(missing)} missing) and there is no apt-get to install it")
    up = _script("--status", timeout=60)
    started = up.returncode != 0
    if started:  # install (if needed), config, daemon start, node state: the script names the step that failed
        done = _script(timeout=900)
        if done.returncode != 0:
            pytest.fail(f"step 'cluster start': {_one_line(done)}", pytrace=False)
        print(f"\n{_one_line(done)}", file=sys.stderr)
    yield {"started": started}
    if started:
        stop = _script("--stop", timeout=120)
        if stop.returncode != 0:
            print(f"step 'cluster stop': {_one_line(stop)}", file=sys.stderr)


@pytest.fixture(scope="session")
def epoch_seconds(tmp_path_factory, data_root) -> float:
    """Wall-clock seconds of one smoke VGG11 SGD epoch here (training, evaluation and checkpoint; in-process, from a
    6-epoch run less a 2-epoch one): the tests size their runs by it, so that a run is still training when SLURM or
    the test stops it, on a fast machine or a slow one."""
    from adala_bench.runner import train_one
    from helpers import compose

    took = {}
    for epochs in (2, 6):
        cfg = compose("profile=smoke", "task=cifar10_vgg11", "optimizer=sgd", "seed=0", f"epochs={epochs}",
                      f"data.root={data_root}", f"results.root={tmp_path_factory.mktemp('calibrate')}")
        start = time.monotonic()
        try:
            state = train_one(cfg)
        except Exception as error:  # noqa: BLE001 - any failure here is this step's
            state = repr(error)
        if state != "completed":
            pytest.fail(f"step 'calibrate': a {epochs}-epoch smoke run did not complete here: {state}", pytrace=False)
        took[epochs] = time.monotonic() - start
    return max((took[6] - took[2]) / 4, 0.01)
