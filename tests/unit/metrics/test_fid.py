"""metrics/fid.py's arithmetic (PROTOCOL.md §3): the activation statistics, the Fréchet distance against pytorch-fid's
(full-rank and singular covariances), closed forms, every shape and device check, the distance of images' features
computed on the features' device, and the paper's PNG preprocessing against the round trip through files.
No Inception runs here (test_fid_inception.py: the network, its weights and its features against pytorch-fid's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as TF
from PIL import Image
from pytorch_fid.fid_score import calculate_frechet_distance
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torchvision.utils import save_image

from adala_bench.metrics import fid
from adala_bench.metrics.fid import FIDError, activation_statistics, frechet_distance, paper_preprocess

# pytorch-fid's own sqrtm call, which the comparisons run.
pytestmark = pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")


def _gaussian_features(rng, n: int, dims: int, shift: float) -> np.ndarray:
    mixing = np.eye(dims) + 0.1 * rng.standard_normal((dims, dims))
    return np.abs(rng.standard_normal((n, dims)) @ mixing + shift)


# ---- activation statistics ---------------------------------------------------------------------------------------

def test_activation_statistics_of_float32_features_are_those_of_their_float64_values():
    """The mean and covariance are taken in float64 even when the features come in float32 (a float32 mean of large
    activations is off in its last digits)."""
    features = (1000 + np.random.default_rng(0).standard_normal((500, 8))).astype(np.float32)
    exact = features.astype(np.float64)
    mu, sigma = activation_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_array_equal(mu, exact.mean(axis=0))
    np.testing.assert_array_equal(sigma, np.cov(exact, rowvar=False))
    assert not np.array_equal(features.mean(axis=0), mu)  # the float32 mean differs: the test can tell them apart


def test_activation_statistics_accept_two_rows_and_refuse_fewer_or_other_shapes():
    """N = 2 is the smallest set with an unbiased covariance; one row, a 1-D or a 3-D array is refused."""
    mu, sigma = activation_statistics([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_array_equal(mu, [2.0, 4.0])
    np.testing.assert_array_equal(sigma, [[2.0, 4.0], [4.0, 8.0]])  # deviations (-1, -2), (1, 2), divided by N - 1
    for bad in (np.ones((1, 4)), np.arange(10.0), np.ones((4, 2, 2))):
        with pytest.raises(FIDError, match=r"N x dims array with N >= 2, got shape"):
            activation_statistics(bad)


# ---- Fréchet distance --------------------------------------------------------------------------------------------

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


def test_frechet_distance_takes_statistics_of_any_dtype_as_float64():
    """float32 statistics give exactly the distance of their float64 values, not a float32 or mixed computation,
    whether all four or any one of them comes in float32."""
    rng = np.random.default_rng(3)
    mixing = rng.standard_normal((5, 5))
    stats = [rng.standard_normal(5), mixing @ mixing.T, rng.standard_normal(5), np.eye(5) + 0.1 * mixing @ mixing.T]
    as32 = [array.astype(np.float32) for array in stats]
    expected = frechet_distance(*[array.astype(np.float64) for array in as32])
    assert expected > 1.0
    assert frechet_distance(*as32) == expected
    for index in range(4):  # each statistic alone in float32
        mixed = [as32[i] if i == index else as32[i].astype(np.float64) for i in range(4)]
        assert frechet_distance(*mixed) == expected


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="long double is float64 here")
def test_frechet_distance_rounds_extended_precision_means_to_float64():
    """A mean in long double is rounded to float64 first: a difference below float64's resolution counts as 0."""
    near_one = np.ones(1, np.longdouble) + np.longdouble(2) ** -60
    assert near_one[0] != 1 and np.float64(near_one[0]) == 1
    zero = np.zeros((1, 1))
    assert frechet_distance(near_one, zero, np.ones(1), zero) == 0.0
    assert frechet_distance(np.ones(1), zero, near_one, zero) == 0.0


def test_frechet_distance_refuses_each_mismatched_statistic_on_its_own():
    """One wrong shape among four statistics is enough for FIDError, including a mean that would broadcast."""
    good = [np.zeros(3), np.eye(3), np.zeros(3), np.eye(3)]
    assert frechet_distance(*good) == 0.0
    wrong = {0: np.zeros((3, 1)), 1: np.eye(2), 2: np.zeros(1), 3: np.eye(2)}  # mu1's own length sets dims
    for index, bad in wrong.items():
        statistics = [bad if i == index else good[i] for i in range(4)]
        with pytest.raises(FIDError, match="FID statistics do not match"):
            frechet_distance(*statistics)


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


# ---- the FID of images' features ---------------------------------------------------------------------------------

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


class FixedFeatures:
    """What fid_from_images uses of InceptionFeatures: `features(batch)` (here the flattened batch) and `device`."""

    device = torch.device("cpu")

    def features(self, images: torch.Tensor) -> np.ndarray:
        return images.flatten(1).double().numpy()


def test_fid_from_images_is_the_distance_of_all_batches_on_the_features_device(monkeypatch):
    """The eigendecompositions run where the Inception features were computed (`features.device`, a GPU in real
    runs), and the value is the distance of the concatenated batches' statistics."""
    seen = []
    real_distance = fid.frechet_distance

    def spy(*args, device=None):
        seen.append(device)
        return real_distance(*args, device=device)

    monkeypatch.setattr(fid, "frechet_distance", spy)
    images = torch.rand(9, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    real = (np.zeros(2), np.eye(2))
    got = fid.fid_from_images(FixedFeatures(), [images[:4], images[4:]], real)
    assert seen == [torch.device("cpu")]
    assert got == real_distance(*activation_statistics(images.flatten(1).double().numpy()), *real)


# ---- preprocessing -----------------------------------------------------------------------------------------------

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


def test_paper_preprocess_refuses_a_3d_float_tensor_and_a_4d_integer_tensor():
    """Both conditions hold on their own: a single image without its batch axis, and uint8 images (already 8 bits,
    which the [-1, 1] round trip would stretch into nonsense)."""
    assert paper_preprocess(torch.zeros(2, 3, 4, 4)).shape == (2, 3, 4, 4)
    with pytest.raises(FIDError, match=r"float tensor N x C x H x W, got torch.float32 \(3, 4, 4\)"):
        paper_preprocess(torch.zeros(3, 4, 4))
    with pytest.raises(FIDError, match=r"float tensor N x C x H x W, got torch.uint8 \(2, 3, 4, 4\)"):
        paper_preprocess(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
