"""Shared fixtures: configs composed exactly as `adala-train` composes them, on small synthetic data."""

from __future__ import annotations

from pathlib import Path

import os

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
