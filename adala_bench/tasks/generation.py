"""CIFAR-10 generation with WGAN and WGAN-GP as the reference ran them (PROTOCOL.md §3; Table 4).

Data: the 50k training images, resized 32→64 once on the training device exactly as torchvision's `Resize(64)` on a
PIL image followed by `ToTensor` (PIL's bilinear filter, which rounds to 8 bits after its horizontal and after its
vertical pass), then scaled to [-1, 1]; no augmentation. Each epoch draws, on the CPU from a generator seeded by
(seed, epoch) alone, the permutation, the latent z ~ N(0, I) (N, 100, 1, 1) of every image, and WGAN-GP's
interpolation weights; so an epoch's batches (64, the short last one kept) are the same on any device and on resume.

Steps, as the reference's loop: every batch `fake = G(z)` once, in train mode (G's BatchNorm statistics move once);
a critic step on (real, fake.detach()) with real and fake in separate forward passes,
d_loss = −mean(D(real)) + mean(D(fake)) (+ 10 · gradient penalty for WGAN-GP); after it WGAN clamps every critic
parameter to ±0.01; on every 5th batch (index % 5 == 0) a generator step on −mean(D(fake)) through the same fake.

AdaLA's look-ahead (ADALA.md): the critic's reuses the step's real batch, fakes and interpolation weights (G fixed);
the generator's makes G(z) again at its tentative parameters, with the step's z for `same` and the next batch's z for
`next`. The trainer restores every BatchNorm buffer of both networks after a look-ahead pass.

Metrics: per-epoch means over the steps of d_loss, wasserstein_estimate (mean D(real) − mean D(fake)), gp (the
penalty before ×10, WGAN-GP) and g_loss. FID (generator in eval mode, as the reference's `netG.eval()`) against the
statistics of the 64×64 training images, both through the reference's per-image PNG round trip (paper_preprocess):
`fid` after the last epoch with `final_samples` fakes (the protocol's value, Table 4), `fid_curve` with
`curve_samples` after every `every`-th other epoch; each row with an FID carries `fid_real_weights`: 1 for pytorch-fid's weights, 0 for anything else (the random
weights of tests and the demo: not a real FID; the report flags such cells).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.utils import save_image

from adala_bench.data import batch_span
from adala_bench.data.augment import epoch_seed
from adala_bench.data.cifar10 import Cifar10Arrays, dataset_dir, ensure_synthetic_cifar10, load_cifar10
from adala_bench.metrics.fid import (DIMS, FIDError, InceptionFeatures, RealStatisticsCache, activation_statistics,
                                     REAL_LABEL, ensure_inception_weights, frechet_distance, paper_preprocess,
                                     weights_sha256)
from adala_bench.models.dcgan import CRITIC_KINDS, LATENT, Critic, Generator, clamp_, gradient_penalty
from adala_bench.trainer import Loss, Move, Player

IMAGE_SIZE = 64  # Resize(64)
N_CRITIC = 5  # --n_critic: a generator step when batch index % 5 == 0
CLIP_VALUE = 0.01  # --clip_value (WGAN)
GP_WEIGHT = 10.0  # λ (WGAN-GP)
# The real-statistics cache's protocol name: train images, Resize(64) as above, [-1, 1], per-image PNG round trip.
FID_PROTOCOL = "paper64"
SAMPLE_GRID = 64  # fixed-noise images in each samples/*.png (8 x 8)
GENERATE_CHUNK = 500  # fakes generated at once for an FID (Inception then batches them by FidSettings.batch_size)
# Independent random streams derived from the seed besides the training batches' epoch_seed(seed, epoch).
FID_STREAM, SAMPLES_STREAM = 1, 2


@dataclass(frozen=True)
class FidSettings:
    """How FIDs are measured. The defaults are the protocol's final FID (64,000 fakes against all train images)."""

    dims: int = 2048  # Inception pool3
    every: int = 0  # fid_curve after every `every`-th epoch (epoch + 1 divisible by it); 0: only the final fid
    curve_samples: int = 5000
    final_samples: int = 64000
    real_images: int | None = None  # the first N train images; None: all of them
    batch_size: int = 50  # Inception's batch

    def __post_init__(self) -> None:
        if self.dims not in DIMS:
            raise FIDError(f"fid.dims={self.dims!r} is not allowed; allowed: {', '.join(map(str, DIMS))}")
        if not _is_int(self.every) or self.every < 0:
            raise FIDError(f"fid.every={self.every!r} is not allowed; it must be an integer ≥ 0 (0: final FID only)")
        for key in ("curve_samples", "final_samples"):
            if not _is_int(getattr(self, key)) or getattr(self, key) < 2:
                raise FIDError(f"fid.{key}={getattr(self, key)!r} is not allowed; it must be an integer ≥ 2")
        if self.real_images is not None and (not _is_int(self.real_images) or self.real_images < 2):
            raise FIDError(f"fid.real_images={self.real_images!r} is not allowed; it must be an integer ≥ 2 or null")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise FIDError(f"fid.batch_size={self.batch_size!r} is not allowed; it must be a positive integer")


@dataclass(frozen=True)
class GanBatch:
    """One training batch: real images in [-1, 1], their latent z, WGAN-GP's interpolation weights."""

    real: torch.Tensor  # [B, 3, 64, 64]
    z: torch.Tensor  # [B, 100, 1, 1]
    alpha: torch.Tensor  # [B]


@dataclass(frozen=True)
class CriticBatch:
    real: torch.Tensor
    fake: torch.Tensor  # G(z), detached
    alpha: torch.Tensor


@dataclass(frozen=True)
class GeneratorBatch:
    z: torch.Tensor
    fake: torch.Tensor | None = None  # G(z) with its graph (the real step); None: make G(z) at the current parameters


class GanEpoch(Sequence):
    """One epoch's batches, made when asked for (random access, so the trainer can look ahead)."""

    def __init__(self, images: torch.Tensor, order: torch.Tensor, noise: torch.Tensor, alphas: torch.Tensor,
                 batch_size: int):
        self.images, self.order, self.z, self.alphas, self.batch_size = images, order, noise, alphas, batch_size

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def _span(self, index: int) -> slice:
        return batch_span(index, len(self), self.batch_size)

    def __getitem__(self, index: int) -> GanBatch:
        span = self._span(index)
        real = to_unit_range(self.images.index_select(0, self.order[span]))
        return GanBatch(real, self.z[span], self.alphas[span])

    def noise(self, index: int) -> torch.Tensor:
        """Batch `index`'s z alone (a generator look-ahead on `next` needs no images)."""
        return self.z[self._span(index)]


class WassersteinGAN:
    """Two players, "critic" (WGAN: clamped after each of its steps) and "generator"; stateless batches."""

    def __init__(self, data: Cifar10Arrays, *, kind: str, width: float, batch_size: int, epochs: int, seed: int,
                 device: torch.device | str, data_fingerprint: str, fid_cache_dir: str | Path, fid: FidSettings):
        if kind not in CRITIC_KINDS:
            raise ValueError(f"task.kind={kind!r} is not allowed; allowed: {', '.join(CRITIC_KINDS)}")
        for key, value, least in (("batch_size", batch_size, 1), ("epochs", epochs, 1), ("seed", seed, 0)):
            if not _is_int(value) or value < least:
                raise ValueError(f"{key}={value!r} is not allowed; it must be an integer ≥ {least}")
        count = len(data.train_images)
        if fid.real_images is not None and fid.real_images > count:
            raise FIDError(f"fid.real_images={fid.real_images} is more than the {count} training images")
        self.kind, self.batch_size, self.epochs, self.seed, self.fid = kind, batch_size, epochs, seed, fid
        self.device = torch.device(device)

        # The weights first: a missing file fails here, in one line, before anything slow.
        self.features = inception_features(self.device, fid.dims, fid.batch_size)
        self.images = resize_like_pil(data.train_images.to(self.device), IMAGE_SIZE)
        real_count = fid.real_images or count
        self.real_stats = RealStatisticsCache(fid_cache_dir).load_or_compute(
            FID_PROTOCOL, real_count, fid.dims, self.features.weights_sha256, fingerprint=data_fingerprint,
            compute=lambda: self._real_statistics(real_count))

        # In the reference's order (netG, then netD), each initialised as it is built: one seed, the same weights.
        self.generator = Generator(width=width).to(self.device)
        self.critic = Critic(kind, width=width).to(self.device)
        clamp = (lambda: clamp_(self.critic, CLIP_VALUE)) if kind == "wgan" else None
        self.players = {"critic": Player(self.critic, after_step=clamp), "generator": Player(self.generator)}
        generator = torch.Generator().manual_seed(_derived_seed(seed, 0, SAMPLES_STREAM))
        self.fixed_noise = torch.randn(SAMPLE_GRID, LATENT, 1, 1, generator=generator).to(self.device)

    # -- training ------------------------------------------------------------------------------------------------
    def train_batches(self, epoch: int) -> GanEpoch:
        count = len(self.images)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(count, generator=generator)
        noise = torch.randn(count, LATENT, 1, 1, generator=generator)
        alphas = torch.rand(count, generator=generator)
        return GanEpoch(self.images, order.to(self.device), noise.to(self.device), alphas.to(self.device),
                        self.batch_size)

    def moves(self, batches: GanEpoch, index: int) -> list[Move]:
        batch = batches[index]
        generator_step = index % N_CRITIC == 0
        if generator_step:  # the generator step back-propagates through this G(z): keep its graph
            with buffers_outside_the_graph(self.generator):
                fake = self.generator(batch.z)
        else:
            with torch.no_grad():
                fake = self.generator(batch.z)
        critic = CriticBatch(batch.real, fake.detach(), batch.alpha)
        moves = [Move("critic", critic, next_batch=critic)]  # G fixed: the look-ahead reuses real and fakes
        if generator_step:
            following = batches.noise((index + 1) % len(batches))
            moves.append(Move("generator", GeneratorBatch(batch.z, fake), next_batch=GeneratorBatch(following),
                              same_batch=GeneratorBatch(batch.z)))
        return moves

    def initial_carry(self) -> None:
        return None

    def loss(self, player: str, batch: CriticBatch | GeneratorBatch, carry: None) -> Loss:
        if player == "critic":
            real_mean = self.critic(batch.real).mean()
            fake_mean = self.critic(batch.fake).mean()
            value = -real_mean + fake_mean
            sums = {"wasserstein": (real_mean - fake_mean).detach()}
            if self.kind == "wgan_gp":
                penalty = gradient_penalty(self.critic, batch.real, batch.fake, alpha=batch.alpha)
                value = value + GP_WEIGHT * penalty
                sums["gp"] = penalty.detach()
            sums.update(d_loss=value.detach(), d_steps=torch.ones((), device=value.device))
            return Loss(value, sums)
        if player == "generator":
            fake = batch.fake if batch.fake is not None else self.generator(batch.z)
            value = -self.critic(fake).mean()
            return Loss(value, {"g_loss": value.detach(), "g_steps": torch.ones((), device=value.device)})
        raise ValueError(f"unknown player {player!r}; the players are critic and generator")

    def summarize_train(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        d_steps, g_steps = sums["d_steps"].item(), sums["g_steps"].item()
        metrics = {"d_loss": sums["d_loss"].item() / d_steps, "g_loss": sums["g_loss"].item() / g_steps,
                   "wasserstein_estimate": sums["wasserstein"].item() / d_steps}
        if "gp" in sums:
            metrics["gp"] = sums["gp"].item() / d_steps
        return metrics

    # -- evaluation ----------------------------------------------------------------------------------------------
    def fid_epoch(self, epoch: int) -> tuple[str, int] | None:
        """(metrics key, fakes) of the FID measured after `epoch`, or None."""
        if epoch == self.epochs - 1:
            return "fid", self.fid.final_samples
        if self.fid.every and (epoch + 1) % self.fid.every == 0:
            return "fid_curve", self.fid.curve_samples
        return None

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, Any]:
        which = self.fid_epoch(epoch)
        if which is None:
            return {}
        key, samples = which
        real = float(self.features.weights_label == REAL_LABEL)  # a number, like every other metrics value
        return {key: self.generator_fid(samples, epoch), "fid_real_weights": real}

    @torch.no_grad()
    def generator_fid(self, samples: int, epoch: int) -> float:
        """FID of `samples` fakes of the generator in eval mode, z drawn from (seed, epoch): a resume repeats it."""
        generator = torch.Generator().manual_seed(_derived_seed(self.seed, epoch, FID_STREAM))
        noise = torch.randn(samples, LATENT, 1, 1, generator=generator)
        self.generator.eval()
        try:
            features = [self._features(self.generator(noise[start:start + GENERATE_CHUNK].to(self.device)))
                        for start in range(0, samples, GENERATE_CHUNK)]
        finally:
            self.generator.train()
        mu, sigma = activation_statistics(np.concatenate(features))
        return frechet_distance(mu, sigma, *self.real_stats, device=self.features.device)

    @torch.no_grad()
    def artifacts(self, epoch: int) -> dict[str, bytes]:
        """The fixed-noise 8 x 8 grid of the generator in eval mode: samples/epoch_XXX.png, and samples/final.png."""
        self.generator.eval()
        try:
            images = self.generator(self.fixed_noise).float().cpu()
        finally:
            self.generator.train()
        buffer = io.BytesIO()
        save_image(images, buffer, format="png", nrow=8, normalize=True)
        files = {f"samples/epoch_{epoch:03d}.png": buffer.getvalue()}
        if epoch == self.epochs - 1:
            files["samples/final.png"] = files[f"samples/epoch_{epoch:03d}.png"]
        return files

    def _features(self, images: torch.Tensor) -> np.ndarray:
        """Inception features of [-1, 1] images through the reference's PNG round trip, always in fp32 (the real
        statistics were), whatever autocast the trainer evaluates under."""
        with torch.autocast(self.device.type, enabled=False):
            return self.features.features(paper_preprocess(images.float()))

    def _real_statistics(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        features = [self._features(to_unit_range(self.images[start:min(start + GENERATE_CHUNK, count)]))
                    for start in range(0, count, GENERATE_CHUNK)]
        return activation_statistics(np.concatenate(features))


# ---- helpers ---------------------------------------------------------------------------------------------------

def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] float32 with the operations of ToTensor (x/255) then Normalize(0.5, 0.5) ((x − 0.5)/0.5)."""
    return images_uint8.float().div_(255).sub_(0.5).div_(0.5)


def resize_like_pil(images: torch.Tensor, size: int, chunk: int = 5000) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, size, size], equal to PIL's bilinear `resize` (torchvision's Resize on a PIL
    image) for upsampling square images.

    For upsampling, PIL's bilinear filter has support 1 and pixel centres at +0.5, the same weights as
    F.interpolate(bilinear, align_corners=False); PIL applies it as two 8-bit passes, horizontal then vertical, each
    rounded half up (its fixed-point weights, here multiples of 1/4, are exact). So: interpolate the width, round,
    interpolate the height, round. Every value is exact in float32, so the result is the same on any device.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    height, width = images.shape[2:]
    if height != width or size < height:
        raise ValueError(f"only upsampling square images is supported, got {height}x{width} -> {size}x{size}")
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8, device=images.device)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].float()
        for shape in ((height, size), (size, size)):  # the horizontal pass, then the vertical one
            x = F.interpolate(x, size=shape, mode="bilinear", align_corners=False).add_(0.5).floor_().clamp_(0, 255)
        out[start:start + chunk] = x.to(torch.uint8)
    return out


@contextmanager
def buffers_outside_the_graph(module: torch.nn.Module) -> Iterator[None]:
    """A train-mode forward whose graph survives in-place writes to the module's buffers.

    The trainer puts every buffer back after a look-ahead pass (`buffer.copy_`), which bumps the buffers' version
    counters; a graph that saved a BatchNorm's running statistics (autograd saves them, although the training-mode
    backward does not read them) then refuses to back-propagate. Here the forward updates clones, whose new values
    are copied into the module's own buffers afterwards: the buffers change exactly as in a plain forward, and the
    graph holds only the clones.
    """
    swapped = []
    for submodule in module.modules():
        for name, buffer in submodule._buffers.items():
            if buffer is not None:
                swapped.append((submodule, name, buffer))
                submodule._buffers[name] = buffer.clone()
    try:
        yield
    finally:
        with torch.no_grad():
            for submodule, name, buffer in swapped:
                buffer.copy_(submodule._buffers[name])
                submodule._buffers[name] = buffer


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


def gan_data(root: str | Path, source: str, n_train: int, n_test: int) -> Cifar10Arrays:
    """The real dataset, or the synthetic one (written once with these sizes) when the user chose it, never as a
    fallback."""
    if source == "synthetic":
        ensure_synthetic_cifar10(root, n_train=n_train, n_test=n_test)
    return load_cifar10(root, source=source)


def _derived_seed(*words: int) -> int:
    """A 63-bit generator seed from integers, mixed as epoch_seed mixes (seed, epoch)."""
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
