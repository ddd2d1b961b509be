"""Fromage (Bernstein et al., 2020) from its update equations (PROTOCOL.md §5). No state, no momentum, no decay.

Per tensor:
  θ ← θ − α (‖θ‖/‖g‖) g    if ‖θ‖ > 0 and ‖g‖ > 0, else θ − α g
  θ ← θ / sqrt(1 + α²)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from .common import check_hparams, group_tensors, params_with_grad


class Fromage(Optimizer):
    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float) -> None:
        check_hparams(lr=lr)
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = params_with_grad(group, "Fromage")
            for _, (same_params, grads) in group_tensors([params, [p.grad for p in params]]):
                self._update(group["lr"], same_params, grads)
        return loss

    @staticmethod
    def _update(lr: float, params: list[Tensor], grads: list[Tensor]) -> None:
        param_norms = torch.stack(torch._foreach_norm(params))
        grad_norms = torch.stack(torch._foreach_norm(grads))
        # per-tensor step sizes stay on the device: no host sync
        ratios = torch.where((param_norms > 0) & (grad_norms > 0), param_norms / grad_norms, 1.0)
        torch._foreach_addcmul_(params, grads, list((ratios * -lr).unbind()))
        torch._foreach_div_(params, math.sqrt(1 + lr * lr))
