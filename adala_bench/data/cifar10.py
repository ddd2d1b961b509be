"""CIFAR-10 in the official python format (`cifar-10-batches-py/`), checked by MD5, and a synthetic stand-in.

The official directory holds pickles `data_batch_1..5`, `test_batch` (dicts with "data": uint8 N x 3072, CHW
row-major, and "labels": list of int) and `batches.meta` (with "label_names"). It is the layout torchvision's
CIFAR10 downloads, and the synthetic writer produces the same layout under `<root>/synthetic/`.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adala_bench.data import DataError
from adala_bench.data.checksums import md5_of, read_manifest
from adala_bench.data.staging import is_synthetic_copy, synthetic_here, synthetic_matches, write_synthetic_directory

BASE_FOLDER = "cifar-10-batches-py"
SYNTHETIC_FOLDER = "synthetic"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
DATA_FILES = TRAIN_FILES + (TEST_FILE, META_FILE)
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)

# The official checksums, as torchvision.datasets.CIFAR10 lists them (torchvision 0.29).
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
OFFICIAL_SIZES = {"train": 50_000, "test": 10_000}

# Bump when the synthetic images change, so datasets written by an older generator are rewritten.
SYNTHETIC_VERSION = 1


@dataclass(frozen=True)
class Cifar10Arrays:
    train_images: torch.Tensor  # uint8 [N, 3, 32, 32]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    label_names: tuple[str, ...]


def dataset_dir(root: str | os.PathLike, source: str = "real") -> Path:
    """Where `load_cifar10(root, source)` looks: `<root>/cifar-10-batches-py`, or under `<root>/synthetic/`."""
    root = Path(root).expanduser()
    return {"real": root / BASE_FOLDER, "synthetic": root / SYNTHETIC_FOLDER / BASE_FOLDER}[source]


def load_cifar10(root: str | os.PathLike, source: str = "real") -> Cifar10Arrays:
    """Read and MD5-verify the CIFAR-10 batches of `source` ("real" or "synthetic") under `root`.

    A real-source load never falls back to synthetic data: missing or corrupt files raise DataError.
    """
    directory = verify_cifar10(root, source)
    how = _how_to_get(root, source)
    train = [_read_batch(directory / name, how) for name in TRAIN_FILES]
    test_images, test_labels = _read_batch(directory / TEST_FILE, how)
    train_images = torch.cat([images for images, _ in train])
    train_labels = torch.cat([labels for _, labels in train])
    if source == "real":
        for split, count in (("train", len(train_labels)), ("test", len(test_labels))):
            if count != OFFICIAL_SIZES[split]:
                raise DataError(f"CIFAR-10 at {directory} has {count} {split} images, expected "
                                f"{OFFICIAL_SIZES[split]}; {how}")
    return Cifar10Arrays(train_images, train_labels, test_images, test_labels, _read_label_names(directory))


def cifar10_arrays(root: str | os.PathLike, source: str, n_train: int, n_test: int) -> Cifar10Arrays:
    """The dataset a run asked for (classification and the GANs alike): the real one, or the synthetic one
    (written once with these sizes) when the run chose it, never as a fallback."""
    if source == "synthetic":
        ensure_synthetic_cifar10(root, n_train=n_train, n_test=n_test)
    return load_cifar10(root, source=source)


def verify_cifar10(root: str | os.PathLike, source: str = "real") -> Path:
    """Check that every file of the dataset exists and has its expected MD5; return the dataset directory.

    Real data is checked against the official checksums, synthetic data against the manifest written with it.
    """
    directory = dataset_dir(root, source)
    how = _how_to_get(root, source)
    expected = OFFICIAL_MD5 if source == "real" else read_manifest(directory, "CIFAR-10", DATA_FILES, how)
    for name, expected_md5 in expected.items():
        path = directory / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 not found at {directory} (missing {name}); {how}")
        actual = md5_of(path)
        if actual != expected_md5:
            if source == "real" and is_synthetic_copy(directory):
                raise DataError(synthetic_here(directory, "the official CIFAR-10", "adala-data verify cifar10"))
            raise DataError(f"CIFAR-10 file {path} is corrupt (md5 {actual} != {expected_md5}); "
                            f"delete it and run: {_fetch_command(root, source)}")
    return directory


def download_cifar10(root: str | os.PathLike) -> Path:
    """Download and extract the official archive under `root` (torchvision checks its MD5), then verify every file."""
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    try:
        # The test split is the smaller one to load; download=True skips the download when the files verify.
        CIFAR10(str(root), train=False, download=True)
    except (OSError, RuntimeError) as error:  # URLError and timeouts are OSErrors; a bad archive MD5 a RuntimeError
        reason = " ".join(str(getattr(error, "reason", error)).split())
        raise DataError(f"CIFAR-10 download to {root} failed ({type(error).__name__}: {reason}); "
                        f"download {OFFICIAL_URL} by hand and extract it under {root} "
                        f"(giving {root / BASE_FOLDER})") from error
    return verify_cifar10(root, "real")


def write_synthetic_cifar10(root: str | os.PathLike, n_train: int = 2000, n_test: int = 500, seed: int = 0) -> Path:
    """Write a small learnable CIFAR-10 stand-in in the official format under `<root>/synthetic/`.

    Each class has its own colour and stripe pattern, seen through per-image phase, brightness, tint and noise,
    so a small network learns it within a few steps. The same (n_train, n_test, seed) gives byte-identical files.
    The directory is written beside its final place and renamed into it, so a half-written one is never read.
    """
    spec = _synthetic_spec(n_train, n_test, seed)
    rng = np.random.default_rng(seed)
    train_images, train_labels = _synthetic_images(rng, n_train)
    test_images, test_labels = _synthetic_images(rng, n_test)

    def write_files(staging: Path) -> tuple[str, ...]:
        train_parts = np.array_split(np.arange(n_train), len(TRAIN_FILES))
        for number, (name, part) in enumerate(zip(TRAIN_FILES, train_parts), start=1):
            _write_batch(staging / name, f"synthetic training batch {number} of 5",
                         train_images[part], train_labels[part], first_index=int(part[0]))
        _write_batch(staging / TEST_FILE, "synthetic testing batch 1 of 1", test_images, test_labels, first_index=0)
        _write_pickle(staging / META_FILE, {"num_cases_per_batch": len(train_parts[0]),
                                            "label_names": list(LABEL_NAMES), "num_vis": 3072})
        return DATA_FILES

    return write_synthetic_directory(dataset_dir(root, "synthetic"), spec, write_files,
                                     lambda: verify_cifar10(root, "synthetic"))


def ensure_synthetic_cifar10(root: str | os.PathLike, n_train: int, n_test: int, seed: int = 0) -> Path:
    """The synthetic dataset's directory, (re)written unless one with these sizes and seed is there and verifies."""
    if not synthetic_matches(lambda: verify_cifar10(root, "synthetic"), _synthetic_spec(n_train, n_test, seed)):
        write_synthetic_cifar10(root, n_train, n_test, seed)
    return dataset_dir(root, "synthetic")


# ---- reading -------------------------------------------------------------------------------------------------

def _fetch_command(root: str | os.PathLike, source: str) -> str:
    command = "adala-data cifar10" if source == "real" else "adala-data synthetic-cifar10"
    return f"{command} --root {Path(root).expanduser()}"


def _how_to_get(root: str | os.PathLike, source: str) -> str:
    if source == "real":
        return (f"download it with: {_fetch_command(root, source)} (offline: download {OFFICIAL_URL} by hand and "
                f"extract it under {Path(root).expanduser()}; or try the suite on the synthetic stand-in: "
                f"data.source=synthetic)")
    return f"create it with: {_fetch_command(root, source)}"


def _load_pickle(path: Path) -> dict:
    # latin1, as torchvision reads them: the official pickles come from Python 2 and hold numpy arrays.
    with open(path, "rb") as file:
        return pickle.load(file, encoding="latin1")


def _read_batch(path: Path, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _load_pickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR-10 file {path} has no uint8 N x 3072 'data' array; {how}")
    if labels is None or len(labels) != len(data):
        raise DataError(f"CIFAR-10 file {path} has {len(data)} images but "
                        f"{'no' if labels is None else len(labels)} labels; {how}")
    labels = torch.tensor(list(labels), dtype=torch.int64)
    if len(labels) and not (0 <= labels.min() and labels.max() < len(LABEL_NAMES)):
        raise DataError(f"CIFAR-10 file {path} has labels outside 0..9; {how}")
    return torch.from_numpy(data.reshape(-1, *IMAGE_SHAPE).copy()), labels


def _read_label_names(directory: Path) -> tuple[str, ...]:
    return tuple(_load_pickle(directory / META_FILE)["label_names"])


# ---- synthetic writing ---------------------------------------------------------------------------------------

def _synthetic_spec(n_train: int, n_test: int, seed: int) -> dict[str, int]:
    for name, value, least in (("n_train", n_train, len(TRAIN_FILES)), ("n_test", n_test, 1), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    return {"n_train": int(n_train), "n_test": int(n_test), "seed": int(seed), "version": SYNTHETIC_VERSION}


def _synthetic_images(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` uint8 CHW images with balanced, shuffled labels: class colour + class stripes + noise.

    Classes 2k and 2k+1 share a colour and differ in stripe direction (vertical or horizontal, both kept by a
    horizontal flip), so colour alone gets about half right and a model has to see the pattern too.
    """
    labels = rng.permutation(np.arange(count) % len(LABEL_NAMES))
    palette = np.array([[200, 60, 60], [60, 190, 60], [60, 80, 210], [210, 190, 50], [170, 60, 200]],
                       dtype=np.float32)
    colour = palette[labels // 2] * rng.uniform(0.7, 1.1, size=(count, 1)) + rng.normal(0, 15, size=(count, 3))
    periods = 2 + (labels // 2) % 3  # stripe periods across the image
    coordinate = np.arange(32, dtype=np.float32)
    vertical = (labels % 2 == 0)[:, None, None]
    along = np.where(vertical, coordinate[None, None, :], coordinate[None, :, None])  # [N, 32, 32] by broadcast
    phase = rng.uniform(0, 2 * np.pi, size=(count, 1, 1))
    stripes = np.sin(2 * np.pi * periods[:, None, None] / 32 * along + phase)
    images = colour[:, :, None, None] + 50.0 * stripes[:, None] + rng.normal(0, 25, size=(count, 3, 32, 32))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels.astype(np.int64)


def _write_pickle(path: Path, content: dict) -> None:
    with open(path, "wb") as file:
        pickle.dump(content, file, protocol=4)  # fixed, so the bytes do not depend on the Python version


def _write_batch(path: Path, batch_label: str, images: np.ndarray, labels: np.ndarray, first_index: int) -> None:
    _write_pickle(path, {
        "batch_label": batch_label,
        "labels": [int(label) for label in labels],
        "data": np.ascontiguousarray(images.reshape(len(images), -1)),
        "filenames": [f"synthetic_{first_index + i:06d}.png" for i in range(len(images))],
    })
