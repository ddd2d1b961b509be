"""M-SVAG as the AdaBelief experiments run it (PROTOCOL.md §5, AB's optimizers/MSVAG.py).

Per step t (bc1 = 1 − β1^t, bc2 = 1 − β2^t):
  g ← g + λθ                          (coupled L2, written into p.grad)
  m ← β1 m + (1 − β1) g
  v ← β1 v + (1 − β1) g²              (β1 here too, as the reference does)
  m̂ = m / bc1,  v̂ = v / bc2          (bc2 with a β1 average: v̂ is inflated early, as in the reference)
  ρ = (1 − β1)/(1 + β1) · (1 + β1^t)/(1 − β1^t)
  s = (v̂ − m̂²)/(1 − ρ),  γ = m̂² / (m̂² + ρ s), NaN → 0
  θ ← θ − α γ m̂
At t = 1, ρ = 1: s is ±inf or NaN, γ = 0, and θ does not move. eps is accepted and unused, as in the reference.

With k = ρ/(1 − ρ), a = 1 − k and b = k bc1²/bc2 the same update is α γ m̂ = α/(b bc1) · m / (b/γ) with
b/γ = v/m² + a/b, which the foreach path computes in a reused work buffer, without temporaries (equal up to
rounding). m² is computed, as the reference computes m̂²: where it is 0 (m = 0, or tiny gradients whose square
underflows in float32) v/m² is inf or 0/0 = NaN, set to inf, so γ = 0 and θ stays, as the reference's
γ = 0/(ρ s) = 0 or 0/0 → 0 gives. (Dividing by m twice instead would give 0/m/m = 0 there, and the step m/0 = inf.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from .common import check_hparams, group_tensors, params_with_grad


class MSVAG(Optimizer):
    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0) -> None:
        check_hparams(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self._works: dict[Tensor, Tensor] = {}  # per-parameter scratch reused every step; not state to save

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._works = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for step, tensors in self._batches(group):
                _update(group, step, *tensors)
        return loss

    def _batches(self, group: dict[str, Any]) -> list[tuple[int, list[list[Tensor]]]]:
        """Advance the step count and bucket tensors by (device, dtype, step), whose scalars are shared."""
        params = params_with_grad(group, "MSVAG")
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            if p not in self._works:
                self._works[p] = torch.empty_like(p, memory_format=torch.preserve_format)
        states = [self.state[p] for p in params]
        tensors = [params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                   [self._works[p] for p in params]]
        return group_tensors(tensors, [s["step"] for s in states])


def _update(group: dict[str, Any], step: int, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
            exp_avg_sqs: list[Tensor], works: list[Tensor]) -> None:
    lr, weight_decay, (beta1, beta2) = group["lr"], group["weight_decay"], group["betas"]
    if weight_decay != 0:
        torch._foreach_add_(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta1)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta1)

    bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
    rho = (1 - beta1) / (1 + beta1) * (1 + beta1 ** step) / bc1
    if rho == 1.0:
        return  # s = ±inf or NaN, so γ = 0 (the first step, or β1 = 0)
    k = rho / (1 - rho)
    a, b = 1 - k, k * bc1 ** 2 / bc2
    for work, exp_avg_sq, exp_avg in zip(works, exp_avg_sqs, exp_avgs):  # no foreach op writes into given tensors
        torch.mul(exp_avg, exp_avg, out=work)
        torch.div(exp_avg_sq, work, out=work)
    torch._foreach_add_(works, a / b)  # v/m² + a/b = b/γ
    for work in works:
        torch.nan_to_num_(work, nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
    torch._foreach_addcdiv_(params, exp_avgs, works, value=-lr / (b * bc1))
