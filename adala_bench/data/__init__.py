"""Datasets in their official on-disk formats, synthetic stand-ins in the same formats, and on-device batching.

Import the pieces from their modules (`adala_bench.data.cifar10`, `adala_bench.data.augment`); this package
only holds what they share, so importing it pulls in no heavy dependencies.
"""

# real: the official dataset under the data root, never replaced silently;
# synthetic: a small dataset in the same on-disk format, written under <root>/synthetic/ on first use.
SOURCES = ("real", "synthetic")


class DataError(ValueError):
    """A dataset is missing, corrupt or malformed; the one-line message names the path and how to get the data."""


def check_source(source: str) -> str:
    """The one check of `data.source`."""
    if source not in SOURCES:
        raise DataError(f"data.source={source!r} is not allowed; allowed: {', '.join(SOURCES)}")
    return source
