"""Datasets in their official on-disk formats, synthetic stand-ins in the same formats, and on-device batching.

Import the pieces from their modules (`adala_bench.data.cifar10`, `adala_bench.data.augment`); this package
only holds what they share, so importing it pulls in no heavy dependencies.
"""

import numbers


class DataError(ValueError):
    """A dataset is missing, corrupt or malformed; the one-line message names the path and how to get the data."""


def batch_span(index: int, batches: int, batch_size: int) -> slice:
    """The items of batch `index` of an epoch of `batches` batches, as a Sequence indexes (negative from the end)."""
    if not isinstance(index, numbers.Integral):  # int or a NumPy integer
        raise TypeError(f"batch index must be an int, got {type(index).__name__}")
    index = int(index)
    if index < 0:
        index += batches
    if not 0 <= index < batches:
        raise IndexError(f"batch {index} out of range; this epoch has {batches} batches")
    return slice(index * batch_size, (index + 1) * batch_size)
