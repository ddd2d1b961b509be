"""CIFAR-10 image classification (VGG11, ResNet34, DenseNet121) as the reference ran it (PROTOCOL.md §1).

The whole dataset lives on the training device; batches are cropped, flipped and normalised there.
Metrics are in percent, like the paper: train_acc is the running accuracy over the epoch's augmented batches
(outputs before each update), test_acc the accuracy on the 10k test images after the epoch, in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from adala_bench.data import DataError
from adala_bench.data.augment import ImageBatcher
from adala_bench.data.cifar10 import ensure_synthetic_cifar10, load_cifar10
from adala_bench.models import build_model

# The held-out validation images are the same for every run and seed, so validation scores are comparable.
VALIDATION_SPLIT_SEED = 0


class Cifar10Classification:
    def __init__(self, cfg: DictConfig, device: torch.device):
        data = load_cifar10_for(cfg)
        train_images, train_labels = data.train_images, data.train_labels
        self.val = None
        if cfg.data.val_size >= len(train_labels):
            raise DataError(f"data.val_size={cfg.data.val_size} leaves no training images; it must be below the "
                            f"{len(train_labels)} training images")
        if cfg.data.val_size > 0:
            order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(VALIDATION_SPLIT_SEED))
            val_index, train_index = order[: cfg.data.val_size], order[cfg.data.val_size :]
            self.val = ImageBatcher(train_images[val_index], train_labels[val_index], cfg.batch_size, train=False, seed=cfg.seed, device=device)
            train_images, train_labels = train_images[train_index], train_labels[train_index]

        self.train = ImageBatcher(train_images, train_labels, cfg.batch_size, train=True, seed=cfg.seed, device=device)
        self.test = ImageBatcher(data.test_images, data.test_labels, cfg.batch_size, train=False, seed=cfg.seed, device=device)
        self.model: nn.Module = build_model(cfg.task.arch, num_classes=10, width=cfg.task.width).to(device)

    def train_batches(self, epoch: int):
        return self.train.epoch(epoch)

    def forward_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, labels = batch
        logits = self.model(images)
        loss = F.cross_entropy(logits, labels)
        return loss, {
            "loss_sum": loss.detach() * len(labels),
            "correct": (logits.argmax(1) == labels).sum(),
            "count": torch.tensor(len(labels), device=labels.device),
        }

    def summarize_train(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        count = sums["count"].item()
        return {"train_loss": sums["loss_sum"].item() / count, "train_acc": 100.0 * sums["correct"].item() / count}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
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


def load_cifar10_for(cfg: DictConfig):
    """The real dataset, or the synthetic one when the user chose data.source=synthetic (never as a fallback)."""
    if cfg.data.source == "synthetic":
        ensure_synthetic_cifar10(cfg.data.root, n_train=cfg.data.synthetic.n_train, n_test=cfg.data.synthetic.n_test)
    return load_cifar10(cfg.data.root, source=cfg.data.source)
