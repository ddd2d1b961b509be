"""Images/second of one augmented CIFAR-10 training epoch: on-device batching against torchvision's DataLoader.

Both sides do the reference's train transform (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
Normalize) on 50,000 synthetic uint8 images in batches of 128 on the CPU; the DataLoader gets num_workers=2 as the
reference ran it. Run: .venv/bin/python benchmarks/bench_augment.py
"""

from __future__ import annotations

import time

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from adala_bench.data.augment import CIFAR10_MEAN, CIFAR10_STD, ImageBatcher

N_IMAGES, BATCH_SIZE, GOAL = 50_000, 128, 10.0


class PILImages(Dataset):
    """What torchvision's CIFAR10 serves: a PIL image per item, transformed on access."""

    def __init__(self, images_hwc: torch.Tensor, labels: torch.Tensor, transform):
        self.images = [Image.fromarray(image) for image in images_hwc.numpy()]
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]


def images_per_second(batches) -> float:
    start, count = time.perf_counter(), 0
    for images, labels in batches:
        count += len(labels)
    return count / (time.perf_counter() - start)


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N_IMAGES, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (N_IMAGES,), generator=generator)

    batcher = ImageBatcher(images, labels, BATCH_SIZE, train=True, seed=0, device="cpu")
    ours = max(images_per_second(batcher.epoch(epoch)) for epoch in range(2))  # best of 2, as the baseline

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    dataset = PILImages(images.permute(0, 2, 3, 1).contiguous(), labels, transform)
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=2, persistent_workers=True)
    baseline = max(images_per_second(loader) for _ in range(2))  # the second epoch has its workers started

    print(f"augment: ImageBatcher {ours:,.0f} img/s vs torchvision DataLoader(num_workers=2) {baseline:,.0f} img/s, "
          f"one epoch of {N_IMAGES:,} images, batch {BATCH_SIZE}, CPU ({torch.get_num_threads()} threads): "
          f"ratio {ours / baseline:.2f} (goal >= {GOAL:.0f})")


if __name__ == "__main__":
    main()
