"""AdaLA: AdaBelief whose belief residual is taken against a look-ahead gradient (ADALA.md).

One step, entered with p.grad = g_t (α lr, λ weight decay, bc1 = 1 − β1^t, bc2 = 1 − β2^t):
  1. g ← g_t + λθ;  m ← β1 m + (1 − β1) g
  2. tentative: s' = β2 s + (1 − β2)(g − m)² + ε,  θ' = θ − (α/bc1) · m / (sqrt(s')/sqrt(bc2) + ε)
  3. closure() at θ' gives g' = ∇f(θ') + λθ'
  4. θ is restored bit for bit from a copy
  5. s ← β2 s + (1 − β2)(g − (w·g' + (1 − w)·m))² + ε,  w = lookahead_weight (1: the residual g − g')
  6. θ ← θ − (α/bc1) · m / (sqrt(s)/sqrt(bc2) + ε)
residual="ema" puts (g − m) in step 5 and skips steps 2-4: that is adabelief-pytorch 0.0.5
(weight_decouple=False, rectify=False, amsgrad=False). lookahead_weight=0 is that same step (no closure), and a
weight in between blends the two residuals, as the paper's §7 proposes: w(g − g') + (1 − w)(g − m).

The arithmetic is regrouped to save passes over memory; results differ from the lines above only by rounding:
- ε enters the stored s first (s ← β2 s + ε), so the tentative s' and the new s are each one addcmul away;
- (α/bc1) · m / (sqrt(s)/sqrt(bc2) + ε) is computed as (α sqrt(bc2)/bc1) · m / (sqrt(s) + ε sqrt(bc2)).
Each parameter has a work buffer (and, for the look-ahead, the copy of θ) reused every step, so a step allocates
nothing: on CPU fresh temporaries of a whole model cost more in page faults than the arithmetic on them.

After a look-ahead step p.grad holds the closure's gradient (without the L2 term), as after LBFGS.step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from .common import HparamError, check_hparams, group_tensors, is_number, params_with_grad

RESIDUALS = ("lookahead", "ema")
# Keys every param group must share with the optimizer: they decide whether a step takes the closure.
SHARED_KEYS = ("residual", "lookahead_weight")


_OP_NAMES = ("add_", "addcdiv_", "addcmul_", "copy_", "lerp_", "mul_", "sqrt_", "sub_")


def _per_tensor(name: str) -> Callable[..., None]:
    """Tensor.<name> applied along lists: the loop that torch._foreach_<name> stands for."""
    def apply(tensors: list[Tensor], *others: Any, **kwargs: Any) -> None:
        for i, tensor in enumerate(tensors):
            getattr(tensor, name)(*(other[i] if isinstance(other, list) else other for other in others), **kwargs)
    return apply


def _into(name: str) -> Callable[..., None]:
    """torch.<name>(..., out=outs[i]) along lists: torch has no foreach op that writes into given tensors,
    and a copy then an in-place op would cost one more pass over memory."""
    def apply(outs: list[Tensor], *inputs: Any, **kwargs: Any) -> None:
        for i, out in enumerate(outs):
            getattr(torch, name)(*(x[i] if isinstance(x, list) else x for x in inputs), out=out, **kwargs)
    return apply


_INTO = {f"{name}_into": _into(name) for name in ("addcmul", "sqrt", "sub")}
FOREACH_OPS = SimpleNamespace(**{name: getattr(torch, f"_foreach_{name}") for name in _OP_NAMES}, **_INTO)
PER_TENSOR_OPS = SimpleNamespace(**{name: _per_tensor(name) for name in _OP_NAMES}, **_INTO)


@dataclass
class _Batch:
    """The tensors of one param group that share device, dtype and step count, hence every scalar."""
    group: dict[str, Any]
    step: int
    ops: SimpleNamespace
    params: list[Tensor] = field(default_factory=list)
    grads: list[Tensor] = field(default_factory=list)
    exp_avgs: list[Tensor] = field(default_factory=list)
    exp_avg_vars: list[Tensor] = field(default_factory=list)
    works: list[Tensor] = field(default_factory=list)
    backups: list[Tensor] = field(default_factory=list)

    @property
    def step_size(self) -> float:
        beta1, beta2 = self.group["betas"]
        return self.group["lr"] * math.sqrt(1 - beta2 ** self.step) / (1 - beta1 ** self.step)

    @property
    def scaled_eps(self) -> float:
        return self.group["eps"] * math.sqrt(1 - self.group["betas"][1] ** self.step)


def _decay_and_average(b: _Batch) -> None:
    """Step 1 and the β2 s + ε part of s: L2 term (or decoupled decay), first moment."""
    ops, group = b.ops, b.group
    beta1, beta2 = group["betas"]
    if group["weight_decay"] != 0:
        if group["weight_decouple"]:
            ops.mul_(b.params, 1 - group["lr"] * group["weight_decay"])
        else:
            ops.add_(b.grads, b.params, alpha=group["weight_decay"])  # into p.grad, as AdaBelief does
    ops.lerp_(b.exp_avgs, b.grads, 1 - beta1)
    ops.mul_(b.exp_avg_vars, beta2)
    ops.add_(b.exp_avg_vars, group["eps"])


def _descend(b: _Batch) -> None:
    """θ ← θ − (α sqrt(bc2)/bc1) · m / (sqrt(s) + ε sqrt(bc2)), where the work buffers hold sqrt(s)."""
    b.ops.add_(b.works, b.scaled_eps)
    b.ops.addcdiv_(b.params, b.exp_avgs, b.works, value=-b.step_size)


def _commit_belief_and_descend(b: _Batch, residuals: list[Tensor]) -> None:
    """s ← (β2 s + ε) + (1 − β2) r², then the update with the new s."""
    b.ops.addcmul_(b.exp_avg_vars, residuals, residuals, value=1 - b.group["betas"][1])
    b.ops.sqrt_into(b.works, b.exp_avg_vars)
    _descend(b)


def _ema_step(b: _Batch) -> None:
    """AdaBelief: residual g − m."""
    b.ops.sub_into(b.works, b.grads, b.exp_avgs)
    _commit_belief_and_descend(b, b.works)


def _tentative_step(b: _Batch) -> None:
    """Step 2 and the saving half of step 4: keep θ, move to θ' using s' (not stored)."""
    b.ops.copy_(b.backups, b.params)
    b.ops.sub_into(b.works, b.grads, b.exp_avgs)
    b.ops.addcmul_into(b.works, b.exp_avg_vars, b.works, b.works, value=1 - b.group["betas"][1])
    b.ops.sqrt_(b.works)
    _descend(b)


def _lookahead_step(b: _Batch, lookahead_grads: list[Tensor]) -> None:
    """Steps 4-6, with p = θ' on entry: residual g − g' (blended with g − m below weight 1), restore θ, new s, real
    update."""
    weight = b.group["lookahead_weight"]
    if weight != 1:
        b.ops.sub_into(b.works, b.grads, b.exp_avgs)  # g − m, while g is still there (the work buffer is free now)
    residuals = b.grads  # g is not needed after this, so its buffer takes the residual
    b.ops.sub_(residuals, lookahead_grads)
    if b.group["weight_decay"] != 0 and not b.group["weight_decouple"]:
        b.ops.add_(residuals, b.params, alpha=-b.group["weight_decay"])  # g' includes λθ'
    if weight != 1:
        b.ops.lerp_(residuals, b.works, 1 - weight)  # w(g − g') + (1 − w)(g − m) = g − (w·g' + (1 − w)·m)
    b.ops.copy_(b.params, b.backups)
    _commit_belief_and_descend(b, residuals)


def check_lookahead_weight(weight: Any, residual: str) -> None:
    """HparamError naming lookahead_weight unless it is a number in [0, 1], and 1 where the residual is ema."""
    if not (is_number(weight) and 0 <= weight <= 1):
        raise HparamError(f"lookahead_weight={weight!r} is not allowed; it must be a number in [0, 1]")
    if residual == "ema" and weight != 1:
        raise HparamError(f"lookahead_weight={weight!r} is not allowed with residual='ema' (which is "
                          "lookahead_weight=0); give one of them")


class AdaLA(Optimizer):
    """AdaBelief with a look-ahead belief residual (g − g'); see the module docstring.

    step(closure) needs a closure (residual="lookahead" and lookahead_weight > 0) that zeroes the gradients,
    evaluates the loss at the current parameters and back-propagates it; the caller picks its minibatch and handles
    model buffers.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 weight_decouple: bool = False, residual: str = "lookahead", lookahead_weight: float = 1.0,
                 foreach: bool | None = None) -> None:
        check_hparams(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if residual not in RESIDUALS:
            raise ValueError(f"invalid residual {residual!r}: allowed: {', '.join(RESIDUALS)}")
        check_lookahead_weight(lookahead_weight, residual)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        weight_decouple=weight_decouple, residual=residual, lookahead_weight=lookahead_weight,
                        foreach=foreach)
        super().__init__(params, defaults)
        self._init_scratch()

    def _init_scratch(self) -> None:
        # per-parameter scratch, reused every step so that steps allocate nothing; not state to save
        self._works: dict[Tensor, Tensor] = {}
        self._backups: dict[Tensor, Tensor] = {}  # θ during the closure

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # a checkpoint written before lookahead_weight existed: plain AdaLA
            group.setdefault("lookahead_weight", 1.0)
        self._init_scratch()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        for key in SHARED_KEYS:
            value = param_group.get(key, self.defaults[key])
            if value != self.defaults[key]:
                raise ValueError(f"invalid {key} {value!r} in a param group: all groups must use "
                                 f"the optimizer's {key} {self.defaults[key]!r}")
        super().add_param_group(param_group)

    @property
    def requires_closure(self) -> bool:
        return self.defaults["residual"] == "lookahead" and self.defaults["lookahead_weight"] != 0

    def _batches(self, group: dict[str, Any]) -> list[_Batch]:
        """Start the step of every parameter with a gradient and bucket the tensors by shared scalars."""
        ops = PER_TENSOR_OPS if group["foreach"] is False else FOREACH_OPS
        params = params_with_grad(group, "AdaLA")
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_var"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
        states = [self.state[p] for p in params]
        tensors = [params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_var"] for s in states],
                   [self._scratch(self._works, p) for p in params]]
        if self.requires_closure:
            tensors.append([self._scratch(self._backups, p) for p in params])
        return [_Batch(group, step, ops, *lists) for step, lists in group_tensors(tensors, [s["step"] for s in states])]

    @staticmethod
    def _scratch(buffers: dict[Tensor, Tensor], p: Tensor) -> Tensor:
        if p not in buffers:
            buffers[p] = torch.empty_like(p, memory_format=torch.preserve_format)
        return buffers[p]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if self.requires_closure and closure is None:
            raise RuntimeError("AdaLA(residual='lookahead', lookahead_weight > 0) needs a closure: step(closure), "
                               "where closure zeroes the gradients, computes the loss and calls backward")
        loss = None
        if not self.requires_closure:
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for b in (b for group in self.param_groups for b in self._batches(group)):
                _decay_and_average(b)
                _ema_step(b)
            return loss

        batches = [b for group in self.param_groups for b in self._batches(group)]
        if not batches:  # no parameter has a gradient: a no-op, as torch.optim's steps are (and no look-ahead)
            return None
        for b in batches:
            _decay_and_average(b)
            _tentative_step(b)
            for p in b.params:
                p.grad = None  # the closure's backward fills fresh tensors; b.grads keeps g
        with torch.enable_grad():
            loss = closure()
        for b in batches:
            lookahead_grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in b.params]
            _lookahead_step(b, lookahead_grads)
        return loss
