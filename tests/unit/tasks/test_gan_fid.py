"""tasks/gan_fid.py, the GAN task's FID (Table 4, PROTOCOL.md §3): how it keys its Inception (one per device, dims and
batch size, the weights fetched first), its real statistics (the cache of protocol `paper64`, keyed by the data's
fingerprint, beside the dataset of each source) and the fingerprint itself; and the number the task records against
pytorch-fid itself (issue 17, path 1): the statistics the GAN task computes in memory must equal what the reference
computed from files, the images written as PNGs the reference's way.

The reference saved each image alone with torchvision's `save_image(normalize=True)` and gave the folders to
pytorch-fid, which reads every PNG (`ImagePathDataset` + `ToTensor`), runs its own `InceptionV3` (`get_activations`)
and `calculate_frechet_distance` (scipy's sqrtm). Here that chain is run as written (tests/helpers.py), on the same
images, and GeneratorFid's real statistics and the `fid` of WassersteinGAN.evaluate must agree with it. The real
images follow the reference's own data path too: PIL `Resize(64)`, `ToTensor`, `Normalize(0.5, 0.5)`, nothing from
adala_bench. (metrics/test_fid_inception.py holds the features' own comparison with pytorch-fid.)

Inception runs on a random-weights file (conftest `random_home`), which pytorch-fid's loader reads as it would the
real one; nothing reaches the network.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as TF
from PIL import Image
from pytorch_fid.fid_score import calculate_frechet_distance

from adala_bench.data.cifar10 import Cifar10Arrays, cifar10_arrays
from adala_bench.metrics.fid import FIDError, InceptionFeatures, RealStatisticsCache
from adala_bench.settings import FidSettings
from adala_bench.tasks import gan_fid
from adala_bench.tasks.gan_fid import GeneratorFid, fid_cache_dir, inception_features, train_images_fingerprint
from adala_bench.tasks.generation import WassersteinGAN
from helpers import reference_pngs, reference_statistics

pytestmark = [pytest.mark.usefixtures("no_network"),
              pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")]

CPU = torch.device("cpu")

@pytest.fixture(autouse=True)
def torch_home(random_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


# ---- the GAN task's Inception, real statistics and cache ---------------------------------------------------------

class RecordingInception:
    """Stands in for InceptionFeatures in gan_fid: records the device, dims and batch size it would be built with
    (InceptionFeatures' own defaults for what is not passed), and builds nothing."""

    def __init__(self, *args, **kwargs):
        bound = inspect.signature(InceptionFeatures).bind(*args, **kwargs)
        bound.apply_defaults()
        self.device = torch.device(bound.arguments["device"])
        self.dims, self.batch_size = bound.arguments["dims"], bound.arguments["batch_size"]


def test_inception_features_builds_one_per_device_dims_and_batch_size(torch_home, monkeypatch):
    """A sweep's runs share one Inception per (weights, device, dims, batch size), built with exactly those."""
    monkeypatch.setattr(gan_fid, "InceptionFeatures", RecordingInception)
    monkeypatch.setattr(gan_fid, "_inception", {})
    cpu = torch.device("cpu")
    first = inception_features(cpu, 64, 50)
    assert inception_features(cpu, 64, 50) is first
    wanted = [(cpu, 64, 50), (torch.device("cuda"), 64, 50), (cpu, 192, 50), (cpu, 64, 7)]
    built = [inception_features(*key) for key in wanted]
    assert [(each.device, each.dims, each.batch_size) for each in built] == wanted
    assert len({id(each) for each in built}) == 4


def test_inception_features_fetches_missing_weights_first(tmp_path, monkeypatch):
    """With no weights file, the GAN task goes through the download (which fails offline, saying so)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FIDError, match=r"are not in .* and the download failed \(URLError"):
        inception_features(torch.device("cpu"), 64, 50)


def test_generator_fid_reads_real_statistics_keyed_by_protocol_and_data_fingerprint(torch_home, tmp_path):
    """GeneratorFid's real statistics are the cache file of protocol `paper64`, the image count, the dims, the
    weights and the data's fingerprint; the same cache with another data set's fingerprint is refused."""
    assert gan_fid.FID_PROTOCOL == "paper64"
    settings = FidSettings(dims=64, every=0, curve_samples=2, final_samples=2, real_images=None, batch_size=50)
    images = torch.zeros(4, 3, 64, 64, dtype=torch.uint8)
    sha = inception_features(torch.device("cpu"), 64, 50).weights_sha256
    cache = RealStatisticsCache(tmp_path)
    path = cache.path("paper64", 4, 64, sha)
    mu, sigma = np.arange(64.0), 2 * np.eye(64)
    cache.load_or_compute("paper64", 4, 64, sha, "cifar10-train-sha256:aaaa", lambda: (mu, sigma))

    meter = GeneratorFid(images, settings, device=torch.device("cpu"), cache_dir=tmp_path,
                         data_fingerprint="cifar10-train-sha256:aaaa")
    np.testing.assert_array_equal(meter.real_stats[0], mu)
    np.testing.assert_array_equal(meter.real_stats[1], sigma)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    with pytest.raises(FIDError, match=r"stale FID statistics .*\(fingerprint <sha256 \w+> != <sha256 \w+>\)"):
        GeneratorFid(images, settings, device=torch.device("cpu"), cache_dir=tmp_path,
                     data_fingerprint="cifar10-train-sha256:bbbb")


def test_fid_cache_dir_is_beside_the_dataset_of_each_source(tmp_path):
    """`<root>/fid-stats` for the real CIFAR-10, `<root>/synthetic/fid-stats` for the synthetic one."""
    assert fid_cache_dir(tmp_path, "real") == tmp_path / "fid-stats"
    assert fid_cache_dir(str(tmp_path), "synthetic") == tmp_path / "synthetic" / "fid-stats"


def test_train_images_fingerprint_covers_the_shape_as_well_as_the_bytes():
    """The same bytes as 2 images of 3x4x4 or 4 of 3x2x4 are different training sets."""
    pixels = torch.arange(96, dtype=torch.uint8)

    def arrays(shape):
        return Cifar10Arrays(pixels.reshape(shape), torch.zeros(shape[0], dtype=torch.int64),
                             pixels.reshape(shape), torch.zeros(shape[0], dtype=torch.int64), ("a",))

    first = train_images_fingerprint(arrays((2, 3, 4, 4)))
    assert first == train_images_fingerprint(arrays((2, 3, 4, 4)))
    assert re.fullmatch(r"cifar10-train-sha256:[0-9a-f]{64}", first)
    assert first != train_images_fingerprint(arrays((4, 3, 2, 4)))


# ---- the recorded FID against pytorch-fid's chain ----------------------------------------------------------------

def reference_real_images(train_images_uint8: torch.Tensor) -> torch.Tensor:
    """The reference's real data: PIL image, Resize(64), ToTensor, Normalize(0.5, 0.5) -> [-1, 1], one by one."""
    transform = TF.Compose([TF.Resize(64), TF.ToTensor(), TF.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    return torch.stack([transform(Image.fromarray(image.permute(1, 2, 0).numpy())) for image in train_images_uint8])


@pytest.fixture(scope="module")
def gan_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("independent_fid_data")
    return cifar10_arrays(root, "synthetic", 24, 5)


def test_the_gan_tasks_recorded_fid_equals_pytorch_fid_on_the_references_pngs(gan_data, tmp_path):
    """WassersteinGAN.evaluate's `fid` (the number in Table 4): its real statistics from the first `real_images`
    train images and its fakes from the generator in eval mode, against pytorch-fid run on both sets as PNGs."""
    real_images, fakes = 16, 16
    settings = FidSettings(dims=64, every=0, curve_samples=2, final_samples=fakes, real_images=real_images,
                           batch_size=50)
    torch.manual_seed(0)
    task = WassersteinGAN(gan_data, kind="wgan_gp", width=0.0625, batch_size=8, epochs=1, seed=3, device=CPU,
                          data_fingerprint=train_images_fingerprint(gan_data), fid_cache_dir=tmp_path / "stats",
                          fid=settings)
    captured = []
    hook = task.generator.register_forward_hook(
        lambda module, args, output: captured.append((module.training, output.detach().clone())))
    try:
        row = task.evaluate(0)  # epoch 0 is the last of 1: the protocol's final FID
    finally:
        hook.remove()
    assert set(row) == {"fid", "fid_real_weights"} and row["fid_real_weights"] == 0.0
    assert [training for training, _ in captured] == [False]  # the fakes come from the generator in eval mode
    generated = torch.cat([output for _, output in captured])
    assert generated.shape == (fakes, 3, 64, 64)

    real_paths = reference_pngs(reference_real_images(gan_data.train_images[:real_images]), tmp_path / "real")
    fake_paths = reference_pngs(generated, tmp_path / "fake")
    real_mu, real_sigma = reference_statistics(real_paths, 64)
    fake_mu, fake_sigma = reference_statistics(fake_paths, 64)
    np.testing.assert_allclose(task.fid_meter.real_stats[0], real_mu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(task.fid_meter.real_stats[1], real_sigma, rtol=1e-4, atol=1e-9)
    expected = calculate_frechet_distance(fake_mu, fake_sigma, real_mu, real_sigma)
    assert expected > 1e-3
    assert row["fid"] == pytest.approx(expected, rel=1e-5)
