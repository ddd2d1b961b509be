"""What the optimizers of this package share: torch.optim's argument checks, and the bucketing of tensors that
share every scalar of an update (so each bucket is one foreach call)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor
from torch.optim import Optimizer


def check_hparams(*, lr: float | None = None, betas: Iterable[float] | None = None,
                  eps: float | None = None, weight_decay: float | None = None) -> None:
    """Raise ValueError naming the first value outside torch.optim's ranges (None: not checked)."""
    if lr is not None and not lr >= 0:
        raise ValueError(f"invalid lr {lr!r}: must be >= 0")
    if betas is not None:
        betas = tuple(betas)
        if len(betas) != 2:
            raise ValueError(f"invalid betas {betas!r}: must be a pair (beta1, beta2)")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid betas[{index}] {beta!r}: must be in [0, 1)")
    if eps is not None and not eps >= 0:
        raise ValueError(f"invalid eps {eps!r}: must be >= 0")
    if weight_decay is not None and not weight_decay >= 0:
        raise ValueError(f"invalid weight_decay {weight_decay!r}: must be >= 0")


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
    for lists, indices in Optimizer._group_tensors_by_device_and_dtype(tensorlists, with_indices=True).values():
        by_step: dict[int | None, list[list[Tensor]]] = {}
        for position, index in enumerate(indices):
            step = steps[index] if steps is not None else None
            bucket = by_step.setdefault(step, [[] for _ in lists])
            for target, source in zip(bucket, lists):
                target.append(source[position])
        buckets.extend(by_step.items())
    return buckets
