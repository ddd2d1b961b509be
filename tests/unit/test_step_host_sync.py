"""No host sync inside a training step, for each task family: nothing in a step makes a device tensor of host data
(`torch.tensor(n, device=...)`, `.cuda()`) or reads a device value back (`.item()`, `float(t)`, `bool(t)`). On CUDA
each is a blocking round trip, twice per AdaLA step; the trainer reads its losses once per epoch.

On this CPU-only machine nothing is actually copied, so the calls that would copy on CUDA are intercepted by name
(a TorchFunctionMode around each step and each `moves()` call), not by what the device does. `.to(device)` is left
out: torch's own clipping moves device tensors to their own device with it (no copy), which a CPU cannot tell from
a host-to-device move. The CUDA timings of scripts/gpu_check.sh show the effect.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from adala_bench.config import RunConfig
from adala_bench.runner import build_trainer
from adala_bench.trainer import Progress

FROM_HOST = {"tensor", "as_tensor", "asarray", "scalar_tensor", "from_numpy"}  # with device=...: a host->device copy
MOVES = {"cuda"}  # a copy of a host tensor to the GPU
TO_HOST = {"item", "__bool__", "__float__", "__int__", "tolist", "numpy"}  # a device->host read: a sync


class HostSyncs(TorchFunctionMode):
    def __init__(self, seen: list[str]):
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (name in FROM_HOST and kwargs.get("device") is not None) or name in MOVES or name in TO_HOST:
            self.seen.append(f"{name}{tuple(type(a).__name__ for a in args)} {sorted(kwargs)}")
        return func(*args, **kwargs)


FAMILIES = {
    "cifar10": ("task=cifar10_vgg11", "batch_size=64"),
    "ptb": ("task=ptb_lstm1", "task.synthetic.n_train=1500", "batch_size=4"),
    # 4 critic steps; the FID after the epoch (evaluation, not a step) of 8 fakes against 8 images: seconds less
    "gan": ("task=gan_wgan_gp", "batch_size=64", "task.fid.real_images=8", "task.fid.final_samples=8"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_training_step_makes_no_host_copy_and_reads_nothing_back(smoke, random_home, monkeypatch, family):
    """AdaLA: the step, its look-ahead closure, clipping (PTB) and the optimizer's own step."""
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    run = RunConfig.of(smoke(*FAMILIES[family], "optimizer=adala", "epochs=1"))
    torch.manual_seed(0)
    trainer = build_trainer(run, torch.device("cpu"))
    seen: list[str] = []
    steps = []
    step, moves = trainer._step, trainer.task.moves

    def watched_step(move, carry, epoch):
        steps.append(move.player)
        with HostSyncs(seen):
            return step(move, carry, epoch)

    def watched_moves(batches, index):
        with HostSyncs(seen):
            return moves(batches, index)

    monkeypatch.setattr(trainer, "_step", watched_step)
    monkeypatch.setattr(trainer.task, "moves", watched_moves)
    row = trainer.train_epoch(Progress())
    assert len(steps) >= 4 and row["step"] >= 4
    assert seen == []


def test_the_interceptor_sees_what_the_old_loss_did():
    """The old classification loss made `torch.tensor(len(labels), device=labels.device)`; a step's `.item()`."""
    seen: list[str] = []
    labels = torch.zeros(8, dtype=torch.long)
    with HostSyncs(seen):
        torch.tensor(len(labels), device=labels.device)
        labels.sum().item()
        torch.ones((), device=labels.device)  # filled on the device: no copy, nothing seen
    assert [entry.split("(")[0] for entry in seen] == ["tensor", "item"]

