"""The evaluation numbers a run records, against computations written apart from the tasks (issue 17, path 2, and the
CIFAR-10 family of the pinned snapshot tests, which guard against change but not error).

PTB (Table 3): val_loss/val_ppl and test_loss/test_ppl of an epoch's metrics row against a token-weighted
cross-entropy computed here: the split's text file read and tokenised here (one <eos> per line, the vocabulary in
order of first appearance in ptb.train.txt), cut into columns here (valid.txt at batch 10, test.txt at batch 1, the
remainder dropped), the model run in eval mode chunk by chunk (chunks of 50, not the task's 70) with the hidden state
carried, the cross-entropy summed over every target and divided by the number of targets scored. Perplexity is exp
of that mean.

CIFAR-10 (Table 2): test_loss/test_acc (and val_loss/val_acc with a held-out split) against the test pickle read
here, normalised with torchvision's ToTensor and Normalize (the reference's constants), one forward in eval mode.

Both train one epoch first through the runner's own build_trainer, so the model's predictions are not uniform and
the numbers checked are the ones the trainer writes into the metrics row.
"""

from __future__ import annotations

import math
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


# ---- PTB -----------------------------------------------------------------------------------------------------------

def words_of(path: Path) -> list[str]:
    """AWD-LSTM's Corpus: the words of every line, then <eos>."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words += line.split() + ["<eos>"]
    return words


def ptb_tokens(folder: Path, split: str) -> torch.Tensor:
    vocab: dict[str, int] = {}
    for word in words_of(folder / "ptb.train.txt"):
        vocab.setdefault(word, len(vocab))
    return torch.tensor([vocab[word] for word in words_of(folder / f"ptb.{split}.txt")], dtype=torch.int64)


def token_weighted_cross_entropy(model, tokens: torch.Tensor, columns: int, chunk: int = 50) -> tuple[float, int]:
    """(mean cross-entropy over every next-token target, number of targets) of `model` in eval mode on the stream
    cut into `columns` columns, read `chunk` rows at a time with the hidden state carried."""
    rows = len(tokens) // columns
    stream = tokens[:rows * columns].view(columns, rows).t()  # column j is the j-th contiguous piece of the text
    model.eval()
    total, targets_scored = 0.0, 0
    with torch.no_grad():
        hidden = model.init_hidden(columns)
        for start in range(0, rows - 1, chunk):
            stop = min(start + chunk, rows - 1)
            inputs, targets = stream[start:stop], stream[start + 1:stop + 1]
            output, hidden, _ = model(inputs, hidden)
            logits = model.decoder(output).double()
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum").item()
            targets_scored += targets.numel()
    assert targets_scored == (rows - 1) * columns
    return total / targets_scored, targets_scored


# (valid tokens, test tokens): the smoke corpus's sizes (<eos> included), then sizes whose streams end right at a
# chunk boundary of the task's 70-row chunks: valid 141 rows (140 targets, two full chunks), test 142 rows (the
# last target alone in a third chunk).
SIZES = [(2000, 2000), (1410, 142)]


@pytest.mark.parametrize("n_valid, n_test", SIZES)
def test_ptb_val_and_test_perplexity_equal_a_token_weighted_cross_entropy_computed_apart(tmp_path, n_valid, n_test):
    ptb_root = tmp_path / "data"
    cfg = compose("profile=smoke", "task=ptb_lstm2", "optimizer=adam", "epochs=1", f"data.root={ptb_root}",
                  f"results.root={tmp_path / 'runs'}", f"task.synthetic.n_valid={n_valid}",
                  f"task.synthetic.n_test={n_test}")
    torch.manual_seed(0)
    trainer = build_trainer(RunConfig.of(cfg), CPU)
    row = trainer.train_epoch(Progress())
    model = trainer.task.model

    folder = ptb_root / "synthetic" / "ptb"
    valid, test = ptb_tokens(folder, "valid"), ptb_tokens(folder, "test")
    assert (len(valid), len(test)) == (n_valid, n_test)
    val_loss, val_targets = token_weighted_cross_entropy(model, valid, columns=10)
    test_loss, test_targets = token_weighted_cross_entropy(model, test, columns=1)
    assert (val_targets, test_targets) == ((n_valid // 10 - 1) * 10, n_test - 1)
    assert val_loss < math.log(200) - 0.05  # trained: better than uniform over the 200 words

    assert row["val_loss"] == pytest.approx(val_loss, rel=2e-6)
    assert row["test_loss"] == pytest.approx(test_loss, rel=2e-6)
    assert row["val_ppl"] == pytest.approx(math.exp(val_loss), rel=1e-5)
    assert row["test_ppl"] == pytest.approx(math.exp(test_loss), rel=1e-5)
    # and the same model evaluated again gives the same numbers (evaluation leaves no state behind)
    again = trainer.task.evaluate(0)
    assert again["val_loss"] == row["val_loss"] and again["test_ppl"] == row["test_ppl"]


# ---- CIFAR-10 ------------------------------------------------------------------------------------------------------

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
