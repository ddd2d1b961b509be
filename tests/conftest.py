"""Fixtures every layer shares (helpers are in helpers.py; a fixture one file needs stays in that file): small synthetic
data, smoke configs, an offline network, a random-weights Inception network.

Where a test goes: anything that calls `train_one` (a whole run through the runner) or a console script's `main` / its
command goes to e2e/, in a file named by the feature (test_report_cli.py, test_ptb_runs.py); everything else is a unit
test, in the file of the module it tests: the test of adala_bench/x/y.py is unit/x/test_y.py (adala_bench/y.py:
unit/test_y.py), a check against an independent computation beside the tests it backs up. A file past ~700 lines
splits by sub-subject, named for what it holds (metrics/test_fid_cache.py). tests/slurm and tests/demo are the slower
tiers (`make test-slurm`, `make test-demo`).

`make test` runs unit/ and e2e/ on several pytest-xdist workers in any order: a test depends on no other, writes only
under its own tmp_path (session fixtures are per worker), and puts back any global it changes."""

from __future__ import annotations

import os
import signal
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers.py, from unit/ and e2e/ alike
from helpers import compose  # noqa: E402

# One intra-op thread for every test: the tiny networks and tensors gain nothing from more, and on a busy 2-core
# machine OpenMP threads that wait on each other make them many times slower. Subprocesses (the CLI tests) inherit
# the setting.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"
# Ctrl-C as a terminal delivers it, to the runs the tests start and stop with SIGINT: a shell's background job (`make
# test &`, some CI runners) starts with SIGINT ignored, which every child would inherit, and a run would not stop.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """One synthetic CIFAR-10 (smoke-profile sizes) shared by the tests that train."""
    from adala_bench.data.cifar10 import ensure_synthetic_cifar10

    root = tmp_path_factory.mktemp("data")
    ensure_synthetic_cifar10(root, n_train=256, n_test=128)
    return root


@pytest.fixture
def smoke(data_root, tmp_path):
    """compose(...) for a smoke-profile run whose results go to this test's tmp_path."""

    def make(*overrides: str, results: Path | None = None):
        return compose("profile=smoke", f"data.root={data_root}", f"results.root={results or tmp_path / 'runs'}",
                       *overrides)

    return make


@pytest.fixture
def no_network(monkeypatch):
    """torch hub's only way out: any download attempt fails as it does offline."""

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)


@pytest.fixture(scope="session")
def random_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose Inception weights file has random weights (labelled so; never downloaded)."""
    from adala_bench.metrics import fid

    home = tmp_path_factory.mktemp("torch_home")
    fid.write_random_inception_weights(home, seed=0)
    return home
