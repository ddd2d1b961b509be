"""AdaLA against adabelief-pytorch (residual="ema"), against an independent float64 version of ADALA.md's six steps,
on a model with BatchNorm, foreach against per-tensor, and its errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from adabelief_pytorch import AdaBelief
from torch import nn

from adala_bench.optim import AdaLA
from adala_bench.optim import adala as adala_module

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def gradient_sequence(steps: int, seed: int = 0) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(shape, generator=generator, dtype=torch.float64) for shape in SHAPES] for _ in range(steps)]


def fresh_params(seed: int = 1) -> list[nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64)) for shape in SHAPES]


@pytest.mark.parametrize("weight_decay, weight_decouple", [(0.0, False), (5e-4, False), (1e-2, False), (1e-2, True)])
def test_ema_residual_follows_adabelief_step_for_step(weight_decay, weight_decouple):
    grads = gradient_sequence(250)
    ours, theirs = fresh_params(), fresh_params()
    hparams = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, weight_decouple=weight_decouple)
    adala = AdaLA(ours, residual="ema", **hparams)
    adabelief = AdaBelief(theirs, rectify=False, amsgrad=False, fixed_decay=False, print_change_log=False, **hparams)
    for step_grads in grads:
        for params, optimizer in ((ours, adala), (theirs, adabelief)):
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            optimizer.step()
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(ours, theirs):  # the stored belief includes ε as the package keeps it
        torch.testing.assert_close(adala.state[a]["exp_avg_var"], adabelief.state[b]["exp_avg_var"],
                                   rtol=1e-12, atol=0)
    assert not torch.equal(ours[0], fresh_params()[0])


def quadratic_batches(count: int = 5, dim: int = 6, rows: int = 4, seed: int = 3):
    """f_i(θ) = ½‖A_i θ − b_i‖² with a fixed list of minibatches (A_i, b_i)."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(rows, dim)), rng.normal(size=rows)) for _ in range(count)]


def six_steps_reference(batches, theta0, steps, lookahead, lr, betas, eps, weight_decay):
    """ADALA.md's six steps, written out plainly in numpy float64 (coupled L2)."""
    beta1, beta2 = betas
    theta, m, s = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
    trajectory = []
    for t in range(1, steps + 1):
        i = (t - 1) % len(batches)
        j = i if lookahead == "same" else (i + 1) % len(batches)
        A, b = batches[i]
        g = A.T @ (A @ theta - b) + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
        s_tentative = beta2 * s + (1 - beta2) * (g - m) ** 2 + eps
        theta_tentative = theta - lr / bc1 * m / (np.sqrt(s_tentative) / np.sqrt(bc2) + eps)
        A2, b2 = batches[j]
        g_lookahead = A2.T @ (A2 @ theta_tentative - b2) + weight_decay * theta_tentative
        s = beta2 * s + (1 - beta2) * (g - g_lookahead) ** 2 + eps
        theta = theta - lr / bc1 * m / (np.sqrt(s) / np.sqrt(bc2) + eps)
        trajectory.append(theta.copy())
    return trajectory


@pytest.mark.parametrize("lookahead", ["same", "next"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_lookahead_equals_independent_six_steps_on_a_quadratic(lookahead, weight_decay):
    batches = quadratic_batches()
    hparams = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    theta0 = np.random.default_rng(4).normal(size=6)
    expected = six_steps_reference(batches, theta0, 240, lookahead, **hparams)

    # θ split over two tensors, as a model's parameters are
    head, tail = (nn.Parameter(torch.tensor(part)) for part in (theta0[:4], theta0[4:]))
    optimizer = AdaLA([head, tail], **hparams)
    tensors = [(torch.tensor(A), torch.tensor(b)) for A, b in batches]

    def loss_on(i: int) -> torch.Tensor:
        optimizer.zero_grad()
        A, b = tensors[i]
        loss = 0.5 * (A @ torch.cat([head, tail]) - b).square().sum()
        loss.backward()
        return loss

    for t, theta in enumerate(expected):
        i = t % len(batches)
        j = i if lookahead == "same" else (i + 1) % len(batches)
        loss_on(i)
        returned = optimizer.step(lambda: loss_on(j))
        assert returned is not None and returned.ndim == 0  # the closure's loss comes back
        np.testing.assert_allclose(torch.cat([head, tail]).detach().numpy(), theta, rtol=1e-12, atol=1e-12)
    assert np.abs(expected[-1] - theta0).max() > 0.1  # it did travel


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_lookahead_moves_the_models_own_parameters_and_restores_theta_exactly(monkeypatch):
    torch.manual_seed(0)
    model = BatchNormNet().train()
    x, x_next = torch.randn(16, 5), torch.randn(16, 5)
    y, y_next = torch.randint(0, 3, (16,)), torch.randint(0, 3, (16,))
    optimizer = AdaLA(model.parameters(), lr=1e-2, weight_decay=5e-4)
    assert all(a is b for a, b in zip(optimizer.param_groups[0]["params"], model.parameters()))

    # restored θ as the real update finds it: recorded where that update starts
    seen_at_real_update: list[list[torch.Tensor]] = []
    commit = adala_module._commit_belief_and_descend

    def recording_commit(b, residuals):
        seen_at_real_update.append([p.detach().clone() for p in b.params])
        commit(b, residuals)

    monkeypatch.setattr(adala_module, "_commit_belief_and_descend", recording_commit)

    for _ in range(3):  # state beyond the first step
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        buffers_before = {name: buffer.clone() for name, buffer in model.named_buffers()}
        theta = [p.detach().clone() for p in model.parameters()]
        seen_in_closure: list[list[torch.Tensor]] = []
        buffers_in_closure: list[dict[str, torch.Tensor]] = []

        def closure() -> torch.Tensor:
            saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
            seen_in_closure.append([p.detach().clone() for p in model.parameters()])
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_next), y_next)
            loss.backward()
            buffers_in_closure.append({name: buffer.clone() for name, buffer in model.named_buffers()})
            for name, buffer in model.named_buffers():  # the trainer's job: undo the look-ahead's BN update
                buffer.copy_(saved[name])
            return loss

        seen_at_real_update.clear()
        optimizer.step(closure)

        assert all(not torch.equal(a, b) for a, b in zip(seen_in_closure[0], theta))  # closure ran at θ' ≠ θ
        assert all(torch.equal(a, b) for a, b in zip(seen_at_real_update[0], theta))  # θ restored bit for bit
        assert all(not torch.equal(p, t) for p, t in zip(model.parameters(), theta))  # the model moved
        assert not torch.equal(buffers_in_closure[0]["body.1.running_mean"], buffers_before["body.1.running_mean"])
        for name, buffer in model.named_buffers():  # the optimizer itself leaves buffers alone
            assert torch.equal(buffer, buffers_before[name])

    # the real update from θ_t, reconstructed in float64 from the committed state
    beta1, beta2 = optimizer.defaults["betas"]
    eps, lr = optimizer.defaults["eps"], optimizer.defaults["lr"]
    for p, t in zip(model.parameters(), theta):
        state = optimizer.state[p]
        step = state["step"]
        m, s = state["exp_avg"].double(), state["exp_avg_var"].double()
        update = lr / (1 - beta1 ** step) * m / (s.sqrt() / (1 - beta2 ** step) ** 0.5 + eps)
        torch.testing.assert_close(p.double(), t.double() - update, rtol=0, atol=1e-6)


def run_twin(foreach, residual, dtype, steps=12):
    """A few AdaLA steps on two param groups (coupled and decoupled decay) with fixed gradients."""
    generator = torch.Generator().manual_seed(5)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,)]
    params = [nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype)) for shape in shapes]
    grads = [[torch.randn(shape, generator=generator, dtype=dtype) for shape in shapes] for _ in range(2 * steps)]
    optimizer = AdaLA([{"params": params[:2]}, {"params": params[2:], "weight_decouple": True, "lr": 3e-3}],
                      lr=1e-2, weight_decay=1e-2, residual=residual, foreach=foreach)
    for t in range(steps):
        for p, g in zip(params, grads[2 * t]):
            p.grad = g.clone()

        def closure():
            for p, g in zip(params, grads[2 * t + 1]):
                p.grad = g + 0.1 * p.detach()  # depends on θ', like a real gradient
        optimizer.step(closure if residual == "lookahead" else None)
    return params, optimizer


@pytest.mark.parametrize("residual", ["lookahead", "ema"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_foreach_and_per_tensor_paths_agree_bit_for_bit(residual, dtype):
    fast_params, fast = run_twin(None, residual, dtype)
    loop_params, loop = run_twin(False, residual, dtype)
    for a, b in zip(fast_params, loop_params):
        assert torch.equal(a, b)
        for key in ("exp_avg", "exp_avg_var"):
            assert torch.equal(fast.state[a][key], loop.state[b][key])
    assert not torch.equal(fast_params[0], run_twin(None, residual, dtype, steps=0)[0][0])


def test_a_parameter_the_closure_leaves_without_gradient_counts_as_zero_gradient():
    def one_step(closure_sets_zeros: bool):
        used, unused = nn.Parameter(torch.ones(3)), nn.Parameter(torch.full((2,), 2.0))
        optimizer = AdaLA([used, unused], lr=0.1, weight_decay=1e-2)
        used.grad, unused.grad = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.3, -0.1])
        lookahead_grads = []

        def closure():
            optimizer.zero_grad()
            (used * used).sum().backward()
            lookahead_grads.append(used.grad.clone())
            if closure_sets_zeros:
                unused.grad = torch.zeros(2)
        optimizer.step(closure)
        return used, unused, lookahead_grads[0]

    used, unused, lookahead_grad = one_step(closure_sets_zeros=False)
    used_zeros, unused_zeros, _ = one_step(closure_sets_zeros=True)
    assert torch.equal(used, used_zeros) and torch.equal(unused, unused_zeros)
    assert not torch.equal(unused, torch.full((2,), 2.0))
    assert torch.equal(used.grad, lookahead_grad) and unused.grad is None  # after step: the closure's gradients


def test_step_without_closure_raises_for_lookahead_only():
    p = nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="closure"):
        AdaLA([p]).step()
    assert AdaLA([p]).requires_closure and not AdaLA([p], residual="ema").requires_closure
    AdaLA([p], residual="ema").step()
    assert not torch.equal(p, torch.ones(3))


@pytest.mark.parametrize("hparams, named", [
    (dict(lr=-1e-3), "-0.001"), (dict(eps=-1.0), "-1.0"), (dict(betas=(1.0, 0.999)), "1.0"),
    (dict(betas=(0.9, -0.1)), "-0.1"), (dict(weight_decay=-5e-4), "-0.0005"), (dict(residual="momentum"), "momentum"),
])
def test_bad_hyperparameters_raise_naming_the_value(hparams, named):
    with pytest.raises(ValueError, match=named):
        AdaLA([nn.Parameter(torch.ones(2))], **hparams)


def test_param_groups_cannot_mix_residuals():
    with pytest.raises(ValueError, match="'ema'"):
        AdaLA([{"params": [nn.Parameter(torch.ones(2))], "residual": "ema"}])


def test_deepcopy_keeps_the_residual_and_rebuilds_scratch():
    p = nn.Parameter(torch.ones(3))
    optimizer = AdaLA([p], residual="ema")
    p.grad = torch.ones(3)
    optimizer.step()
    clone = copy.deepcopy(optimizer)
    assert not clone.requires_closure and clone._works == {}
