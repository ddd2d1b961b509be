"""The GAN task's FID as PROTOCOL.md §3 measures it: the generator's fakes (in eval mode) against the statistics of
the 64×64 training images, both through the reference's per-image PNG round trip (paper_preprocess), into
pytorch-fid's Inception. The real statistics are computed once per dataset and cached beside it.

Every FID carries whether the Inception weights were pytorch-fid's real ones (`real_weights`): the random weights of
tests and the demo give a number that is not a real FID, and the report flags it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from adala_bench.data.cifar10 import Cifar10Arrays, dataset_dir
from adala_bench.data.gan_images import to_unit_range
from adala_bench.metrics.fid import (REAL_LABEL, InceptionFeatures, RealStatisticsCache, activation_statistics,
                                     ensure_inception_weights, frechet_distance, paper_preprocess, weights_sha256)
from adala_bench.models.dcgan import LATENT
from adala_bench.seeding import FID_STREAM, derived_seed
from adala_bench.settings import FidSettings

# The real-statistics cache's protocol name: train images, Resize(64) as the reference, [-1, 1], per-image PNG round
# trip.
FID_PROTOCOL = "paper64"
GENERATE_CHUNK = 500  # fakes generated at once for an FID (Inception then batches them by FidSettings.batch_size)


class GeneratorFid:
    """FID of a generator's fakes against the real images given at construction.

    The weights load first, so a missing file fails here, in one line, before anything slow; the real statistics
    come from the cache (`cache_dir`, keyed by the data's fingerprint) or are computed once and stored there.
    """

    def __init__(self, images: torch.Tensor, settings: FidSettings, *, device: torch.device, cache_dir: str | Path,
                 data_fingerprint: str):
        """`images`: uint8 [N, 3, 64, 64] training images on the device; the first `settings.real_images` (all by
        default) make the real statistics."""
        self.settings, self.device = settings, device
        self.features = inception_features(device, settings.dims, settings.batch_size)
        count = settings.real_images or len(images)
        self.real_stats = RealStatisticsCache(cache_dir).load_or_compute(
            FID_PROTOCOL, count, settings.dims, self.features.weights_sha256, fingerprint=data_fingerprint,
            compute=lambda: self._statistics(to_unit_range(images[start:min(start + GENERATE_CHUNK, count)])
                                             for start in range(0, count, GENERATE_CHUNK)))

    @property
    def real_weights(self) -> bool:
        """Whether the Inception weights are pytorch-fid's own (otherwise the value is not a real FID)."""
        return self.features.weights_label == REAL_LABEL

    @torch.no_grad()
    def __call__(self, generator: torch.nn.Module, samples: int, seed: int, epoch: int) -> float:
        """FID of `samples` fakes of `generator` in eval mode, z drawn from (seed, epoch): a resume repeats it."""
        noise = torch.randn(samples, LATENT, 1, 1,
                            generator=torch.Generator().manual_seed(derived_seed(seed, epoch, FID_STREAM)))
        generator.eval()
        try:
            mu, sigma = self._statistics(generator(noise[start:start + GENERATE_CHUNK].to(self.device))
                                         for start in range(0, samples, GENERATE_CHUNK))
        finally:
            generator.train()
        return frechet_distance(mu, sigma, *self.real_stats, device=self.features.device)

    def _statistics(self, batches) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of [-1, 1] image batches through the PNG round trip, in fp32 as the real statistics were
        (InceptionFeatures computes in fp32 whatever autocast the trainer evaluates under)."""
        features = [self.features.features(paper_preprocess(images.float())) for images in batches]
        return activation_statistics(np.concatenate(features))


_inception: dict[tuple, InceptionFeatures] = {}


def inception_features(device: torch.device, dims: int, batch_size: int) -> InceptionFeatures:
    """pytorch-fid's Inception for this weights file, device, dims and batch, built once per process (a sweep's runs
    share it). FIDError in one line when the file is missing and cannot be downloaded, or does not load.

    Building it initialises torchvision's Inception randomly before the weights load: that draws from the global RNG,
    which is forked here, so the GAN's initial weights do not depend on whether this process built one before.
    """
    path = ensure_inception_weights()
    key = (str(path), weights_sha256(path), str(device), dims, batch_size)
    if key not in _inception:
        with torch.random.fork_rng(devices=[]):
            _inception[key] = InceptionFeatures(device, dims=dims, batch_size=batch_size)
    return _inception[key]


def train_images_fingerprint(data: Cifar10Arrays) -> str:
    """A fingerprint of the training images (for the real-statistics cache): sha256 of their bytes and shape."""
    images = data.train_images.contiguous().cpu()
    digest = hashlib.sha256(repr(tuple(images.shape)).encode())
    digest.update(images.numpy().tobytes())
    return f"cifar10-train-sha256:{digest.hexdigest()}"


def fid_cache_dir(root: str | Path, source: str) -> Path:
    """Where the real-set FID statistics of a dataset are cached: `<root>/fid-stats` for the real CIFAR-10,
    `<root>/synthetic/fid-stats` for the synthetic one (whose train images depend only on their count)."""
    return dataset_dir(root, source).parent / "fid-stats"
