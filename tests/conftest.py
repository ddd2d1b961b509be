"""Shared fixtures (helpers are in helpers.py): small synthetic data, smoke configs, an offline network, a
random-weights Inception network. Tests are in two layers: unit/ (functions and modules, seconds; `make test-quick`)
and e2e/ (the console scripts, sweeps, whole runs and the behaviour pinned to recorded runs)."""

from __future__ import annotations

import os
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
