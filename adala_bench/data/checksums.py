"""MD5 checks shared by the datasets: a file's digest, and the checksum manifest written beside a synthetic set."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from adala_bench.data import DataError

MANIFEST = "checksums.md5"


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(directory: Path, dataset: str, required: Iterable[str], how: str) -> dict[str, str]:
    """{file name: md5} from `directory`/checksums.md5 (md5sum's format); DataError when it or an entry is missing."""
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(f"{dataset} not found at {directory} (missing {MANIFEST}); {how}")
    checksums = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        checksums[name.strip()] = digest.strip()
    missing = [name for name in required if name not in checksums]
    if missing:
        raise DataError(f"{dataset} manifest {path} lists no checksum for {missing[0]}; {how}")
    return checksums
