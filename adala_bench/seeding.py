"""Every seed of a run, in one place: the global RNGs at the start, the independent streams derived from the seed,
and the RNG state a checkpoint carries.

Streams are derived with NumPy's SeedSequence, so (seed, epoch) and (seed, epoch, stream) give unrelated 63-bit
seeds: an epoch's batches, a GAN's FID noise and its sample-grid noise never share random numbers.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

# Independent streams besides an epoch's batches (derived_seed(seed, epoch)).
FID_STREAM, SAMPLES_STREAM = 1, 2


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's global generators (model initialisation draws from torch's)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derived_seed(*words: int) -> int:
    """A 63-bit generator seed mixed from integers, e.g. (seed, epoch) for an epoch's batches and augmentation."""
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch's data order and augmentation: a function of (seed, epoch) only, so resume repeats it."""
    return derived_seed(seed, epoch)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global generators' states, and that of the run's own CUDA device (only that one: a resume may see other
    GPUs, or fewer, and must restore this device's stream onto the device it then runs on)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Put back what rng_state saved; the CUDA state goes to `device`, the device the run now trains on."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
