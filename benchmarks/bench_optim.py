"""Optimizer-side cost of AdaLA, MSVAG and Fromage against torch.optim.Adam(foreach=True), on CPU.

Figures (CPU time of one thread; median over interleaved rounds of the per-round ratio, both sides in this run):
- AdaLA step on the CIFAR ResNet34 parameter shapes, with a closure that only hands over pre-made gradients,
  vs Adam's step (goal <= 2.3x; reading and writing the tensors AdaLA needs costs about 2.1x Adam's floor);
- MSVAG and Fromage steps vs Adam's (goal <= 1.3x);
- a whole AdaLA training step (forward, backward, step whose closure runs forward and backward again)
  vs a whole AdaBelief training step, on a small CNN with batch 32 of 3x32x32 inputs (goal <= 2.1x).
All optimizers use the CIFAR-10 as-run weight decay of PROTOCOL.md §4a (5e-4; Fromage has none).
Run: .venv/bin/python benchmarks/bench_optim.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from adala_bench.models import build_model
from adala_bench.optim import build


def resnet34_params() -> list[nn.Parameter]:
    """The CIFAR ResNet34's parameters (PROTOCOL.md §1): 110 tensors, 21,282,122 parameters."""
    params = list(build_model("resnet34").parameters())
    assert (len(params), sum(p.numel() for p in params)) == (110, 21_282_122), "not the reference ResNet34"
    return params


def timed(setup: Callable[[], None], run: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of run(): CPU time of this single-threaded process is what other jobs on a
    shared machine disturb least; wall time is shown beside it."""
    setup()
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


Timings = list[tuple[float, float]]  # (CPU, wall) seconds per round


def compare(entries: dict[str, tuple[Callable[[], None], Callable[[], object]]], warmup: int, repeats: int
            ) -> dict[str, Timings]:
    """Timings per entry; the entries take turns each round, so a busy spell of the machine hits a round's
    entries alike and the per-round ratios cancel it."""
    times: dict[str, Timings] = {name: [] for name in entries}
    for round_ in range(warmup + repeats):
        for name, (setup, run) in entries.items():
            seconds = timed(setup, run)
            if round_ >= warmup:
                times[name].append(seconds)
    return times


def figure(label: str, target: Timings, baseline: Timings, goal: str) -> str:
    """Median times, and the median over rounds of the target/baseline ratio (CPU; wall beside it)."""
    def median(values) -> float:
        return statistics.median(values)
    cpu_ratio = median(t[0] / b[0] for t, b in zip(target, baseline))
    wall_ratio = median(t[1] / b[1] for t, b in zip(target, baseline))
    return (f"{label}: {median(t[0] for t in target) * 1e3:.1f} ms cpu ({median(t[1] for t in target) * 1e3:.1f} ms "
            f"wall) vs {median(b[0] for b in baseline) * 1e3:.1f} ms cpu ({median(b[1] for b in baseline) * 1e3:.1f} ms "
            f"wall) ... ratio {cpu_ratio:.2f} (wall {wall_ratio:.2f}) (goal {goal})")


def optimizer_side(warmup: int = 3, repeats: int = 15) -> dict[str, Timings]:
    torch.manual_seed(0)
    reference_params = resnet34_params()
    n_params = sum(p.numel() for p in reference_params)
    grads = [torch.randn_like(p) * 1e-2 for p in reference_params]
    next_grads = [torch.randn_like(p) * 1e-2 for p in reference_params]

    def entry(optimizer_name: str, **hparams: object):
        params = [nn.Parameter(p.detach().clone()) for p in reference_params]
        optimizer = build(optimizer_name, params, **hparams)
        grad_buffers = [g.clone() for g in grads]

        def setup() -> None:  # fresh g_t in p.grad (steps may write the L2 term or residual into it)
            torch._foreach_copy_(grad_buffers, grads)
            for p, g in zip(params, grad_buffers):
                p.grad = g

        def closure() -> None:  # stands for forward/backward at the look-ahead point
            for p, g in zip(params, next_grads):
                p.grad = g

        if optimizer_name == "adala":
            return setup, lambda: optimizer.step(closure)
        return setup, optimizer.step

    times = compare({
        "adam": entry("adam", lr=1e-3, weight_decay=5e-4, foreach=True),
        "adala": entry("adala", lr=1e-3, eps=1e-8, weight_decay=5e-4),
        "msvag": entry("msvag", lr=0.1, weight_decay=5e-4),
        "fromage": entry("fromage", lr=0.01),
    }, warmup, repeats)
    print(f"parameters: {n_params:,} in {len(reference_params)} tensors; torch threads {torch.get_num_threads()}")
    return times


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def training_step(warmup: int = 3, repeats: int = 25) -> dict[str, Timings]:
    torch.manual_seed(0)
    batches = [(torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))) for _ in range(2)]
    loss_fn = nn.CrossEntropyLoss()

    def entry(optimizer_name: str):
        model = SmallCNN()
        optimizer = build(optimizer_name, model.parameters(), lr=1e-3, eps=1e-8, weight_decay=5e-4)

        def loss_on(batch) -> torch.Tensor:
            optimizer.zero_grad()
            loss = loss_fn(model(batch[0]), batch[1])
            loss.backward()
            return loss

        if optimizer_name == "adala":  # look-ahead on the next batch
            return (lambda: None), lambda: (loss_on(batches[0]), optimizer.step(lambda: loss_on(batches[1])))
        return (lambda: None), lambda: (loss_on(batches[0]), optimizer.step())

    return compare({"adabelief": entry("adabelief"), "adala": entry("adala")}, warmup, repeats)


def main() -> None:
    # one thread: the 2-core box is shared, and a 2-thread op stalls whenever either core is taken
    torch.set_num_threads(1)
    side = optimizer_side()
    print(figure("adala optimizer-side step vs adam foreach", side["adala"], side["adam"], "<= 2.3"))
    print(figure("msvag step vs adam foreach", side["msvag"], side["adam"], "<= 1.3"))
    print(figure("fromage step vs adam foreach", side["fromage"], side["adam"], "<= 1.3"))
    whole = training_step()
    print(figure("adala training step vs adabelief (small CNN, batch 32)", whole["adala"], whole["adabelief"],
                 "<= 2.1"))

if __name__ == "__main__":
    main()
