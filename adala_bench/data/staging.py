"""Writing a synthetic dataset directory so that no reader ever sees a half-written one, with parallel writers:
its files, its spec (the arguments that made it) and their checksum manifest are written beside the final place
and renamed into it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from adala_bench.data import DataError
from adala_bench.data.checksums import MANIFEST, md5_of

PLACE_ATTEMPTS = 10  # renames tried against concurrent writers before giving up
SYNTHETIC_SPEC = "synthetic.json"  # the spec a synthetic dataset was written with, listed in its manifest


def write_synthetic_directory(target: Path, spec: dict, write_files: Callable[[Path], Sequence[str]],
                              verify: Callable[[], Path]) -> Path:
    """Write a synthetic dataset to `target`: `write_files(staging)` writes the data files and returns their names
    (in manifest order); `verify()` checks the dataset in place and returns its directory (DataError if it fails)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        names = (*write_files(staging), SYNTHETIC_SPEC)
        (staging / SYNTHETIC_SPEC).write_text(json.dumps(spec, sort_keys=True) + "\n")
        (staging / MANIFEST).write_text("".join(f"{md5_of(staging / name)}  {name}\n" for name in names))
        place_directory(staging, target, lambda: synthetic_matches(verify, spec))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def is_synthetic_copy(directory: Path) -> bool:
    """Whether `directory` holds a synthetic dataset written by this package: its spec file beside the data."""
    return (Path(directory) / SYNTHETIC_SPEC).is_file()


def synthetic_here(directory: Path, official: str, verify: str) -> str:
    """What to say of a synthetic copy found where the official files belong."""
    what = f"{directory} is a synthetic stand-in (its own manifest and {SYNTHETIC_SPEC}), not {official}"
    if directory.parent.name == "synthetic":
        return f"{what}; verify it as what it is: {verify} --root {directory.parents[1]} --source synthetic"
    return f"{what}; put the official files there, or the stand-in under <root>/synthetic/ (data.source=synthetic)"


def synthetic_matches(verify: Callable[[], Path], spec: dict) -> bool:
    """Whether the synthetic dataset in place verifies and was written with `spec`."""
    try:
        return json.loads((verify() / SYNTHETIC_SPEC).read_text()) == spec
    except (DataError, OSError, ValueError):
        return False


def place_directory(staging: Path, target: Path, in_place: Callable[[], bool]) -> None:
    """Rename the finished `staging` directory to `target`, replacing whatever is there unless `in_place()` says
    the wanted dataset already is.

    Parallel runs of a sweep may write the same synthetic dataset at once: the same spec gives the same bytes, so a
    matching dataset already in place is kept, and a writer that loses a race looks again instead of failing.
    """
    failure: OSError | None = None
    for _ in range(PLACE_ATTEMPTS):
        if in_place():
            return
        _move_away(target)
        try:
            os.rename(staging, target)
            return
        except OSError as error:  # another writer's directory landed in between
            failure = error
    raise failure


def _move_away(target: Path) -> None:
    """Take `target` out of the way with one rename, then delete it; fine if another writer took it first."""
    if not target.exists():
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
    try:
        os.replace(target, old / target.name)
    except FileNotFoundError:
        pass
    shutil.rmtree(old, ignore_errors=True)
