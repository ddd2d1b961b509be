"""The RNG state a checkpoint carries: the CUDA part is the run's own device's, restored onto the device the run
resumes on, whatever GPUs that process sees.

This machine has no GPU, so torch.cuda is stubbed at its bottom: `torch.cuda.default_generators` (one generator per
visible device, here CPU generators standing in for them) and the device bookkeeping that torch.cuda.random reads
(device_count, current_device, lazy initialisation). torch's own get_rng_state / set_rng_state / ..._all run as they
are on top of it; the real CUDA path is checked by scripts/gpu_check.sh (its `cuda_rng` step, across
CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.cuda.random as cuda_random

from adala_bench.seeding import rng_state, set_rng_state


class FakeGPUs:
    """`count` visible CUDA devices, each generator seeded by its physical id, with one current device."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.current = 0
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(cuda_random, "_lazy_init", lambda: None)
        monkeypatch.setattr(cuda_random, "is_initialized", lambda: True)
        monkeypatch.setattr(cuda_random, "_lazy_call", lambda callback, **kwargs: callback())
        monkeypatch.setattr(cuda_random, "current_device", lambda: self.current)

    def see(self, physical_ids: list[int]) -> tuple[torch.Generator, ...]:
        """A process that sees these GPUs (as CUDA_VISIBLE_DEVICES would list them), cuda:0 current."""
        generators = tuple(torch.Generator().manual_seed(1000 + gpu) for gpu in physical_ids)
        self.monkeypatch.setattr(torch.cuda, "default_generators", generators)
        self.monkeypatch.setattr(cuda_random, "device_count", lambda: len(generators))
        self.current = 0
        return generators


def draws(generator: torch.Generator) -> torch.Tensor:
    return torch.rand(5, generator=generator)


@pytest.fixture
def gpus(monkeypatch):
    saved = torch.get_rng_state(), random.getstate(), np.random.get_state()
    yield FakeGPUs(monkeypatch)
    torch.set_rng_state(saved[0])
    random.setstate(saved[1])
    np.random.set_state(saved[2])


def test_a_run_saved_with_8_gpus_visible_resumes_on_the_one_gpu_a_worker_sees(gpus):
    """Started on cuda:3 of 8, resumed by an adala-sweep worker that sees only that GPU (as its cuda:0): the worker's
    cuda:0 continues GPU 3's stream. (Restoring all 8 states by position raised IndexError on every retry.)"""
    saving = gpus.see(list(range(8)))
    draws(saving[3])
    state = rng_state(torch.device("cuda", 3))
    expected = draws(saving[3])

    resuming = gpus.see([3])
    set_rng_state(state, torch.device("cuda", 0))
    assert torch.equal(draws(resuming[0]), expected)


def test_device_cuda_k_restores_k_and_leaves_the_other_gpus_alone(gpus):
    generators = gpus.see(list(range(4)))
    for generator in generators:
        draws(generator)
    state = rng_state(torch.device("cuda", 2))
    expected = [draws(generator) for generator in generators]  # every GPU's next draws after the save

    generators = gpus.see(list(range(4)))  # a fresh process with the same GPUs, each at its seed
    untouched = [draws(torch.Generator().manual_seed(1000 + gpu)) for gpu in range(4)]
    set_rng_state(state, torch.device("cuda", 2))
    assert torch.equal(draws(generators[2]), expected[2])
    for gpu in (0, 1, 3):
        assert torch.equal(draws(generators[gpu]), untouched[gpu])


def test_cuda_without_an_index_is_the_current_device(gpus):
    generators = gpus.see(list(range(2)))
    gpus.current = 1  # torch.cuda.set_device(1), as the runner does for device=cuda:1
    state = rng_state(torch.device("cuda"))
    expected = draws(generators[1])
    draws(generators[1])
    set_rng_state(state, torch.device("cuda"))
    assert torch.equal(draws(generators[1]), expected)


def test_cpu_runs_carry_no_cuda_state_and_every_global_generator_round_trips():
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    state = rng_state(torch.device("cpu"))
    assert set(state) == {"torch", "python", "numpy"}
    expected = torch.rand(3), random.random(), np.random.rand()
    set_rng_state(state, torch.device("cpu"))
    assert (torch.equal(torch.rand(3), expected[0]), random.random(), np.random.rand()) == (True, *expected[1:])
