"""AdaLA, MSVAG and Fromage steps against independent float64 references written here from the equations
(ADALA.md's six steps, PROTOCOL.md §5), per element on cloned tensors, plus the optimizers' argument checks.

Tiny tensors and a few steps: the whole file runs in seconds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from adala_bench.optim import build
from adala_bench.optim.adala import AdaLA
from adala_bench.optim.common import HparamError
from adala_bench.optim.fromage import Fromage
from adala_bench.optim.msvag import MSVAG

# different shapes, so that a mix-up of list positions shows (as a wrong value or a shape error)
SHAPES = [(3, 4), (5,), (2, 1, 3), (1,)]
DTYPE = torch.float64


def randn_list(generator: torch.Generator, scale: float = 1.0) -> list[torch.Tensor]:
    return [scale * torch.randn(shape, generator=generator, dtype=DTYPE) for shape in SHAPES]


def problem(steps: int, seed: int = 0):
    """θ0, the gradients g_t entered with, and the look-ahead loss's data: the closure's loss is
    Σ_i Σ ½ c_i θ_i² + n_{t,i} θ_i, so its gradient at θ' is c_i θ'_i + n_{t,i} (it depends on θ')."""
    generator = torch.Generator().manual_seed(seed)
    theta0 = randn_list(generator)
    grads = [randn_list(generator) for _ in range(steps)]
    curvatures = [0.5 + i for i in range(len(SHAPES))]
    next_terms = [randn_list(generator) for _ in range(steps)]
    return theta0, grads, curvatures, next_terms


# ---------------------------------------------------------------------------------------------------------------
# AdaLA


def adala_reference(theta0, grads, curvatures, next_terms, *, lr, betas, eps, weight_decay, weight_decouple,
                    residual):
    """ADALA.md: AdaBelief 0.0.5 (residual "ema") or the six look-ahead steps, per tensor, in float64.
    Decoupled decay θ ← θ(1 − αλ) comes first (as AdaBelief's), so the tentative step starts from the decayed θ,
    and neither g nor g' then has a λθ term."""
    beta1, beta2 = betas
    theta = [p.clone() for p in theta0]
    m = [torch.zeros_like(p) for p in theta0]
    s = [torch.zeros_like(p) for p in theta0]
    trajectory = []
    for t in range(1, len(grads) + 1):
        bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
        g = [x.clone() for x in grads[t - 1]]
        for i in range(len(theta)):
            if weight_decay != 0:
                if weight_decouple:
                    theta[i] = theta[i] * (1 - lr * weight_decay)
                else:
                    g[i] = g[i] + weight_decay * theta[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
        if residual == "ema":
            residuals = [g[i] - m[i] for i in range(len(theta))]
        else:
            tentative = []
            for i in range(len(theta)):
                s_tentative = beta2 * s[i] + (1 - beta2) * (g[i] - m[i]) ** 2 + eps
                tentative.append(theta[i] - lr / bc1 * m[i] / (torch.sqrt(s_tentative) / math.sqrt(bc2) + eps))
            residuals = []
            for i in range(len(theta)):
                g_next = curvatures[i] * tentative[i] + next_terms[t - 1][i]
                if weight_decay != 0 and not weight_decouple:
                    g_next = g_next + weight_decay * tentative[i]
                residuals.append(g[i] - g_next)
        for i in range(len(theta)):
            s[i] = beta2 * s[i] + (1 - beta2) * residuals[i] ** 2 + eps
            theta[i] = theta[i] - lr / bc1 * m[i] / (torch.sqrt(s[i]) / math.sqrt(bc2) + eps)
        trajectory.append(([p.clone() for p in theta], [x.clone() for x in m], [x.clone() for x in s]))
    return trajectory


def run_adala(theta0, grads, curvatures, next_terms, foreach_kwargs, *, residual, **hparams):
    params = [nn.Parameter(p.clone()) for p in theta0]
    optimizer = AdaLA(params, residual=residual, **foreach_kwargs, **hparams)
    trajectory = []
    for t, step_grads in enumerate(grads):
        for p, g in zip(params, step_grads):
            p.grad = g.clone()

        def closure(t=t):
            optimizer.zero_grad()
            loss = sum(0.5 * c * (p * p).sum() + (n * p).sum()
                       for p, c, n in zip(params, curvatures, next_terms[t]))
            loss.backward()
            return loss

        optimizer.step(closure if residual == "lookahead" else None)
        trajectory.append(([p.detach().clone() for p in params],
                           [optimizer.state[p]["exp_avg"].clone() for p in params],
                           [optimizer.state[p]["exp_avg_var"].clone() for p in params]))
    return trajectory


FOREACH_OPTIONS = [pytest.param({}, id="foreach-default"), pytest.param({"foreach": True}, id="foreach-True"),
                   pytest.param({"foreach": False}, id="foreach-False")]
DECAYS = [pytest.param(1e-2, False, id="coupled-0.01"), pytest.param(1e-2, True, id="decoupled-0.01"),
          pytest.param(1.0, False, id="coupled-1"), pytest.param(1.0, True, id="decoupled-1")]


@pytest.mark.parametrize("foreach_kwargs", FOREACH_OPTIONS)
@pytest.mark.parametrize("residual", ["lookahead", "ema"])
@pytest.mark.parametrize("weight_decay, weight_decouple", DECAYS)
def test_adala_matches_the_independent_reference(foreach_kwargs, residual, weight_decay, weight_decouple):
    steps = 6
    theta0, grads, curvatures, next_terms = problem(steps)
    hparams = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, weight_decouple=weight_decouple)
    ours = run_adala(theta0, grads, curvatures, next_terms, foreach_kwargs, residual=residual, **hparams)
    expected = adala_reference(theta0, grads, curvatures, next_terms, residual=residual, **hparams)
    for t, ((params, m, s), (params_ref, m_ref, s_ref)) in enumerate(zip(ours, expected), start=1):
        for i in range(len(SHAPES)):
            for name, a, b in (("theta", params[i], params_ref[i]), ("m", m[i], m_ref[i]), ("s", s[i], s_ref[i])):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=lambda text: f"step {t}, tensor {i}, "
                                                                                       f"{name}: {text}")
    assert all(not torch.allclose(a, b) for a, b in zip(ours[-1][0], theta0))  # every tensor moved


def test_adala_decoupled_lookahead_differs_from_coupled():
    """The reference test is only meaningful if coupled and decoupled decay give different look-ahead steps here."""
    theta0, grads, curvatures, next_terms = problem(3)
    common = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, residual="lookahead")
    coupled = adala_reference(theta0, grads, curvatures, next_terms, weight_decouple=False, **common)
    decoupled = adala_reference(theta0, grads, curvatures, next_terms, weight_decouple=True, **common)
    assert not torch.allclose(coupled[-1][2][0], decoupled[-1][2][0], rtol=1e-9, atol=0)


class OpLog(TorchDispatchMode):
    """The aten ops a step dispatches (top level only: a foreach op is seen once, not its per-tensor fallback)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("residual", ["lookahead", "ema"])
@pytest.mark.parametrize("foreach_kwargs, expect_foreach", [({}, True), ({"foreach": True}, True),
                                                             ({"foreach": False}, False)])
def test_adala_foreach_option_picks_the_kernels(residual, foreach_kwargs, expect_foreach):
    """foreach=False runs a per-tensor loop and no torch._foreach_* kernel; True and the default use them."""
    theta0, grads, curvatures, next_terms = problem(1)
    params = [nn.Parameter(p.clone()) for p in theta0]
    optimizer = AdaLA(params, lr=1e-2, weight_decay=1e-2, residual=residual, **foreach_kwargs)
    for p, g in zip(params, grads[0]):
        p.grad = g.clone()

    def closure():
        for p, n in zip(params, next_terms[0]):
            p.grad = n.clone()

    log = OpLog()
    with log:
        optimizer.step(closure if residual == "lookahead" else None)
    foreach_ops = [name for name in log.names if name.startswith("_foreach_")]
    assert bool(foreach_ops) == expect_foreach, log.names
    if not expect_foreach:
        assert "lerp_" in log.names and "addcdiv_" in log.names  # the same update, one tensor at a time


def test_adala_scratch_and_state_keep_channels_last():
    p = nn.Parameter(torch.randn(2, 3, 2, 2, dtype=DTYPE).to(memory_format=torch.channels_last))
    optimizer = AdaLA([p], lr=1e-2, foreach=False)
    p.grad = torch.randn(2, 3, 2, 2, dtype=DTYPE).to(memory_format=torch.channels_last)

    def closure():
        p.grad = torch.ones_like(p)
    optimizer.step(closure)
    buffers = [optimizer.state[p]["exp_avg"], optimizer.state[p]["exp_avg_var"], optimizer._works[p],
               optimizer._backups[p]]
    assert all(b.is_contiguous(memory_format=torch.channels_last) for b in buffers)
    assert p.is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------------------------------------------
# MSVAG


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


def run_plain(optimizer_factory, theta0, grads):
    params = [nn.Parameter(p.clone()) for p in theta0]
    optimizer = optimizer_factory(params)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()
        trajectory.append([p.detach().clone() for p in params])
    return trajectory, optimizer


def assert_trajectories_close(ours, expected, rtol=1e-11, atol=1e-14):
    for t, (params, params_ref) in enumerate(zip(ours, expected), start=1):
        for i, (a, b) in enumerate(zip(params, params_ref)):
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda text: f"step {t}, tensor {i}: {text}")


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


def test_adala_defaults_are_adabelief_0_0_5s():
    """AdaLA(params) without arguments: AdaBelief 0.0.5's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight
    decay, coupled), the look-ahead residual, and foreach left to torch."""
    group = AdaLA([nn.Parameter(torch.zeros(2))]).param_groups[0]
    assert {key: group[key] for key in ("lr", "betas", "eps", "weight_decay", "weight_decouple", "residual",
                                        "foreach")} == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                                                            weight_decouple=False, residual="lookahead", foreach=None)


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


# ---------------------------------------------------------------------------------------------------------------
# Fromage


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


def test_fromage_rejects_a_negative_lr():
    with pytest.raises(HparamError, match="lr=-1"):
        Fromage([nn.Parameter(torch.ones(2))], lr=-1)


# ---------------------------------------------------------------------------------------------------------------
# sparse gradients: the error names the optimizer


@pytest.mark.parametrize("name, factory", [
    ("AdaLA", lambda params: AdaLA(params)), ("AdaLA", lambda params: AdaLA(params, residual="ema")),
    ("MSVAG", lambda params: MSVAG(params)), ("Fromage", lambda params: Fromage(params, lr=0.01)),
])
def test_sparse_gradients_are_refused_naming_the_optimizer(name, factory):
    p = nn.Parameter(torch.ones(4, 2))
    optimizer = factory([p])
    p.grad = torch.sparse_coo_tensor(torch.tensor([[1]]), torch.ones(1, 2), (4, 2), check_invariants=True)
    with pytest.raises(RuntimeError, match=f"^{name} does not support sparse gradients$"):
        optimizer.step(lambda: None)
    assert torch.equal(p, torch.ones(4, 2))
