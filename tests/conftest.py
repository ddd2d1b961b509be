"""Shared fixtures: configs composed exactly as `adala-train` composes them, on small synthetic data."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from adala_bench.runner import CONF_DIR

REPO = Path(__file__).resolve().parents[1]

# One intra-op thread for every test: the tiny networks and tensors gain nothing from more, and on a busy 2-core
# machine OpenMP threads that wait on each other make them many times slower. Subprocesses (the CLI tests) inherit the setting.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


def compose_config(*overrides: str, return_hydra_config: bool = False):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)


def final_state(trainer, progress):
    """The trainer's checkpoint state without what legitimately differs between two equal runs (wall times, RNG)."""
    state = trainer.state_dict(progress)
    state["progress"].pop("wall_s")
    for row in state["progress"]["metrics"]:
        row.pop("wall_s")
    state.pop("rng")
    return state


def assert_same(a, b, where=""):
    """Nested dicts/lists of tensors and values are equal, bit for bit; `where` names the first difference."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    else:
        assert a == b, where


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
        return compose_config(
            "profile=smoke", f"data.root={data_root}", f"results.root={results or tmp_path / 'runs'}", *overrides
        )

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
