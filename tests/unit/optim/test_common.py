"""optim/common.py, what AdaLA, MSVAG and Fromage share: a sparse gradient is refused, in one line naming the
optimizer, before anything moves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adala_bench.optim.adala import AdaLA
from adala_bench.optim.fromage import Fromage
from adala_bench.optim.msvag import MSVAG


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
