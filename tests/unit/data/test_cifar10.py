"""data/cifar10.py: the synthetic CIFAR-10 (the official layout, tensors in CHW order, deterministic per seed,
learnable, rewritten only when its sizes, seed or files differ, without disturbing a reader) and the real one (one
line with the fix when missing, the official md5s, an offline download that says where to put the files). The
command line (adala-data): tests/e2e/test_data_cli.py."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from adala_bench.data import DataError
from adala_bench.data import cifar10
from adala_bench.data.cifar10 import (
    DATA_FILES,
    ensure_synthetic_cifar10,
    download_cifar10,
    load_cifar10,
    write_synthetic_cifar10,
)

N_TRAIN, N_TEST = 103, 31  # not multiples of 5 or 10, so uneven splits are exercised


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_synthetic_cifar10(root, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    return root


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_synthetic_dataset_has_the_official_layout(synthetic_root):
    directory = synthetic_root / "synthetic" / "cifar-10-batches-py"
    assert sorted(p.name for p in synthetic_root.joinpath("synthetic").iterdir()) == ["cifar-10-batches-py"]
    # Read the way torchvision's CIFAR10 reads the official files.
    sizes = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(directory / name, "rb") as file:
            batch = pickle.load(file, encoding="latin1")
        assert batch["data"].dtype == np.uint8 and batch["data"].shape[1] == 3072
        assert len(batch["labels"]) == len(batch["data"]) == len(batch["filenames"])
        assert isinstance(batch["batch_label"], str)
        sizes.append(len(batch["data"]))
    assert sizes == [21, 21, 21, 20, 20, N_TEST]
    with open(directory / "batches.meta", "rb") as file:
        assert pickle.load(file, encoding="latin1")["label_names"][:3] == ["airplane", "automobile", "bird"]
    # md5sum format, and it matches the files.
    lines = (directory / "checksums.md5").read_text().splitlines()
    manifest = dict(reversed(line.split("  ")) for line in lines)
    assert set(DATA_FILES) <= set(manifest)
    assert all(md5(directory / name) == digest for name, digest in manifest.items())


def test_load_synthetic_gives_tensors_in_chw_order(synthetic_root):
    data = load_cifar10(synthetic_root, source="synthetic")
    assert data.train_images.shape == (N_TRAIN, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (N_TEST, 3, 32, 32)
    assert data.train_labels.dtype == torch.int64 and data.train_labels.shape == (N_TRAIN,)
    assert torch.bincount(data.train_labels, minlength=10).tolist() == [11, 11, 11, 10, 10, 10, 10, 10, 10, 10]
    assert data.label_names[-1] == "truck"
    # The first row of data_batch_1 is image 0's red plane, row-major.
    with open(synthetic_root / "synthetic" / "cifar-10-batches-py" / "data_batch_1", "rb") as file:
        row = pickle.load(file, encoding="latin1")["data"][0]
    assert torch.equal(data.train_images[0, 0, 0], torch.from_numpy(row[:32]))
    assert torch.equal(data.train_images[0, 2, 31], torch.from_numpy(row[-32:]))


def test_synthetic_data_is_deterministic_per_seed(tmp_path):
    first = write_synthetic_cifar10(tmp_path / "a", n_train=20, n_test=10, seed=5)
    again = write_synthetic_cifar10(tmp_path / "b", n_train=20, n_test=10, seed=5)
    other = write_synthetic_cifar10(tmp_path / "c", n_train=20, n_test=10, seed=6)
    assert (first / "checksums.md5").read_text() == (again / "checksums.md5").read_text()
    assert md5(first / "data_batch_1") != md5(other / "data_batch_1")


def test_synthetic_images_are_learnable(tmp_path):
    """Class structure a small conv net picks up in a few steps, and that colour alone does not give away."""
    torch.manual_seed(0)
    write_synthetic_cifar10(tmp_path, n_train=400, n_test=10)
    data = load_cifar10(tmp_path, "synthetic")
    x, y = data.train_images.float().div(255), data.train_labels
    mean_colour = x.mean((2, 3))
    centroids = torch.stack([mean_colour[y == c].mean(0) for c in range(10)])
    colour_accuracy = (torch.cdist(mean_colour, centroids).argmin(1) == y).float().mean()
    assert 0.3 < colour_accuracy < 0.7  # pairs of classes share a colour
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(16, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for step in range(40):
        batch = slice(step % 4 * 100, step % 4 * 100 + 100)
        loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-4:]) / 4 < 0.4 * sum(losses[:4]) / 4


def test_ensure_rewrites_only_when_sizes_or_seed_differ_or_files_are_bad(tmp_path):
    path = ensure_synthetic_cifar10(tmp_path, n_train=10, n_test=5)
    stamp = (path / "data_batch_1").stat().st_mtime_ns
    assert ensure_synthetic_cifar10(tmp_path, n_train=10, n_test=5) == path
    assert (path / "data_batch_1").stat().st_mtime_ns == stamp
    ensure_synthetic_cifar10(tmp_path, n_train=15, n_test=5)
    assert len(load_cifar10(tmp_path, "synthetic").train_labels) == 15
    (path / "test_batch").write_bytes(b"truncated")
    ensure_synthetic_cifar10(tmp_path, n_train=15, n_test=5)
    assert len(load_cifar10(tmp_path, "synthetic").test_labels) == 5
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == ["cifar-10-batches-py"]


def test_rewriting_the_same_dataset_keeps_the_directory_a_reader_may_be_using(tmp_path):
    # As when parallel runs of a sweep all ask for the same synthetic data.
    # A marker file tells the kept directory from a replacement (an inode number may be reused once freed).
    directory = write_synthetic_cifar10(tmp_path, n_train=10, n_test=5)
    (directory / "marker").touch()
    assert write_synthetic_cifar10(tmp_path, n_train=10, n_test=5) == directory
    assert (directory / "marker").exists()
    with ThreadPoolExecutor(4) as pool:  # four writers of a new dataset at once: all succeed, one lands
        written = list(pool.map(lambda seed: write_synthetic_cifar10(tmp_path, n_train=10, n_test=5, seed=seed),
                                [1, 1, 1, 1]))
    assert written == [directory] * 4 and not (directory / "marker").exists()
    assert json.loads((directory / "synthetic.json").read_text())["seed"] == 1
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == ["cifar-10-batches-py"]
    assert len(load_cifar10(tmp_path, "synthetic").train_labels) == 10


def test_missing_real_data_raises_one_line_with_the_fix(synthetic_root):
    # A synthetic dataset under the same root is never used in place of the real one.
    with pytest.raises(DataError) as error:
        load_cifar10(synthetic_root, source="real")
    message = str(error.value)
    assert message == (f"CIFAR-10 not found at {synthetic_root / 'cifar-10-batches-py'} (missing data_batch_1); "
                       f"download it with: adala-data cifar10 --root {synthetic_root} (offline: download "
                       f"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz by hand and extract it under "
                       f"{synthetic_root}; or try the suite on the synthetic stand-in: data.source=synthetic)")


def test_real_files_are_checked_against_the_official_md5(tmp_path, synthetic_root):
    shutil.copytree(synthetic_root / "synthetic" / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "synthetic.json").unlink()  # not known as a stand-in: files of wrong MD5
    with pytest.raises(DataError) as error:
        load_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    assert str(error.value) == (f"CIFAR-10 file {path} is corrupt (md5 {md5(path)} != "
                                f"c99cafc152244af753f735de768cd75f); delete it and run: adala-data cifar10 --root {tmp_path}")
    assert "\n" not in str(error.value)


def test_real_source_reads_files_whose_checksums_match(tmp_path, synthetic_root, monkeypatch):
    """The real-data path end to end, on files of the official format whose checksums it is told."""
    directory = shutil.copytree(synthetic_root / "synthetic" / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    monkeypatch.setattr(cifar10, "OFFICIAL_MD5", {name: md5(directory / name) for name in DATA_FILES})
    monkeypatch.setattr(cifar10, "OFFICIAL_SIZES", {"train": N_TRAIN, "test": N_TEST})
    real, synthetic = load_cifar10(tmp_path), load_cifar10(synthetic_root, "synthetic")
    assert torch.equal(real.train_images, synthetic.train_images)
    assert torch.equal(real.test_labels, synthetic.test_labels)
    monkeypatch.setattr(cifar10, "OFFICIAL_SIZES", {"train": 50_000, "test": 10_000})
    with pytest.raises(DataError, match=f"has {N_TRAIN} train images, expected 50000"):
        load_cifar10(tmp_path)


def test_corrupt_synthetic_file_names_the_file_and_the_fix(tmp_path):
    directory = write_synthetic_cifar10(tmp_path, n_train=10, n_test=5)
    (directory / "data_batch_3").write_bytes(b"x")
    with pytest.raises(DataError, match=r"data_batch_3 is corrupt \(md5 9dd4e461268c8034f5c8564e155c67a6 != .*\); "
                                        r"delete it and run: adala-data synthetic-cifar10 --root "):
        load_cifar10(tmp_path, "synthetic")


def test_offline_download_fails_with_where_to_put_the_files(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataError) as error:
        download_cifar10(tmp_path)
    assert str(error.value) == (
        f"CIFAR-10 download to {tmp_path} failed (URLError: no network in this test); download "
        f"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz by hand and extract it under {tmp_path} "
        f"(giving {tmp_path / 'cifar-10-batches-py'})")


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_train must be an int >= 5, got 4"):
        write_synthetic_cifar10("/nonexistent", n_train=4)
