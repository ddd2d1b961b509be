"""Fromage (PROTOCOL.md §5) against one float64 reference written here from its equations, per element on cloned
tensors: the class itself and the registry's "fromage" over 220 steps, through the branches where ‖θ‖ or ‖g‖ is 0
(a plain step), and its argument check."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from adala_bench.optim import build
from adala_bench.optim.common import HparamError
from adala_bench.optim.fromage import Fromage
from helpers import assert_trajectories_close, run_plain

# different shapes, so that a mix-up of list positions shows (as a wrong value or a shape error)
SHAPES = [(3, 4), (5,), (2, 1, 3), (1,)]
DTYPE = torch.float64


def randn_list(generator: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(shape, generator=generator, dtype=DTYPE) for shape in SHAPES]


def fromage_reference(theta0, grads, *, lr):
    theta = [p.clone() for p in theta0]
    trajectory = []
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            p_norm, g_norm = torch.sqrt((theta[i] ** 2).sum()), torch.sqrt((g ** 2).sum())
            if p_norm > 0 and g_norm > 0:
                theta[i] = theta[i] - lr * (p_norm / g_norm) * g
            else:
                theta[i] = theta[i] - lr * g
            theta[i] = theta[i] / math.sqrt(1 + lr ** 2)
        trajectory.append([p.clone() for p in theta])
    return trajectory


def test_fromage_matches_the_independent_reference():
    generator = torch.Generator().manual_seed(11)
    theta0 = randn_list(generator)
    grads = [randn_list(generator) for _ in range(4)]
    theta0[2].zero_()  # ‖θ‖ = 0: plain step
    grads[0][1].zero_()  # ‖g‖ = 0 at t = 1: plain (zero) step, then shrink
    ours, _ = run_plain(lambda params: Fromage(params, lr=0.05), theta0, grads)
    assert_trajectories_close(ours, fromage_reference(theta0, grads, lr=0.05), rtol=1e-12)


def test_fromage_follows_its_equations():
    """The registry's "fromage" for 220 steps: ‖g‖ = 0 for a while (the plain branch), ‖θ‖ = 0 at first (the plain
    branch too)."""
    generator = torch.Generator().manual_seed(0)
    theta0 = randn_list(generator)
    grads = [randn_list(generator) for _ in range(220)]
    for step_grads in grads[:50]:
        step_grads[2].zero_()
    theta0[1].zero_()
    ours, _ = run_plain(lambda params: build("fromage", params, lr=0.01), theta0, grads)
    assert_trajectories_close(ours, fromage_reference(theta0, grads, lr=0.01), rtol=1e-12)


def test_fromage_rejects_a_negative_lr():
    with pytest.raises(HparamError, match="lr=-1"):
        Fromage([nn.Parameter(torch.ones(2))], lr=-1)
