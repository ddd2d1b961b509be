"""The baselines the registry builds against plain float64 versions of PROTOCOL.md §5's equations, fed the same
fixed gradient sequences (optax style), and the reference packages' quirks the registry must keep or hide."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch_optimizer
from torch import nn

from adala_bench.optim import build

SHAPES = [(4, 3), (5,), (2, 3)]
STEPS = 220


def gradient_sequence(steps: int = STEPS, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=shape) for shape in SHAPES] for _ in range(steps)]


def initial_params(seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for shape in SHAPES]


def follow(name: str, params0: list[np.ndarray], grads, **hparams) -> list[list[np.ndarray]]:
    """The registry's optimizer fed the given gradients; parameters after every step."""
    params = [nn.Parameter(torch.tensor(p)) for p in params0]
    optimizer = build(name, params, **hparams)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        optimizer.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def assert_same_trajectory(ours, reference, rtol=1e-12, atol=1e-14):
    for step, (a_params, b_params) in enumerate(zip(ours, reference), start=1):
        for a, b in zip(a_params, b_params):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"step {step}")


def fromage_reference(params, grads, lr):
    params = [p.copy() for p in params]
    trajectory = []
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            p_norm, g_norm = np.linalg.norm(params[i]), np.linalg.norm(g)
            if p_norm > 0 and g_norm > 0:
                params[i] = params[i] - lr * (p_norm / g_norm) * g
            else:
                params[i] = params[i] - lr * g
            params[i] = params[i] / math.sqrt(1 + lr ** 2)
        trajectory.append([p.copy() for p in params])
    return trajectory


def test_fromage_follows_its_equations():
    grads = gradient_sequence()
    for step_grads in grads[:50]:  # ‖g‖ = 0 for a while: the plain branch
        step_grads[2][:] = 0.0
    params0 = initial_params()
    params0[1][:] = 0.0  # ‖θ‖ = 0 at first: the plain branch
    ours = follow("fromage", params0, grads, lr=0.01)
    assert_same_trajectory(ours, fromage_reference(params0, grads, lr=0.01))


def yogi_reference(params, grads, lr, betas, eps, weight_decay, initial_accumulator=1e-6):
    beta1, beta2 = betas
    params = [p.copy() for p in params]
    m = [np.full_like(p, initial_accumulator) for p in params]
    v = [np.full_like(p, initial_accumulator) for p in params]
    trajectory = []
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            g = g + weight_decay * params[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = v[i] - (1 - beta2) * np.sign(v[i] - g * g) * g * g
            denom = np.sqrt(v[i]) / np.sqrt(1 - beta2 ** t) + eps
            params[i] = params[i] - lr / (1 - beta1 ** t) * m[i] / denom
        trajectory.append([p.copy() for p in params])
    return trajectory


def test_yogi_follows_its_equations_with_the_reference_defaults():
    grads, params0 = gradient_sequence(), initial_params()
    ours = follow("yogi", params0, grads, lr=1e-3, weight_decay=5e-4)  # eps 1e-3, accumulators 1e-6 by default
    reference = yogi_reference(params0, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-3, weight_decay=5e-4)
    assert_same_trajectory(ours, reference)


def test_adabound_equals_torch_optimizer_adabound_step_for_step_across_an_lr_decay():
    grads, params0 = gradient_sequence(), initial_params()
    hparams = dict(lr=1e-3, betas=(0.9, 0.999), final_lr=0.1, gamma=1e-3, eps=1e-8, weight_decay=5e-4)
    ours = [nn.Parameter(torch.tensor(p)) for p in params0]
    theirs = [nn.Parameter(torch.tensor(p)) for p in params0]
    optimizers = build("adabound", ours, **hparams), torch_optimizer.AdaBound(theirs, **hparams)
    for t, step_grads in enumerate(grads):
        for params, optimizer in zip((ours, theirs), optimizers):
            if t == STEPS // 2:  # a manual decay: final_lr follows it in both
                optimizer.param_groups[0]["lr"] *= 0.1
            for p, g in zip(params, step_grads):
                p.grad = torch.tensor(g)
            optimizer.step()
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)
    assert not torch.equal(ours[0], torch.tensor(params0[0]))


def test_adabound_steps_let_no_warning_escape():
    model = nn.Linear(3, 2)
    optimizer = build("adabound", model.parameters(), weight_decay=5e-4)
    model(torch.randn(4, 3)).sum().backward()
    warn_always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # torch warns once per process otherwise: the check could pass by luck
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            optimizer.step()
            optimizer.step()
            unmuted = torch.zeros(2).add_(1.0, torch.ones(2))  # the same deprecated overload outside a step
    finally:
        torch.set_warn_always(warn_always)
    assert torch.equal(unmuted, torch.ones(2))
    assert [str(w.message).splitlines()[0] for w in caught] == ["This overload of add_ is deprecated:"]


def radam_reference(params, grads, lr, betas, eps, weight_decay):
    """LiyuanLucasLiu/RAdam (degenerated_to_sgd=True), as PROTOCOL.md §5 describes it."""
    beta1, beta2 = betas
    params = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    trajectory = []
    for t, step_grads in enumerate(grads, start=1):
        n_sma_max = 2 / (1 - beta2) - 1
        n_sma = n_sma_max - 2 * t * beta2 ** t / (1 - beta2 ** t)
        for i, g in enumerate(step_grads):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            params[i] = params[i] - lr * weight_decay * params[i]
            if n_sma >= 5:
                rectifier = math.sqrt((1 - beta2 ** t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma
                                      * n_sma_max / (n_sma_max - 2))
                params[i] = params[i] - lr * rectifier / (1 - beta1 ** t) * m[i] / (np.sqrt(v[i]) + eps)
            else:
                params[i] = params[i] - lr / (1 - beta1 ** t) * m[i]
        trajectory.append([p.copy() for p in params])
    return trajectory


def test_radam_first_steps_are_momentum_steps_like_the_reference():
    """Steps 1-5 (ρ_t = 1 … 4.996 with β2 = 0.999) are θ ← θ(1 − lr·wd) − lr·m/bc1 in both; rectified from t = 6."""
    grads, params0 = gradient_sequence(12), initial_params()
    hparams = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4)
    ours = follow("radam", params0, grads, **hparams)
    assert_same_trajectory(ours, radam_reference(params0, grads, **hparams), rtol=1e-13, atol=1e-15)
    m, previous = np.zeros_like(params0[0]), params0[0]
    for t in range(1, 7):
        m = 0.9 * m + 0.1 * grads[t - 1][0]
        momentum_step = previous * (1 - 1e-3 * 5e-4) - 1e-3 * m / (1 - 0.9 ** t)
        assert np.allclose(ours[t - 1][0], momentum_step, rtol=0, atol=1e-15) == (t <= 5)
        previous = ours[t - 1][0]


def test_adabelief_builds_and_steps_silently(capfd):
    model = nn.Linear(3, 2)
    optimizer = build("adabelief", model.parameters(), lr=1e-3, eps=1e-8, weight_decay=5e-4)
    model(torch.randn(4, 3)).sum().backward()
    before = model.weight.detach().clone()
    optimizer.step()
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert not torch.equal(model.weight, before)
    assert not optimizer.weight_decouple and not optimizer.rectify and optimizer.defaults["eps"] == 1e-8
