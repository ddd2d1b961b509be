"""FID's Inception runs with TF32 off whatever the trainer allows (profile=fast turns TF32 on for a CUDA run), so the
real statistics cached by one run, under one profile, are what every other run would compute: the cache needs no
precision in its key.

TF32 only changes CUDA kernels; on this CPU-only machine the test reads torch's own switches (fp32_precision of CUDA
matmuls, cuDNN convolutions and RNNs) as Inception's forward sees them. That the CUDA numbers agree with the CPU's is
scripts/gpu_check.sh's `fid` step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adala_bench.devices import set_tf32
from adala_bench.metrics.fid import RealStatisticsCache, activation_statistics
from adala_bench.tasks.gan_fid import inception_features

SWITCHES = {"matmul": torch.backends.cuda.matmul, "conv": torch.backends.cudnn.conv, "rnn": torch.backends.cudnn.rnn}


@pytest.fixture
def switches():
    saved = {name: switch.fp32_precision for name, switch in SWITCHES.items()}
    yield
    for name, switch in SWITCHES.items():
        switch.fp32_precision = saved[name]


def read() -> dict[str, str]:
    return {name: switch.fp32_precision for name, switch in SWITCHES.items()}


@pytest.mark.usefixtures("switches")
def test_inception_sees_tf32_off_when_the_trainer_turned_it_on_and_the_cache_is_the_same_either_way(
        random_home, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    features = inception_features(torch.device("cpu"), 64, 8)  # built once per process, as a sweep's runs share it
    seen = []
    hook = features.model.register_forward_pre_hook(lambda module, args: seen.append(read()))
    images = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def cached(folder: str, tf32: bool):
        set_tf32(tf32)  # as the runner sets it for a fast (True) or paper (False) CUDA run
        cache = RealStatisticsCache(tmp_path / folder)
        stats = cache.load_or_compute("paper64", 12, 64, features.weights_sha256, fingerprint="twelve images",
                                      compute=lambda: activation_statistics(features.features(images)))
        return cache.path("paper64", 12, 64, features.weights_sha256).name, stats, read()

    try:
        name_fast, (mu_fast, sigma_fast), after_fast = cached("fast", True)
        name_paper, (mu_paper, sigma_paper), after_paper = cached("paper", False)
    finally:
        hook.remove()
    assert seen == [{"matmul": "ieee", "conv": "ieee", "rnn": "ieee"}] * 4  # 12 images in batches of 8, twice
    assert after_fast == {"matmul": "tf32", "conv": "tf32", "rnn": "tf32"}  # what the trainer set, put back
    assert after_paper == {"matmul": "ieee", "conv": "ieee", "rnn": "ieee"}
    assert name_fast == name_paper
    np.testing.assert_array_equal(mu_fast, mu_paper)
    np.testing.assert_array_equal(sigma_fast, sigma_paper)
