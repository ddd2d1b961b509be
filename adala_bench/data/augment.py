"""CIFAR-10 batches made on the training device: random crop with zero padding, horizontal flip, normalisation.

As in KellerJordan/airbench, the whole uint8 dataset sits on the device and each batch is augmented with a few
batched tensor ops, so there is no loader process and no per-image Python. The randomness of an epoch (order,
crop offsets, flips) is drawn on the CPU from a generator seeded by (seed, epoch) alone: the same run on CPU or
GPU, or resumed at any epoch, sees the same batches without any saved loader state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from adala_bench.data import batch_span
from adala_bench.seeding import epoch_seed

# The reference's Normalize constants (AdaBelief's classification_cifar10/main.py).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
PADDING = 4  # RandomCrop(32, padding=4)


def random_crop_flip(images: torch.Tensor, offsets_y: torch.Tensor, offsets_x: torch.Tensor, flips: torch.Tensor,
                     padding: int = PADDING) -> torch.Tensor:
    """Crop each image of [B, C, H, W] from its zero-padded copy at (offsets_y, offsets_x), then mirror where `flips`.

    Offsets must lie in 0..2*padding (not checked: that would cost a device sync); offset `padding` leaves the image
    in place. Equals torchvision's pad(padding) -> crop(top=offset_y, left=offset_x, H, W) -> hflip-if-flip.
    """
    batch, channels, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)  # zeros, in pixel space
    # The mirror of a crop is the crop of the mirrored padded image at the mirrored offset: stack both, pick one.
    padded = torch.cat([padded, padded.flip(3)])
    source = torch.arange(batch, device=images.device) + batch * flips
    offsets_x = torch.where(flips, 2 * padding - offsets_x, offsets_x)
    # In the flat buffer, a crop is the H x W window with row stride `padded_width` that starts at its top-left
    # element. View every such window at once and gather one per (image, channel).
    padded_height, padded_width = height + 2 * padding, width + 2 * padding
    planes = source[:, None] * channels + torch.arange(channels, device=images.device)  # [B, C]
    top_left = planes * (padded_height * padded_width) + (offsets_y * padded_width + offsets_x)[:, None]
    windows = padded.as_strided((padded.numel() - (height - 1) * padded_width - (width - 1), height, width),
                                (1, padded_width, 1))
    return windows.index_select(0, top_left.flatten()).view(batch, channels, height, width)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 (x/255 - mean)/std, with the same operations as ToTensor followed by Normalize."""
    return images.float().div_(255).sub_(mean).div_(std)


class ImageBatcher:
    """A labelled uint8 image set held on `device`, served as batches of normalised float32 images.

    `train=True`: each epoch is a fresh permutation with random crop (zero padding 4) and horizontal flip.
    `train=False`: the images in stored order, normalised only. The last partial batch is kept in both.
    """

    def __init__(self, images_uint8: torch.Tensor, labels: torch.Tensor, batch_size: int, *, train: bool,
                 seed: int, device: torch.device | str = "cpu"):
        if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4 or images_uint8.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images_uint8.dtype} "
                             f"{list(images_uint8.shape)}")
        if labels.ndim != 1 or len(labels) != len(images_uint8):
            raise ValueError(f"labels must be [N] with N={len(images_uint8)}, got shape {list(labels.shape)}")
        if len(images_uint8) == 0:
            raise ValueError("images must hold at least one image, got 0")
        if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if not (isinstance(seed, (int, np.integer)) and seed >= 0):
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.device = torch.device(device)
        self.images = images_uint8.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.mean = torch.tensor(CIFAR10_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(CIFAR10_STD, device=self.device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-len(self.labels) // self.batch_size)

    def epoch(self, epoch: int) -> EpochBatches:
        if not (isinstance(epoch, (int, np.integer)) and epoch >= 0):
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        count = len(self.labels)
        if not self.train:
            return EpochBatches(self, torch.arange(count, device=self.device))
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(count, generator=generator)
        offsets = torch.randint(0, 2 * PADDING + 1, (2, count), generator=generator)
        flips = torch.rand(count, generator=generator) < 0.5
        return EpochBatches(self, order.to(self.device), offsets[0].to(self.device), offsets[1].to(self.device),
                            flips.to(self.device))


class EpochBatches(Sequence):
    """One epoch's batches; batch i is made when asked for, in any order, so a trainer can look ahead."""

    def __init__(self, source: ImageBatcher, order: torch.Tensor, offsets_y: torch.Tensor | None = None,
                 offsets_x: torch.Tensor | None = None, flips: torch.Tensor | None = None):
        self.source = source
        self.order = order  # dataset index of the k-th image of the epoch
        # Crop offsets and flip of the k-th image of the epoch; None when not augmenting.
        self.offsets_y, self.offsets_x, self.flips = offsets_y, offsets_x, flips

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        span = batch_span(index, len(self), self.source.batch_size)
        chosen = self.order[span]
        images = self.source.images.index_select(0, chosen)  # far faster than images[chosen] on CPU
        if self.flips is not None:
            images = random_crop_flip(images, self.offsets_y[span], self.offsets_x[span], self.flips[span])
        return normalize(images, self.source.mean, self.source.std), self.source.labels.index_select(0, chosen)
