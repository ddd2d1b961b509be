"""Table 4's FID against pytorch-fid itself (issue 17, path 1): the features and the statistics the GAN task computes in
memory must equal what the reference computed from files, the images written as PNGs the reference's way.

The reference saved each image alone with torchvision's `save_image(normalize=True)` and gave the folders to
pytorch-fid, which reads every PNG (`ImagePathDataset` + `ToTensor`), runs its own `InceptionV3` (`get_activations`)
and `calculate_frechet_distance` (scipy's sqrtm). Here that chain is run as written, on the same images, and the
numbers the task records (InceptionFeatures.features on paper_preprocess, GeneratorFid's real statistics and the
`fid` of WassersteinGAN.evaluate) must agree with it. The real images follow the reference's own data path too:
PIL `Resize(64)`, `ToTensor`, `Normalize(0.5, 0.5)`, nothing from adala_bench.

Inception runs on a random-weights file (conftest `random_home`), which pytorch-fid's loader reads as it would the
real one; nothing reaches the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as TF
from PIL import Image
from pytorch_fid.fid_score import calculate_frechet_distance, get_activations
from pytorch_fid.inception import InceptionV3
from torchvision.utils import save_image

from adala_bench.data.cifar10 import cifar10_arrays
from adala_bench.metrics.fid import InceptionFeatures, activation_statistics, fid_from_images, paper_preprocess
from adala_bench.settings import FidSettings
from adala_bench.tasks.gan_fid import train_images_fingerprint
from adala_bench.tasks.generation import WassersteinGAN

pytestmark = [pytest.mark.usefixtures("no_network"),
              pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")]

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def torch_home(random_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


# ---- the reference's chain, written out --------------------------------------------------------------------------

def reference_pngs(images: torch.Tensor, folder: Path) -> list[str]:
    """Each [-1, 1] image saved alone with save_image(normalize=True), as the reference wrote its samples."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{index:05d}.png"
        save_image(image, path, normalize=True)
        paths.append(str(path))
    return paths


def reference_activations(paths: list[str], dims: int, batch_size: int = 50) -> np.ndarray:
    """pytorch-fid's get_activations over PNG files, with pytorch-fid's own InceptionV3 (weights from TORCH_HOME)."""
    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()
    return get_activations(paths, model, batch_size=batch_size, dims=dims, device="cpu", num_workers=0)


def reference_statistics(paths: list[str], dims: int) -> tuple[np.ndarray, np.ndarray]:
    """As pytorch-fid's calculate_activation_statistics: the mean and np.cov(rowvar=False) of the activations."""
    activations = reference_activations(paths, dims)
    return np.mean(activations, axis=0), np.cov(activations, rowvar=False)


def reference_real_images(train_images_uint8: torch.Tensor) -> torch.Tensor:
    """The reference's real data: PIL image, Resize(64), ToTensor, Normalize(0.5, 0.5) -> [-1, 1], one by one."""
    transform = TF.Compose([TF.Resize(64), TF.ToTensor(), TF.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    return torch.stack([transform(Image.fromarray(image.permute(1, 2, 0).numpy())) for image in train_images_uint8])


def generator_like(count: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """[-1, 1] images with per-image ranges that differ (as a generator's tanh outputs do), some never reaching ±1."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.tanh(1.5 * torch.randn(count, 3, size, size, generator=generator))
    return images * (0.3 + 0.7 * torch.rand(count, 1, 1, 1, generator=generator))


# ---- the tests ---------------------------------------------------------------------------------------------------

def test_inception_features_equal_pytorch_fids_activations_on_the_reference_pngs(tmp_path):
    """The protocol's pool3 features (2048-d): the in-memory path (paper_preprocess, then InceptionFeatures.features)
    against get_activations on PNG files written by save_image(normalize=True)."""
    images = generator_like(5)
    expected = reference_activations(reference_pngs(images, tmp_path / "pngs"), dims=2048)
    got = InceptionFeatures("cpu", dims=2048, batch_size=50).features(paper_preprocess(images))
    assert got.shape == expected.shape == (5, 2048)
    assert np.abs(expected).max() > 0.01  # the random network's features are not all ~0
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_fid_of_two_image_sets_equals_pytorch_fids(tmp_path):
    """fid_from_images (64-d features, batches of 7 so batching is exercised) against calculate_frechet_distance on
    pytorch-fid's statistics of the same images as PNGs."""
    first = generator_like(40, seed=1)
    second = torch.nn.functional.interpolate(generator_like(40, size=8, seed=2), size=64)  # blocky: another set
    first_paths = reference_pngs(first, tmp_path / "first")
    second_paths = reference_pngs(second, tmp_path / "second")
    expected = calculate_frechet_distance(*reference_statistics(first_paths, 64),
                                          *reference_statistics(second_paths, 64))
    features = InceptionFeatures("cpu", dims=64, batch_size=7)
    second_stats = activation_statistics(features.features(paper_preprocess(second)))
    got = fid_from_images(features, [paper_preprocess(first[:13]), paper_preprocess(first[13:])], second_stats)
    assert expected > 0.01  # two different sets: a real distance, not ~0
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope="module")
def gan_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("independent_fid_data")
    return cifar10_arrays(root, "synthetic", 48, 5)


def test_the_gan_tasks_recorded_fid_equals_pytorch_fid_on_the_references_pngs(gan_data, tmp_path):
    """WassersteinGAN.evaluate's `fid` (the number in Table 4): its real statistics from the first `real_images`
    train images and its fakes from the generator in eval mode, against pytorch-fid run on both sets as PNGs."""
    real_images, fakes = 40, 40
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
