"""Putting a dataset directory in place so that no reader ever sees a half-written one, with parallel writers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

PLACE_ATTEMPTS = 10  # renames tried against concurrent writers before giving up


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
