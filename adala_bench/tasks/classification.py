"""CIFAR-10 image classification (VGG11, ResNet34, DenseNet121) as the reference ran it (PROTOCOL.md §1).

The whole dataset lives on the training device; batches are cropped, flipped and normalised there.
Metrics are in percent, like the paper: train_acc is the running accuracy over the epoch's augmented batches
(outputs before each update), test_acc the accuracy on the 10k test images after the epoch, in eval mode.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.nn import functional as F

from adala_bench.data import DataError
from adala_bench.data.augment import ImageBatcher
from adala_bench.data.cifar10 import Cifar10Arrays
from adala_bench.models import build_model
from adala_bench.trainer import Loss, Move, Player

# The held-out validation images are the same for every run and seed, so validation scores are comparable.
VALIDATION_SPLIT_SEED = 0


class Cifar10Classification:
    """One player, "model"; stateless batches; the look-ahead's `next` batch is the following one, wrapping."""

    def __init__(self, data: Cifar10Arrays, *, arch: str, width: float, batch_size: int, val_size: int, seed: int,
                 device: torch.device):
        train_images, train_labels = data.train_images, data.train_labels
        self.val = None
        if val_size >= len(train_labels):
            raise DataError(f"data.val_size={val_size} leaves no training images; it must be below the "
                            f"{len(train_labels)} training images")
        if val_size > 0:
            order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(VALIDATION_SPLIT_SEED))
            val_index, train_index = order[:val_size], order[val_size:]
            self.val = ImageBatcher(train_images[val_index], train_labels[val_index], batch_size, train=False, seed=seed, device=device)
            train_images, train_labels = train_images[train_index], train_labels[train_index]

        self.train = ImageBatcher(train_images, train_labels, batch_size, train=True, seed=seed, device=device)
        self.test = ImageBatcher(data.test_images, data.test_labels, batch_size, train=False, seed=seed, device=device)
        self.model = build_model(arch, num_classes=10, width=width).to(device)
        self.players = {"model": Player(self.model)}

    def train_batches(self, epoch: int):
        return self.train.epoch(epoch)

    def moves(self, batches: Sequence[Any], index: int) -> list[Move]:
        return [Move("model", batches[index], batches[(index + 1) % len(batches)])]

    def initial_carry(self) -> None:
        return None

    def loss(self, player: str, batch: Any, carry: None) -> Loss:
        images, labels = batch
        logits = self.model(images)
        loss = F.cross_entropy(logits, labels)
        return Loss(loss, {
            "loss_sum": loss.detach() * len(labels),
            "correct": (logits.argmax(1) == labels).sum(),
            "count": len(labels),  # counted on the host: a tensor of it would be a blocking copy per step
        })

    def summarize_train(self, sums: dict[str, torch.Tensor | int]) -> dict[str, float]:
        count = sums["count"]
        return {"train_loss": sums["loss_sum"].item() / count, "train_acc": 100.0 * sums["correct"].item() / count}

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        metrics = self._score(self.test, "test")
        if self.val is not None:
            metrics.update(self._score(self.val, "val"))
        return metrics

    def _score(self, batcher: ImageBatcher, split: str) -> dict[str, float]:
        loss_sum, correct, count = 0.0, 0, 0  # device tensors after the first batch: one host sync at the end
        batches = batcher.epoch(0)
        for index in range(len(batches)):
            images, labels = batches[index]
            logits = self.model(images)
            loss_sum = loss_sum + F.cross_entropy(logits, labels, reduction="sum")
            correct = correct + (logits.argmax(1) == labels).sum()
            count += len(labels)
        return {f"{split}_loss": float(loss_sum) / count, f"{split}_acc": 100.0 * float(correct) / count}
