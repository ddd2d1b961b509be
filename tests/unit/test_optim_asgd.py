"""The ASGD PTB's SGD switches to (optim/registry.py DeviceASGD): torch's ASGD, capturable on CUDA so that its step
reads nothing back to the host per parameter; unchanged on the CPU; the same spec and run names; checkpoints load on
either kind of device.

The CPU allows no capturable ASGD step, so the CUDA path is exercised here with two stubs, said where they are used:
the parameters count as CUDA ones (registry.capturable_on) and torch's ASGD accepts the CPU as a capturable device.
The real CUDA step runs in scripts/gpu_check.sh (PTB's timing under SGD is the reference's; the switch comes late).
"""

from __future__ import annotations

import copy
from dataclasses import asdict

import pytest
import torch
import torch.optim.asgd as torch_asgd
from torch.overrides import TorchFunctionMode

from adala_bench import optim
from adala_bench.optim import registry
from adala_bench.settings import OptimizerSpec

# What PTB's switch builds (tasks/language.py): plain SGD at the undecayed lr, averaging from the start.
SWITCHED = {"lr": 30.0, "t0": 0, "lambd": 0.0, "weight_decay": 1.2e-6}


def parameters(seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((7, 5), (5,), (3, 4, 2))]


def run(optimizer: torch.optim.Optimizer, params, steps: int, start: int = 0) -> None:
    for step in range(start, start + steps):
        generator = torch.Generator().manual_seed(100 + step)
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator) * 1e-3
        optimizer.step()


class HostReads(TorchFunctionMode):
    """Records reads of a tensor's value by the host (`.item()`, `float(t)`, ...): on CUDA each is a sync."""

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in {"item", "__float__", "__bool__", "__int__", "tolist"}:
            self.reads.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def cuda_path(monkeypatch):
    """Stubbed: the parameters count as CUDA ones, and torch's ASGD takes the CPU as a capturable device."""
    monkeypatch.setattr(registry, "capturable_on", lambda params: True)
    monkeypatch.setattr(torch_asgd, "_get_capturable_supported_devices", lambda *a, **k: ["cpu", "cuda"])


def test_on_the_cpu_it_is_torchs_asgd_bit_for_bit_and_keeps_its_spec():
    ours, theirs = parameters(), parameters()
    built = optim.build("asgd", ours, **SWITCHED)
    assert type(built) is registry.DeviceASGD and built.defaults["capturable"] is False
    run(built, ours, 20)
    run(torch.optim.ASGD(theirs, **SWITCHED), theirs, 20)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    spec = OptimizerSpec("asgd", SWITCHED, since_epoch=7)
    assert OptimizerSpec(**asdict(spec)) == spec and "capturable" not in spec.hparams  # as a checkpoint carries it
    with pytest.raises(ValueError, match="unknown hyperparameter 'capturable' for optimizer 'asgd'"):
        optim.build("asgd", parameters(), capturable=True, **SWITCHED)


@pytest.mark.usefixtures("cuda_path")
@pytest.mark.parametrize("foreach", [False, True])  # torch's default on CUDA is foreach
def test_the_cuda_step_reads_nothing_back_and_computes_the_plain_steps_values(foreach):
    ours = parameters()
    built = optim.build("asgd", ours, foreach=foreach, **SWITCHED)
    assert built.defaults["capturable"] is True
    with HostReads() as mode:
        run(built, ours, 20)
    assert mode.reads == []
    plain_params = parameters()
    plain = torch.optim.ASGD(plain_params, foreach=foreach, **SWITCHED)
    with HostReads() as mode:
        run(plain, plain_params, 20)
    assert len(mode.reads) >= 20 * len(plain_params)  # torch's plain step: a read per parameter per step
    for a, b in zip(ours, plain_params):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    for p, q in zip(ours, plain_params):
        torch.testing.assert_close(built.state[p]["ax"], plain.state[q]["ax"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("saved_on_cuda, resumed_on_cuda", [(False, True), (True, False), (True, True)])
def test_a_checkpoint_resumes_on_either_kind_of_device(monkeypatch, saved_on_cuda, resumed_on_cuda):
    """5 steps, save, load into a fresh optimizer (maybe on the other kind of device), 5 more = 10 straight steps.
    The "CUDA" side is the stubbed capturable path; a CPU checkpoint holds `step` as a non-capturable one does."""

    def build(params, cuda: bool):
        monkeypatch.setattr(registry, "capturable_on", lambda tensors: cuda)
        return optim.build("asgd", params, **SWITCHED)

    monkeypatch.setattr(torch_asgd, "_get_capturable_supported_devices", lambda *a, **k: ["cpu", "cuda"])
    straight = parameters()
    run(build(straight, resumed_on_cuda), straight, 10)

    first = parameters()
    saving = build(first, saved_on_cuda)
    run(saving, first, 5)
    state = copy.deepcopy(saving.state_dict())
    second = [torch.nn.Parameter(p.detach().clone()) for p in first]
    resuming = build(second, resumed_on_cuda)
    resuming.load_state_dict(state)
    assert all(group["capturable"] is resumed_on_cuda for group in resuming.param_groups)
    assert all(resuming.state[p]["step"].dtype == torch.float32 for p in second)
    run(resuming, second, 5, start=5)
    for a, b in zip(second, straight):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
