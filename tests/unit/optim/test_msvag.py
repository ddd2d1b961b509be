"""MSVAG (PROTOCOL.md §5, AB's optimizers/MSVAG.py) against an independent float64 reference written here from the
equations, per element on cloned tensors: its defaults, a coordinate that never gets a gradient (γ = 0/0 → 0), float32
with tiny and overflowing gradients, and its argument checks.

Tiny tensors and a few steps: the whole file runs in seconds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adala_bench.optim import build
from adala_bench.optim.common import HparamError
from adala_bench.optim.msvag import MSVAG
from helpers import assert_trajectories_close, run_plain

# different shapes, so that a mix-up of list positions shows (as a wrong value or a shape error)
SHAPES = [(3, 4), (5,), (2, 1, 3), (1,)]
DTYPE = torch.float64


def randn_list(generator: torch.Generator, scale: float = 1.0) -> list[torch.Tensor]:
    return [scale * torch.randn(shape, generator=generator, dtype=DTYPE) for shape in SHAPES]


def msvag_reference(theta0, grads, *, lr, betas, weight_decay):
    """PROTOCOL.md §5 (AB's optimizers/MSVAG.py): v is a β1 average, v̂ uses bc2, γ's NaN → 0."""
    beta1, beta2 = betas
    theta = [p.clone() for p in theta0]
    m = [torch.zeros_like(p) for p in theta0]
    v = [torch.zeros_like(p) for p in theta0]
    trajectory = []
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            g = g + weight_decay * theta[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta1 * v[i] + (1 - beta1) * g * g
            m_hat, v_hat = m[i] / (1 - beta1 ** t), v[i] / (1 - beta2 ** t)
            rho = (1 - beta1) / (1 + beta1) * (1 + beta1 ** t) / (1 - beta1 ** t)
            s = (v_hat - m_hat ** 2) / (1 - rho)  # torch: x / 0.0 is ±inf or NaN, no error
            gamma = m_hat ** 2 / (m_hat ** 2 + rho * s)
            gamma = torch.where(torch.isnan(gamma), torch.zeros_like(gamma), gamma)
            theta[i] = theta[i] - lr * gamma * m_hat
        trajectory.append([p.clone() for p in theta])
    return trajectory


def msvag_problem(steps: int):
    """A zero coordinate that never gets a gradient (θ = 0, so no L2 either): m = v = 0 there, the reference's
    0/0 = NaN → γ = 0 path."""
    generator = torch.Generator().manual_seed(7)
    theta0 = randn_list(generator)
    grads = [randn_list(generator) for _ in range(steps)]
    theta0[1][0] = 0.0
    for step_grads in grads:
        step_grads[1][0] = 0.0
    return theta0, grads


@pytest.mark.parametrize("weight_decay, betas", [(0.0, (0.9, 0.999)), (5e-4, (0.9, 0.999)), (1.0, (0.9, 0.999)),
                                                  (5e-4, (0.5, 0.999))])  # (0.5, 0.999): the GAN runs' betas
def test_msvag_matches_the_independent_reference(weight_decay, betas):
    theta0, grads = msvag_problem(6)
    hparams = dict(lr=0.1, betas=betas, weight_decay=weight_decay)
    ours, _ = run_plain(lambda params: MSVAG(params, **hparams), theta0, grads)
    expected = msvag_reference(theta0, grads, **hparams)
    assert_trajectories_close(ours, expected)
    assert all(torch.equal(a, b) for a, b in zip(ours[0], theta0))  # ρ = 1 at t = 1: no move
    assert ours[-1][1][0] == 0.0  # m = v = 0: γ = 0, not NaN
    assert all(torch.isfinite(p).all() for p in ours[-1])
    assert not torch.allclose(ours[-1][0], theta0[0])


def test_msvag_built_by_the_registry_follows_the_reference_for_220_steps():
    """The registry's "msvag" with the CIFAR-10 as-run values, long enough for ρ → (1 − β1)/(1 + β1) and for the
    foreach path's buckets and work buffers to be reused step after step."""
    theta0, grads = msvag_problem(220)
    hparams = dict(lr=0.1, betas=(0.9, 0.999), weight_decay=5e-4)
    ours, _ = run_plain(lambda params: build("msvag", params, **hparams), theta0, grads)
    assert_trajectories_close(ours, msvag_reference(theta0, grads, **hparams), rtol=1e-11, atol=1e-13)
    assert ours[-1][1][0] == 0.0 and not torch.allclose(ours[-1][0], theta0[0])


def float32_and_reference(theta0, grads, hparams):
    """MSVAG in float32 on float32 copies of the problem, and the reference in float64 on exactly those values."""
    theta32 = [p.float() for p in theta0]
    grads32 = [[g.float() for g in step] for step in grads]
    ours, _ = run_plain(lambda params: MSVAG(params, **hparams), theta32, grads32)
    expected = msvag_reference([p.double() for p in theta32], [[g.double() for g in step] for step in grads32],
                               **hparams)
    return ours, expected


@pytest.mark.parametrize("weight_decay, betas", [(0.0, (0.9, 0.999)), (5e-4, (0.9, 0.999)), (5e-4, (0.5, 0.999))])
def test_msvag_in_float32_follows_the_float64_reference(weight_decay, betas):
    theta0, grads = msvag_problem(30)
    ours, expected = float32_and_reference(theta0, grads, dict(lr=0.1, betas=betas, weight_decay=weight_decay))
    assert all(p.dtype == torch.float32 for p in ours[-1])
    assert_trajectories_close([[p.double() for p in params] for params in ours], expected, rtol=1e-5, atol=1e-6)
    assert ours[-1][1][0] == 0.0


def test_msvag_in_float32_with_tiny_gradients_leaves_the_parameter_where_the_equations_do():
    """g = 1e-25 every step. In float32, m² and v underflow to 0, so the reference's own arithmetic gives
    γ = 0/0 → 0: no step, at θ = 0 (where any step would show) as at θ = 1. In float64 the step α γ m̂ is ~1e-28,
    nothing next to θ = 1. So θ stays, as Adam leaves it; it must not become m/0 = inf at step 2 and NaN at step 3."""
    theta0 = [(torch.ones if i % 2 == 0 else torch.zeros)(shape, dtype=DTYPE) for i, shape in enumerate(SHAPES)]
    grads = [[torch.full(shape, 1e-25, dtype=DTYPE) for shape in SHAPES] for _ in range(6)]
    hparams = dict(lr=0.1, betas=(0.9, 0.999), weight_decay=0.0)
    ours, in_float64 = float32_and_reference(theta0, grads, hparams)
    in_float32 = msvag_reference([p.float() for p in theta0], [[g.float() for g in step] for step in grads], **hparams)
    for t, params in enumerate(ours, start=1):
        for i, p in enumerate(params):
            assert torch.equal(p, theta0[i].float()), f"step {t}, tensor {i}: {p}"
            assert torch.equal(p, in_float32[t - 1][i])
            if i % 2 == 0:
                assert torch.equal(p, in_float64[t - 1][i].float())


def test_msvag_in_float32_over_gradients_from_1_to_1e_30_follows_the_reference():
    """Per element, gradients of every size down to where m² is subnormal or 0 in float32: no inf or NaN, and each
    coordinate within float32 rounding of the float64 reference (θ ~ 1, so the tiny steps round away alike)."""
    generator = torch.Generator().manual_seed(3)
    scales = 10.0 ** -torch.arange(0, 31, dtype=DTYPE)  # 31 coordinates, 1 down to 1e-30
    theta0 = [1.0 + 0.1 * torch.randn(31, generator=generator, dtype=DTYPE)]
    grads = [[scales * torch.randn(31, generator=generator, dtype=DTYPE)] for _ in range(12)]
    ours, expected = float32_and_reference(theta0, grads, dict(lr=0.1, betas=(0.9, 0.999), weight_decay=0.0))
    assert all(torch.isfinite(p).all() for params in ours for p in params)
    assert_trajectories_close([[p.double() for p in params] for params in ours], expected, rtol=1e-6, atol=1e-7)
    assert not torch.equal(ours[-1][0][0], theta0[0][0].float())  # the large gradients did move θ


def test_msvag_defaults_match_the_reference():
    """Defaults as in AB's MSVAG.py: lr 1e-3, betas (0.9, 0.999), eps 1e-8 (kept in the group, unused), wd 0."""
    theta0, grads = msvag_problem(5)
    ours, optimizer = run_plain(MSVAG, theta0, grads)
    expected = msvag_reference(theta0, grads, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
    assert_trajectories_close(ours, expected)
    group = optimizer.param_groups[0]
    assert {key: group[key] for key in ("lr", "betas", "eps", "weight_decay")} == dict(
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)


@pytest.mark.parametrize("gradient", [1e200, 8e154])
def test_msvag_overflowing_gradient_square_leaves_the_coordinate_in_place(gradient):
    """g² = inf makes v = inf and m̂² = inf or huge: the reference's s is NaN or inf and γ = 0, so that coordinate
    stays exactly where it is (here 0, where any nonzero step, however small, would show), in the reference as here.
    1e200: m² = v = inf, so the work buffer v/m² is inf/inf = NaN; 8e154: v = 0.1 g² = inf but m² = (0.1 g)² is
    finite, so v/m² = inf, which must stay inf (the largest finite number in its place would move θ by ~1e-155)."""
    theta0, grads = msvag_problem(5)
    theta0[0][0, 0] = 0.0
    grads[0][0][0, 0] = grads[1][0][0, 0] = 0.0  # t = 1, 2: m = v = 0 there, no move
    grads[2][0][0, 0] = gradient  # t = 3
    hparams = dict(lr=0.1, betas=(0.9, 0.999), weight_decay=0.0)
    ours, optimizer = run_plain(lambda params: MSVAG(params, **hparams), theta0, grads)
    expected = msvag_reference(theta0, grads, **hparams)
    assert all(params_ref[0][0, 0] == 0.0 for params_ref in expected)
    for t, params in enumerate(ours, start=1):
        assert params[0][0, 0].item() == 0.0, f"step {t}: {params[0][0, 0].item()!r}"
    assert_trajectories_close(ours, expected)
    assert all(torch.isfinite(p).all() for p in ours[-1])


@pytest.mark.parametrize("hparams, named", [
    (dict(lr=-1.0), "lr=-1.0"), (dict(eps=-1e-8), "eps=-1e-08"), (dict(weight_decay=-5e-4), "weight_decay=-0.0005"),
    (dict(betas=(1.0, 0.999)), r"betas\[0\]=1.0"), (dict(betas=(0.9, -0.1)), r"betas\[1\]=-0.1"),
    (dict(betas=(0.9,)), "betas="),
])
def test_msvag_rejects_bad_hyperparameters_naming_them(hparams, named):
    with pytest.raises(HparamError, match=named):
        MSVAG([nn.Parameter(torch.ones(2))], **hparams)
