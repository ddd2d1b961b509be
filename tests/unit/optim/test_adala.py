"""AdaLA (optim/adala.py): against adabelief-pytorch (residual="ema"), against independent float64 versions of
ADALA.md's six steps written here from the equations (in numpy on a quadratic with data, and per element on cloned
tensors with every weight decay and foreach option), on a model with BatchNorm, foreach against per-tensor (the
kernels each picks, bit for bit), its defaults, channels_last state, and its errors.

Tiny tensors and a few steps: the whole file runs in seconds."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from adabelief_pytorch import AdaBelief
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

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


def run_twin(foreach, residual, dtype, steps=12, **hparams):
    """A few AdaLA steps on two param groups (coupled and decoupled decay) with fixed gradients."""
    generator = torch.Generator().manual_seed(5)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,)]
    params = [nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype)) for shape in shapes]
    grads = [[torch.randn(shape, generator=generator, dtype=dtype) for shape in shapes] for _ in range(2 * steps)]
    optimizer = AdaLA([{"params": params[:2]}, {"params": params[2:], "weight_decouple": True, "lr": 3e-3}],
                      lr=1e-2, weight_decay=1e-2, residual=residual, foreach=foreach, **hparams)
    for t in range(steps):
        for p, g in zip(params, grads[2 * t]):
            p.grad = g.clone()

        def closure():
            for p, g in zip(params, grads[2 * t + 1]):
                p.grad = g + 0.1 * p.detach()  # depends on θ', like a real gradient
        optimizer.step(closure if optimizer.requires_closure else None)
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_foreach_and_per_tensor_paths_agree_bit_for_bit_on_a_blended_residual(dtype):
    fast_params, fast = run_twin(None, "lookahead", dtype, lookahead_weight=0.5)
    loop_params, loop = run_twin(False, "lookahead", dtype, lookahead_weight=0.5)
    for a, b in zip(fast_params, loop_params):
        assert torch.equal(a, b) and torch.equal(fast.state[a]["exp_avg_var"], loop.state[b]["exp_avg_var"])
    assert not torch.equal(fast_params[0], run_twin(None, "lookahead", dtype)[0][0])  # not AdaLA's own step


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


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lookahead_weight_zero_is_the_ema_residual_bit_for_bit_without_a_closure(foreach, dtype):
    ema_params, ema = run_twin(foreach, "ema", dtype, steps=40)
    zero_params, zero = run_twin(foreach, "lookahead", dtype, steps=40, lookahead_weight=0.0)
    assert not zero.requires_closure and zero._backups == {}  # no θ copy: no look-ahead
    for a, b in zip(ema_params, zero_params):
        assert torch.equal(a, b)
        for key in ("exp_avg", "exp_avg_var"):
            assert torch.equal(ema.state[a][key], zero.state[b][key])
    assert not torch.equal(zero_params[0], run_twin(foreach, "lookahead", dtype, steps=0)[0][0])


def test_lookahead_weight_one_is_the_default_bit_for_bit():
    default_params, _ = run_twin(None, "lookahead", torch.float32)
    for weight in (1, 1.0):
        weighted_params, _ = run_twin(None, "lookahead", torch.float32, lookahead_weight=weight)
        assert all(torch.equal(a, b) for a, b in zip(default_params, weighted_params))
    blended_params, _ = run_twin(None, "lookahead", torch.float32, lookahead_weight=0.999)
    assert not torch.equal(default_params[0], blended_params[0])


def test_a_checkpoint_from_before_lookahead_weight_resumes_as_plain_adala():
    """A state dict whose param groups have no lookahead_weight (a checkpoint written before it existed) loads as
    w = 1, plain AdaLA, whatever the optimizer it is loaded into was built with."""
    params, optimizer = run_twin(None, "lookahead", torch.float64, steps=3)
    old = copy.deepcopy(optimizer.state_dict())
    for group in old["param_groups"]:
        del group["lookahead_weight"]
    resumed = AdaLA([{"params": params[:2]}, {"params": params[2:], "weight_decouple": True, "lr": 3e-3}],
                    lr=1e-2, weight_decay=1e-2, lookahead_weight=0.5)
    resumed.load_state_dict(old)
    assert [group["lookahead_weight"] for group in resumed.param_groups] == [1.0, 1.0] and resumed.requires_closure


def test_lookahead_weight_zero_asks_the_trainer_for_no_lookahead_pass():
    """Through the trainer: AdaLA at w = 0 is stepped without a closure (one gradient evaluation per step, no
    look-ahead loss), and trains exactly as residual=ema does."""
    from adala_bench.settings import OptimizerSpec, Schedule
    from adala_bench.trainer import Progress, Trainer
    from helpers import Relay, assert_same, final_state  # noqa: I001 (helpers: tests/ on sys.path via conftest)

    def fit(**hparams):
        task = Relay(seed=3)
        spec = OptimizerSpec("adala", {"lr": 1e-2, "weight_decay": 1e-2, **hparams})
        trainer = Trainer(task, {"a": spec, "b": spec}, epochs=2, schedule=Schedule(), device=torch.device("cpu"))
        for progress, _, _ in trainer.fit(Progress()):
            pass
        return task, trainer, progress

    ema_task, ema, ema_progress = fit(residual="ema")
    zero_task, zero, zero_progress = fit(lookahead_weight=0.0)
    half_task, _, half_progress = fit(lookahead_weight=0.5)
    moves = 2 * (5 + 3)  # a steps on each of 5 batches, b on every other one, for 2 epochs
    assert zero_progress.grad_evals == ema_progress.grad_evals == moves and len(zero_task.seen) == moves
    assert half_progress.grad_evals == len(half_task.seen) == 2 * moves  # 0 < w: the look-ahead pass is there
    zero_state, ema_state = final_state(zero, zero_progress), final_state(ema, ema_progress)
    assert_same(zero_state["models"], ema_state["models"])
    for player in ("a", "b"):  # the step's state; the hyperparameters they were built from differ in name only
        assert_same(*(state["optimizers"][player]["state"]["state"] for state in (zero_state, ema_state)))
    assert_same(zero_state["progress"], ema_state["progress"])  # every metric but the wall times


@pytest.mark.parametrize("weight", [1.5, -0.1, float("nan"), "0.5", True])
def test_a_lookahead_weight_outside_0_1_is_refused_naming_the_key(weight):
    with pytest.raises(ValueError, match=r"^lookahead_weight=.* is not allowed; it must be a number in \[0, 1\]$"):
        AdaLA([nn.Parameter(torch.ones(2))], lookahead_weight=weight)


def test_a_lookahead_weight_with_the_ema_residual_or_per_group_is_refused():
    with pytest.raises(ValueError, match="lookahead_weight=0.5 is not allowed with residual='ema'"):
        AdaLA([nn.Parameter(torch.ones(2))], residual="ema", lookahead_weight=0.5)
    with pytest.raises(ValueError, match="invalid lookahead_weight 0.5 in a param group"):
        AdaLA([{"params": [nn.Parameter(torch.ones(2))], "lookahead_weight": 0.5}])


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



# ---------------------------------------------------------------------------------------------------------------
# Against a float64 reference of ADALA.md per element, on tensors of several shapes

# different shapes, so that a mix-up of list positions shows (as a wrong value or a shape error)
PROBLEM_SHAPES = [(3, 4), (5,), (2, 1, 3), (1,)]
DTYPE = torch.float64


def randn_list(generator: torch.Generator, scale: float = 1.0) -> list[torch.Tensor]:
    return [scale * torch.randn(shape, generator=generator, dtype=DTYPE) for shape in PROBLEM_SHAPES]


def problem(steps: int, seed: int = 0):
    """θ0, the gradients g_t entered with, and the look-ahead loss's data: the closure's loss is
    Σ_i Σ ½ c_i θ_i² + n_{t,i} θ_i, so its gradient at θ' is c_i θ'_i + n_{t,i} (it depends on θ')."""
    generator = torch.Generator().manual_seed(seed)
    theta0 = randn_list(generator)
    grads = [randn_list(generator) for _ in range(steps)]
    curvatures = [0.5 + i for i in range(len(PROBLEM_SHAPES))]
    next_terms = [randn_list(generator) for _ in range(steps)]
    return theta0, grads, curvatures, next_terms


def adala_reference(theta0, grads, curvatures, next_terms, *, lr, betas, eps, weight_decay, weight_decouple,
                    residual, lookahead_weight=1.0):
    """ADALA.md: AdaBelief 0.0.5 (residual "ema") or the six look-ahead steps, per tensor, in float64, with step 5's
    residual g − (w·g' + (1 − w)·m) for lookahead_weight w. Decoupled decay θ ← θ(1 − αλ) comes first (as
    AdaBelief's), so the tentative step starts from the decayed θ, and neither g nor g' then has a λθ term."""
    w = lookahead_weight
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
                residuals.append(g[i] - (w * g_next + (1 - w) * m[i]))
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
        for i in range(len(PROBLEM_SHAPES)):
            for name, a, b in (("theta", params[i], params_ref[i]), ("m", m[i], m_ref[i]), ("s", s[i], s_ref[i])):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=lambda text: f"step {t}, tensor {i}, "
                                                                                       f"{name}: {text}")
    assert all(not torch.allclose(a, b) for a, b in zip(ours[-1][0], theta0))  # every tensor moved


@pytest.mark.parametrize("foreach_kwargs", FOREACH_OPTIONS)
@pytest.mark.parametrize("lookahead_weight", [0.25, 0.7])
@pytest.mark.parametrize("weight_decay, weight_decouple", DECAYS)
def test_adala_blended_residual_matches_the_independent_reference(foreach_kwargs, lookahead_weight, weight_decay,
                                                                 weight_decouple):
    """A lookahead_weight between 0 and 1: step 5's residual is g − (w·g' + (1 − w)·m)."""
    theta0, grads, curvatures, next_terms = problem(6)
    hparams = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, weight_decouple=weight_decouple,
                   residual="lookahead", lookahead_weight=lookahead_weight)
    ours = run_adala(theta0, grads, curvatures, next_terms, foreach_kwargs, **hparams)
    expected = adala_reference(theta0, grads, curvatures, next_terms, **hparams)
    ends = {w: adala_reference(theta0, grads, curvatures, next_terms, **(hparams | {"lookahead_weight": w}))[-1]
            for w in (0.0, 1.0)}
    for t, ((params, m, s), (params_ref, m_ref, s_ref)) in enumerate(zip(ours, expected), start=1):
        for i in range(len(PROBLEM_SHAPES)):
            for name, a, b in (("theta", params[i], params_ref[i]), ("m", m[i], m_ref[i]), ("s", s[i], s_ref[i])):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=lambda text: f"step {t}, tensor {i}, "
                                                                                       f"{name}: {text}")
    for end in ends.values():  # the blend is neither end
        assert not torch.allclose(ours[-1][2][0], end[2][0], rtol=1e-6, atol=0)


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


def ops_of_one_step(**hparams) -> OpLog:
    """The aten ops of one AdaLA step on problem(1) (its closure only where the residual looks ahead)."""
    theta0, grads, curvatures, next_terms = problem(1)
    params = [nn.Parameter(p.clone()) for p in theta0]
    optimizer = AdaLA(params, lr=1e-2, weight_decay=1e-2, **hparams)
    for p, g in zip(params, grads[0]):
        p.grad = g.clone()

    def closure():
        for p, n in zip(params, next_terms[0]):
            p.grad = n.clone()

    log = OpLog()
    with log:
        optimizer.step(closure if hparams.get("residual", "lookahead") == "lookahead" else None)
    return log


@pytest.mark.parametrize("residual", ["lookahead", "ema"])
@pytest.mark.parametrize("foreach_kwargs, expect_foreach", [({}, True), ({"foreach": True}, True),
                                                             ({"foreach": False}, False)])
def test_adala_foreach_option_picks_the_kernels(residual, foreach_kwargs, expect_foreach):
    """foreach=False runs a per-tensor loop and no torch._foreach_* kernel; True and the default use them."""
    log = ops_of_one_step(residual=residual, **foreach_kwargs)
    foreach_ops = [name for name in log.names if name.startswith("_foreach_")]
    assert bool(foreach_ops) == expect_foreach, log.names
    if not expect_foreach:
        assert "lerp_" in log.names and "addcdiv_" in log.names  # the same update, one tensor at a time


@pytest.mark.parametrize("lookahead_weight, blends", [(1, 0), (1.0, 0), (0.5, 1)])
def test_adala_blends_the_residual_only_below_weight_one(lookahead_weight, blends):
    """At w = 1 a step is today's AdaLA step, op for op (one lerp: the first moment's); below 1 one more lerp blends
    in g − m."""
    log = ops_of_one_step(lookahead_weight=lookahead_weight)
    assert log.names.count("_foreach_lerp_") == 1 + blends, log.names


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


def test_adala_defaults_are_adabelief_0_0_5s():
    """AdaLA(params) without arguments: AdaBelief 0.0.5's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight
    decay, coupled), the look-ahead residual, and foreach left to torch."""
    group = AdaLA([nn.Parameter(torch.zeros(2))]).param_groups[0]
    assert {key: group[key] for key in ("lr", "betas", "eps", "weight_decay", "weight_decouple", "residual",
                                        "foreach")} == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                                                            weight_decouple=False, residual="lookahead", foreach=None)
