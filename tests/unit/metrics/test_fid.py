"""FID (PROTOCOL.md §3): the Fréchet distance against pytorch-fid's, closed forms, the paper's PNG preprocessing,
the real-statistics cache, weights handling and `adala-fid` against `python -m pytorch_fid`.

Inception runs on a random-weights file in a temporary TORCH_HOME, and torch hub's downloader is stubbed to fail,
so nothing here reaches the network.
"""

from __future__ import annotations

import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as TF
from PIL import Image
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import FID_WEIGHTS_URL
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torchvision.utils import save_image

from adala_bench.metrics import fid
from adala_bench.metrics.fid import (FIDError, InceptionFeatures, RealStatisticsCache, activation_statistics,
                                     frechet_distance, paper_preprocess)

# pytorch-fid's own sqrtm call, which the comparisons run.
pytestmark = [pytest.mark.usefixtures("no_network"),  # conftest: every download fails, as offline
              pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")]

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def torch_home(random_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


def _gaussian_features(rng, n: int, dims: int, shift: float) -> np.ndarray:
    mixing = np.eye(dims) + 0.1 * rng.standard_normal((dims, dims))
    return np.abs(rng.standard_normal((n, dims)) @ mixing + shift)


# ---- Fréchet distance ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dims, n", [(512, 1500), (128, 60)])  # full-rank covariances, then singular ones (n < dims)
def test_frechet_distance_agrees_with_pytorch_fid(dims, n):
    rng = np.random.default_rng(dims)
    first = activation_statistics(_gaussian_features(rng, n, dims, 0.0))
    second = activation_statistics(_gaussian_features(rng, n, dims, 0.3))
    expected = calculate_frechet_distance(*first, *second)
    assert frechet_distance(*first, *second) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    mu, sigma = activation_statistics(_gaussian_features(np.random.default_rng(1), 400, 64, 0.0))
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(2)
    # Covariances with common eigenvectors: ||mu1 - mu2||^2 + sum (sqrt a - sqrt b)^2.
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-12)
    # Non-commuting 2x2 covariances: Tr sqrtm(M) = sqrt(tr M + 2 sqrt(det M)) for M with non-negative eigenvalues.
    s1, s2 = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([[1.0, -0.3], [-0.3, 0.5]])
    m = s1 @ s2
    tr_sqrt = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
    expected = 1.0 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance([0.0, 1.0], s1, [0.0, 0.0], s2) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_refuses_mismatched_or_nonfinite_statistics():
    with pytest.raises(FIDError, match=r"do not match: mu \(3,\) and \(2,\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(FIDError, match="NaN or infinity"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))


# ---- preprocessing ---------------------------------------------------------------------------------------------

class DeviceRecorder(TorchDispatchMode):
    """The device of every tensor each aten op takes or returns, but for the host arrays as they come in: the
    tensors that wrap them (aten.lift_fresh) and the inputs of the copies made from them (aten._to_copy: only where a
    copy goes is recorded). Meta tensors hold no values, so a scalar read (`.item()`) from one answers 0.0 here: a
    function computed on device="meta" then runs to its end, and every tensor it made or used is seen (a meta kernel
    takes a CPU operand without complaint, so the inputs count too).

    This machine has no GPU, so "meta" stands for the CUDA device of a real run: a tensor left on the CPU there is a
    device-mismatch crash in every GAN run (scripts/gpu_check.sh runs the real CUDA path)."""

    def __init__(self):
        super().__init__()
        self.devices: set[torch.device] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
            return 0.0
        out = func(*args, **(kwargs or {}))
        if func is not torch.ops.aten.lift_fresh.default:
            seen = (out,) if func is torch.ops.aten._to_copy.default else (args, kwargs, out)
            self.devices |= {leaf.device for leaf in tree_leaves(seen) if isinstance(leaf, torch.Tensor)}
        return out


def test_frechet_distance_makes_every_tensor_on_the_requested_device():
    first = activation_statistics(_gaussian_features(np.random.default_rng(2), 40, 8, 0.0))
    second = activation_statistics(_gaussian_features(np.random.default_rng(3), 40, 8, 0.3))
    with DeviceRecorder() as recorder:
        frechet_distance(*first, *second, device="meta")
    assert recorder.devices == {torch.device("meta")}
    with DeviceRecorder() as recorder:  # the recorder itself: on the CPU it sees the CPU
        assert frechet_distance(*first, *second) == pytest.approx(calculate_frechet_distance(*first, *second))
    assert recorder.devices == {torch.device("cpu")}


def test_fid_from_images_computes_the_distance_on_the_features_device():
    """The eigendecompositions run where the Inception features were computed (a GPU in real runs)."""

    class MetaFeatures:  # what fid_from_images uses of InceptionFeatures: `device` ("meta") and `features(batch)`
        device = torch.device("meta")

        def features(self, batch: np.ndarray) -> np.ndarray:  # the batches are their features already
            return batch

    features = np.random.default_rng(4).random((9, 3))
    with DeviceRecorder() as recorder:
        fid.fid_from_images(MetaFeatures(), [features[:4], features[4:]], (np.zeros(3), np.eye(3)))
    assert recorder.devices == {torch.device("meta")}


def test_paper_preprocess_equals_the_png_round_trip(tmp_path):
    """save_image(normalize=True) per image to PNG, read back as pytorch-fid's ImagePathDataset + ToTensor does."""
    torch.manual_seed(0)
    images = torch.tanh(1.5 * torch.randn(24, 3, 64, 64)) * torch.rand(24, 1, 1, 1)
    images[0] = 0.3  # constant: span below 1e-5
    images[1] = images[1] * 1e-3  # a nearly flat image
    images[2].clamp_(-1, -0.5)
    read_back = []
    for i, image in enumerate(images):
        path = tmp_path / f"{i}.png"
        save_image(image, path, normalize=True)
        read_back.append(TF.ToTensor()(Image.open(path).convert("RGB")))
    assert torch.equal(paper_preprocess(images), torch.stack(read_back))


# ---- weights ---------------------------------------------------------------------------------------------------

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


# ---- real-statistics cache -------------------------------------------------------------------------------------

def test_cache_computes_once_keys_files_and_refuses_stale(tmp_path):
    cache = RealStatisticsCache(tmp_path / "stats")
    sha = "ab" * 32
    calls = []

    def compute():
        calls.append(1)
        return np.arange(64.0), np.eye(64)

    mu, sigma = cache.load_or_compute("cifar10-train", 50, 64, sha, "md5 manifest\nline 2", compute)
    again = cache.load_or_compute("cifar10-train", 50, 64, sha, "md5 manifest\nline 2", compute)
    assert len(calls) == 1 and np.array_equal(again[0], mu) and np.array_equal(again[1], sigma)
    path = cache.path("cifar10-train", 50, 64, sha)
    assert path.name == f"fid-real-cifar10-train-n50-d64-w{sha[:16]}.npz"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary files left
    cache.load_or_compute("cifar10-train", 60, 64, sha, "md5 manifest\nline 2", compute)  # another key, another file
    assert len(calls) == 2 and cache.path("cifar10-train", 60, 64, sha).is_file()

    with pytest.raises(FIDError) as error:
        cache.load_or_compute("cifar10-train", 50, 64, sha, "another dataset", compute)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"stale FID statistics {path}")
    assert f"delete {path}" in str(error.value) and len(calls) == 2  # never recomputed silently

    with pytest.raises(FIDError, match=r"compute\(\) for .* gave mu \(4,\) and sigma \(4, 4\), expected \(64,\)"):
        cache.load_or_compute("cifar10-train", 50, 64, "cd" * 32, "x", lambda: (np.zeros(4), np.eye(4)))
    with pytest.raises(FIDError, match="protocol name 'a/b'"):
        cache.path("a/b", 50, 64, sha)
