"""What the optimizers of this package share: typed argument checks (torch.optim's ranges), and the bucketing of
tensors that share every scalar of an update (so each bucket is one foreach call)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor
from torch.optim import Optimizer


class HparamError(ValueError):
    """A hyperparameter of the wrong type or out of range; the message starts with its name: `lr='abc' is not ...`."""


def is_number(value) -> bool:
    """An int or a float, not a bool (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_hparams(*, lr: float | None = None, betas: Iterable[float] | None = None,
                  eps: float | None = None, weight_decay: float | None = None) -> None:
    """Raise HparamError naming the first value of the wrong type or outside torch.optim's ranges (None: not
    checked)."""
    for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
        if value is not None and not (is_number(value) and value >= 0):
            raise HparamError(f"{name}={value!r} is not allowed; it must be a number >= 0")
    if betas is not None:
        if isinstance(betas, (str, bytes)) or not isinstance(betas, Iterable) or len(tuple(betas)) != 2:
            raise HparamError(f"betas={betas!r} is not allowed; it must be a pair [beta1, beta2]")
        for index, beta in enumerate(tuple(betas)):
            if not (is_number(beta) and 0.0 <= beta < 1.0):
                raise HparamError(f"betas[{index}]={beta!r} is not allowed; it must be a number in [0, 1)")


# The type of every hyperparameter the registry's optimizers take (ranges: check_hparams and the classes' own).
HPARAM_TYPES = {
    **dict.fromkeys(("lr", "eps", "weight_decay", "momentum", "dampening", "final_lr", "gamma", "initial_accumulator",
                     "lambd", "alpha", "t0", "lookahead_weight"), "number"),
    **dict.fromkeys(("nesterov", "amsgrad", "amsbound", "weight_decouple"), "bool"),
    "foreach": "bool or null",
    "residual": "string",
    "betas": "pair",
}
_TYPE_CHECKS = {
    "number": is_number,
    "bool": lambda value: isinstance(value, bool),
    "bool or null": lambda value: value is None or isinstance(value, bool),
    "string": lambda value: isinstance(value, str),
    "pair": lambda value: isinstance(value, (list, tuple)) and len(value) == 2 and all(map(is_number, value)),
}
_WANT = {"number": "a number", "bool": "true or false", "bool or null": "true, false or null", "string": "a string",
         "pair": "a pair of numbers [beta1, beta2]"}


def check_types(hparams: dict) -> None:
    """HparamError for the first hyperparameter whose value is not of its type (HPARAM_TYPES)."""
    for name, value in hparams.items():
        kind = HPARAM_TYPES.get(name)
        if kind is not None and not _TYPE_CHECKS[kind](value):
            raise HparamError(f"{name}={value!r} is not allowed; it must be {_WANT[kind]}")


def params_with_grad(group: dict, optimizer_name: str) -> list[Tensor]:
    """The group's parameters that have a gradient this step (dense only, as the foreach ops need)."""
    params = [p for p in group["params"] if p.grad is not None]
    if any(p.grad.is_sparse for p in params):
        raise RuntimeError(f"{optimizer_name} does not support sparse gradients")
    return params


def group_tensors(tensorlists: list[list[Tensor]], steps: Sequence[int] | None = None) -> list[tuple[int | None, list[list[Tensor]]]]:
    """Split parallel lists of tensors into buckets of one device and dtype, with torch's own helper (as
    torch.optim.Adam does), and of one step count where the update's scalars depend on it: [(step, lists)]."""
    buckets: list[tuple[int | None, list[list[Tensor]]]] = []
    if not tensorlists[0]:  # no parameter has a gradient this step: nothing to update (torch's foreach ops refuse [])
        return buckets
    for lists, indices in Optimizer._group_tensors_by_device_and_dtype(tensorlists, with_indices=True).values():
        by_step: dict[int | None, list[list[Tensor]]] = {}
        for position, index in enumerate(indices):
            step = steps[index] if steps is not None else None
            bucket = by_step.setdefault(step, [[] for _ in lists])
            for target, source in zip(bucket, lists):
                target.append(source[position])
        buckets.extend(by_step.items())
    return buckets
