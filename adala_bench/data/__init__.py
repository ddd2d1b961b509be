"""Datasets in their official on-disk formats, synthetic stand-ins in the same formats, and on-device batching.

Import the pieces from their modules (`adala_bench.data.cifar10`, `adala_bench.data.augment`); this package
only holds the error type they share, so importing it pulls in no heavy dependencies.
"""


class DataError(ValueError):
    """A dataset is missing, corrupt or malformed; the one-line message names the path and how to get the data."""
