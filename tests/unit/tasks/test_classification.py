"""tasks/classification.py, Table 2's task: the evaluation numbers a run records, against a computation written apart
from the task (issue 17, path 2, and the CIFAR-10 family of the pinned snapshot tests, which guard against change but
not error): test_loss/test_acc (and val_loss/val_acc with a held-out split) against the test pickle read here,
normalised with torchvision's ToTensor and Normalize (the reference's constants), one forward in eval mode. The model
trains one epoch first through the runner's own build_trainer, so its predictions are not uniform and the numbers
checked are the ones the trainer writes into the metrics row."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as TF
from torch.nn import functional as F

from adala_bench.config import RunConfig
from adala_bench.runner import build_trainer
from adala_bench.trainer import Progress
from helpers import compose

CPU = torch.device("cpu")


# The reference's Normalize constants (AdaBelief's classification_cifar10/main.py), written out here.
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 python batch as torchvision's CIFAR10 reads it (latin1): uint8 images [N, 32, 32, 3], labels."""
    with open(path, "rb") as file:
        batch = pickle.load(file, encoding="latin1")
    images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch["labels"], dtype=np.int64)


def reference_scores(model, images_hwc: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in %) of `model` in eval mode, the images through ToTensor and Normalize."""
    transform = TF.Compose([TF.ToTensor(), TF.Normalize(MEAN, STD)])
    inputs = torch.stack([transform(image) for image in images_hwc])
    model.eval()
    with torch.no_grad():
        logits = model(inputs).double()
    targets = torch.from_numpy(labels)
    loss = F.cross_entropy(logits, targets, reduction="sum").item() / len(labels)
    accuracy = 100.0 * (logits.argmax(1) == targets).sum().item() / len(labels)
    return loss, accuracy


def test_cifar10_test_and_val_scores_equal_an_evaluation_written_apart(data_root, tmp_path):
    """VGG11 (dropout: eval mode matters) with a held-out validation split of 40 images; 128 test images in batches
    of 32 in the task, in one forward here."""
    cfg = compose("profile=smoke", "task=cifar10_vgg11", "optimizer=adam", "epochs=1", "data.val_size=40",
                  f"data.root={data_root}", f"results.root={tmp_path / 'runs'}")
    torch.manual_seed(0)
    trainer = build_trainer(RunConfig.of(cfg), CPU)
    row = trainer.train_epoch(Progress())
    model = trainer.task.model

    folder = data_root / "synthetic" / "cifar-10-batches-py"
    test_images, test_labels = read_cifar_batch(folder / "test_batch")
    assert len(test_labels) == 128
    test_loss, test_acc = reference_scores(model, test_images, test_labels)
    assert row["test_loss"] == pytest.approx(test_loss, rel=1e-5)
    assert row["test_acc"] == test_acc

    # The held-out images: the first val_size of a permutation of the train set drawn from seed 0, every run alike.
    batches = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6) if (folder / f"data_batch_{i}").exists()]
    train_images = np.concatenate([images for images, _ in batches])
    train_labels = np.concatenate([labels for _, labels in batches])
    assert len(train_labels) == 256
    held_out = torch.randperm(256, generator=torch.Generator().manual_seed(0))[:40].numpy()
    val_loss, val_acc = reference_scores(model, train_images[held_out], train_labels[held_out])
    assert row["val_loss"] == pytest.approx(val_loss, rel=1e-5)
    assert row["val_acc"] == val_acc
    # the values differ between the splits (so the two are not one computation reported twice)
    assert (row["val_loss"], row["val_acc"]) != (row["test_loss"], row["test_acc"])
