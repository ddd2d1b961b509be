"""metrics/fid.py's Inception (PROTOCOL.md §3): its weights (where they are looked for, offline and unloadable files in
one line, their sha256 and the label a random-weights file gets), InceptionFeatures (defaults, device, batching, the
[0, 1] range it takes) and its features against pytorch-fid's own chain, as the paper's reference ran it: the images
saved as PNGs the reference's way, read back by pytorch-fid (`ImagePathDataset` + `ToTensor`), through pytorch-fid's
`InceptionV3` (`get_activations`) and `calculate_frechet_distance` (scipy's sqrtm); and TF32 off inside it whatever
the run allows.

Inception runs on a random-weights file (conftest `random_home`, in a temporary TORCH_HOME), which pytorch-fid's
loader reads as it would the real one, and torch hub's downloader is stubbed to fail: nothing reaches the network.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

from adala_bench.devices import set_tf32
from adala_bench.metrics import fid
from adala_bench.metrics.fid import (FIDError, InceptionFeatures, RealStatisticsCache, activation_statistics,
                                     fid_from_images, paper_preprocess)
from adala_bench.tasks.gan_fid import inception_features
from helpers import reference_activations, reference_pngs, reference_statistics

pytestmark = [pytest.mark.usefixtures("no_network"),  # conftest: every download fails, as offline
              pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")]


@pytest.fixture
def torch_home(random_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


# ---- weights -----------------------------------------------------------------------------------------------------

def test_weights_location_follows_torch_home_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "one"))
    assert fid.inception_weights_file() == tmp_path / "one" / "hub" / "checkpoints" / fid.WEIGHTS_FILE
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "two"))
    assert fid.inception_weights_file().parent == tmp_path / "two" / "hub" / "checkpoints"
    assert fid.WEIGHTS_FILE == "pt_inception-2015-12-05-6726825d.pth" and fid.WEIGHTS_SHA256_PREFIX == "6726825d"


def test_offline_weights_error_is_one_line_naming_file_url_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    with pytest.raises(FIDError) as error:
        fid.ensure_inception_weights()  # goes through pytorch-fid's loader into the stubbed downloader
    message = str(error.value)
    assert "\n" not in message
    assert fid.WEIGHTS_FILE in message and FID_WEIGHTS_URL in message and f"put it in {folder}" in message
    assert "URLError" in message


def test_a_failed_download_is_tried_once_per_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    attempts = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    for _ in range(2):
        with pytest.raises(FIDError, match="no route to host"):
            fid.ensure_inception_weights()
    assert attempts == [FID_WEIGHTS_URL]


def test_unloadable_weights_file_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = fid.inception_weights_file()
    path.parent.mkdir(parents=True)
    torch.save({"conv.weight": torch.zeros(1)}, path)  # loads, but is not the FID-Inception's state dict
    with pytest.raises(FIDError) as error:
        InceptionFeatures("cpu", dims=64)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"Inception weights {path} do not load")


def test_random_weights_are_labelled_and_the_real_prefix_is_recognised(torch_home, monkeypatch):
    path = fid.inception_weights_file()
    assert path.is_file() and not fid.weights_are_real()
    assert fid.weights_label() == fid.RANDOM_LABEL == "RANDOM WEIGHTS: not a real FID"
    monkeypatch.setattr(fid, "WEIGHTS_SHA256_PREFIX", fid.weights_sha256(path)[:8])  # pretend it is the real file
    assert fid.weights_label() == fid.REAL_LABEL == "pt_inception-2015-12-05 (real)"


def test_weights_sha256_hashes_each_given_file_whole(tmp_path, torch_home, monkeypatch):
    """The sha256 of all the bytes of the file given (more than one read chunk), for each file on its own, even two
    of the same size and modification time."""
    monkeypatch.setattr(fid, "_sha256_memo", {})
    first, second = tmp_path / "first.pth", tmp_path / "second.pth"
    first.write_bytes(bytes(range(256)) * 12289)  # 3 MiB + 256 bytes
    second.write_bytes(bytes(reversed(range(256))) * 12289)
    for path in (first, second):
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    for path in (first, second, first):
        assert fid.weights_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fid.weights_sha256(str(second)) == hashlib.sha256(second.read_bytes()).hexdigest()


def test_weights_are_real_and_the_label_judge_the_given_file(tmp_path, torch_home, monkeypatch):
    """A file given by path is judged by its own sha256, not by the default (random-weights) file's."""
    given = tmp_path / "pt_inception.pth"
    given.write_bytes(b"stands in for the real weights")
    monkeypatch.setattr(fid, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(given.read_bytes()).hexdigest()[:8])
    assert fid.weights_are_real(given) and not fid.weights_are_real()
    assert fid.weights_label(given) == fid.REAL_LABEL and fid.weights_label() == fid.RANDOM_LABEL
    assert not fid.weights_are_real(tmp_path / "missing.pth")
    with pytest.raises(FIDError, match="no Inception weights at"):
        fid.weights_label(tmp_path / "missing.pth")


class Unloadable:
    """Stands in for pytorch-fid's InceptionV3 when the weights file does not load: raises `error` on construction."""

    BLOCK_INDEX_BY_DIM = InceptionV3.BLOCK_INDEX_BY_DIM
    error: Exception = RuntimeError()

    def __init__(self, output_blocks):
        raise self.error


@pytest.mark.parametrize("error, shown", [
    (RuntimeError("Error(s) in loading state_dict for Inception3:\n\tMissing key(s): conv.weight"),
     "(Error(s) in loading state_dict for Inception3:)"),
    (RuntimeError("  unexpected EOF, expected 42 more bytes  "), "(unexpected EOF, expected 42 more bytes)"),
    (EOFError(), "(EOFError)"),
])
def test_weights_that_do_not_load_are_one_line_naming_the_errors_first_line(torch_home, monkeypatch, error, shown):
    """The FIDError carries the loader's first line of text, or the error's type when it has no text."""
    monkeypatch.setattr(fid, "InceptionV3", type("Failing", (Unloadable,), {"error": error}))
    with pytest.raises(FIDError) as raised:
        InceptionFeatures("cpu", dims=64)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"Inception weights {fid.inception_weights_file()} do not load {shown}; delete the file")


# ---- InceptionFeatures -------------------------------------------------------------------------------------------

def test_inception_features_defaults_and_batch_size_check(torch_home):
    """InceptionFeatures() is the protocol's: pool3 (2048-d) on the CPU in batches of 50. A batch size is an int >= 1
    (1 is accepted)."""
    features = InceptionFeatures()
    assert (features.device, features.dims, features.batch_size) == (torch.device("cpu"), 2048, 50)
    assert {parameter.device for parameter in features.model.parameters()} == {torch.device("cpu")}
    assert features.weights_sha256 == fid.weights_sha256(fid.inception_weights_file())
    assert features.weights_label == fid.RANDOM_LABEL
    assert InceptionFeatures("cpu", dims=64, batch_size=1).batch_size == 1
    for bad in (0, -3, 2.0, "50"):
        with pytest.raises(FIDError, match=rf"batch_size must be a positive int, got {re.escape(repr(bad))}"):
            InceptionFeatures("cpu", dims=64, batch_size=bad)


def test_inception_features_puts_the_model_on_the_requested_device(torch_home):
    """The network is moved to `device` (here PyTorch's storage-less "meta" device, which every build has; a GPU in
    real runs), not left where the weights were loaded."""
    features = InceptionFeatures(torch.device("meta"), dims=64)
    assert features.device == torch.device("meta")
    assert {parameter.device for parameter in features.model.parameters()} == {torch.device("meta")}


def test_inception_features_batching_range_and_labels(torch_home):
    features = InceptionFeatures("cpu", dims=64, batch_size=3)
    assert features.weights_label == fid.RANDOM_LABEL
    images = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    batched = features.features(images)
    assert batched.shape == (5, 64) and batched.dtype == np.float64 and batched.std(axis=0).min() > 0
    features.batch_size = 50
    np.testing.assert_allclose(features.features(images), batched, rtol=1e-5, atol=1e-6)
    with pytest.raises(FIDError, match=r"images must lie in \[0, 1\].*paper_preprocess"):
        features.features(images * 2 - 1)
    with pytest.raises(FIDError, match="dims must be one of 64, 192, 768, 2048, got 100"):
        InceptionFeatures("cpu", dims=100)


def test_fid_of_images_against_their_own_statistics_is_zero(torch_home):
    features = InceptionFeatures("cpu", dims=64)
    images = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    stats = activation_statistics(features.features(images))
    assert abs(fid.fid_from_images(features, [images[:5], images[5:]], stats)) < 1e-6 * np.trace(stats[1])


# ---- against pytorch-fid's chain, as the reference ran it --------------------------------------------------------

def generator_like(count: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """[-1, 1] images with per-image ranges that differ (as a generator's tanh outputs do), some never reaching ±1."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.tanh(1.5 * torch.randn(count, 3, size, size, generator=generator))
    return images * (0.3 + 0.7 * torch.rand(count, 1, 1, 1, generator=generator))


@pytest.mark.usefixtures("torch_home")
def test_inception_features_equal_pytorch_fids_activations_on_the_reference_pngs(tmp_path):
    """The protocol's pool3 features (2048-d): the in-memory path (paper_preprocess, then InceptionFeatures.features)
    against get_activations on PNG files written by save_image(normalize=True)."""
    images = generator_like(5)
    expected = reference_activations(reference_pngs(images, tmp_path / "pngs"), dims=2048)
    got = InceptionFeatures("cpu", dims=2048, batch_size=50).features(paper_preprocess(images))
    assert got.shape == expected.shape == (5, 2048)
    assert np.abs(expected).max() > 0.01  # the random network's features are not all ~0
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("torch_home")
def test_fid_of_two_image_sets_equals_pytorch_fids(tmp_path):
    """fid_from_images (64-d features, batches of 7 so batching is exercised) against calculate_frechet_distance on
    pytorch-fid's statistics of the same images as PNGs."""
    first = generator_like(16, seed=1)
    second = torch.nn.functional.interpolate(generator_like(16, size=8, seed=2), size=64)  # blocky: another set
    first_paths = reference_pngs(first, tmp_path / "first")
    second_paths = reference_pngs(second, tmp_path / "second")
    expected = calculate_frechet_distance(*reference_statistics(first_paths, 64),
                                          *reference_statistics(second_paths, 64))
    features = InceptionFeatures("cpu", dims=64, batch_size=7)
    second_stats = activation_statistics(features.features(paper_preprocess(second)))
    got = fid_from_images(features, [paper_preprocess(first[:5]), paper_preprocess(first[5:])], second_stats)
    assert expected > 0.01  # two different sets: a real distance, not ~0
    assert got == pytest.approx(expected, rel=1e-5)


# ---- TF32 off inside Inception -----------------------------------------------------------------------------------

# FID's Inception runs with TF32 off whatever the trainer allows (profile=fast turns TF32 on for a CUDA run), so the
# real statistics cached by one run, under one profile, are what every other run would compute: the cache needs no
# precision in its key. TF32 only changes CUDA kernels; on this CPU-only machine the test reads torch's own switches
# (fp32_precision of CUDA matmuls, cuDNN convolutions and RNNs) as Inception's forward sees them. That the CUDA numbers
# agree with the CPU's is scripts/gpu_check.sh's `fid` step.

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
