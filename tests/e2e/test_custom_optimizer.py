"""Any optimizer by import path: it trains through the same trainer, gets its own run directory and report row, gets
the look-ahead closure when it declares so, and a class that cannot be imported or built is a one-line error."""

from __future__ import annotations

import subprocess
import textwrap

import pandas as pd
import pytest

from adala_bench.report.cli import main as report
from adala_bench.config import ConfigError
from adala_bench.runner import train_one
from adala_bench.store import RunDir
from helpers import BIN, run_path

ADALA_BIN = str(BIN / "adala-train")

MODULE = textwrap.dedent('''
    import torch
    from torch.optim import Optimizer

    class SignDescent(Optimizer):
        """theta <- theta - lr * sign(g): a user's own optimizer."""

        def __init__(self, params, lr, weight_decay=0.0):
            super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad.sign(), alpha=-group["lr"])

    class PeekingDescent(SignDescent):
        """Declares that it takes the look-ahead closure, and evaluates it once per step."""

        requires_closure = True
        calls = 0

        @torch.no_grad()
        def step(self, closure=None):
            assert closure is not None
            PeekingDescent.calls += 1
            with torch.enable_grad():
                closure()
            return super().step()
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_optimizers.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_users_optimizer_trains_and_gets_its_own_directory_row_and_curve(smoke, user_module, tmp_path):
    cfg = smoke("task=cifar10_vgg11", "optimizer=custom", "optimizer._target_=my_optimizers.SignDescent",
                "optimizer.lr=1e-3", "+optimizer.weight_decay=0.0", "epochs=2")
    assert train_one(cfg) == "completed"
    run = run_path(cfg)
    assert run.parent.parent.name == "my_optimizers.SignDescent"
    assert run.parent.name.startswith("lr0.001-weight_decay0-")
    rows = RunDir(run).read_metrics()
    assert [row["grad_evals"] for row in rows] == [8, 16] and rows[-1]["train_loss"] < rows[0]["train_loss"] + 0.5
    saved = (run / "config.yaml").read_text()
    assert "name: my_optimizers.SignDescent" in saved and "_target_" not in saved

    baseline = smoke("task=cifar10_vgg11", "optimizer=sgd", "epochs=2")
    assert train_one(baseline) == "completed"
    out = tmp_path / "report"
    assert report(["--runs", str(tmp_path / "runs"), "--out", str(out), "--no-published", "--profile", "smoke"]) == 0
    table = pd.read_csv(out / "table2.csv")
    assert list(table[table["model"] == "VGG11"]["optimizer"])[-2:] == ["adala", "my_optimizers.SignDescent"]
    assert "my_optimizers.SignDescent" in (out / "table2.md").read_text()
    assert (out / "fig1_cifar10_test_acc_vgg11.png").stat().st_size > 0


def test_a_class_that_declares_requires_closure_gets_the_lookahead_closure(smoke, user_module):
    import my_optimizers

    cfg = smoke("task=cifar10_vgg11", "optimizer=custom", "optimizer._target_=my_optimizers.PeekingDescent",
                "optimizer.lr=1e-3", "epochs=1")
    my_optimizers.PeekingDescent.calls = 0
    assert train_one(cfg) == "completed"
    (row,) = RunDir(run_path(cfg)).read_metrics()
    assert my_optimizers.PeekingDescent.calls == 8 and row["grad_evals"] == 16


def test_the_lookahead_batch_names_the_run_of_any_optimizer_that_takes_the_closure(smoke, user_module):
    """`next` and `same` compute different things for an optimizer that takes the look-ahead closure, whatever it is
    (so they are different runs), and the same thing for one that does not (one run)."""
    def path(target, lookahead_batch):
        return run_path(smoke("task=cifar10_vgg11", "optimizer=custom", f"optimizer._target_={target}",
                              "optimizer.lr=1e-3", f"trainer.lookahead_batch={lookahead_batch}"))

    peeking = [path("my_optimizers.PeekingDescent", batch) for batch in ("next", "same")]
    assert peeking[0] != peeking[1]
    assert [p.parent.name.split("-")[1] for p in peeking] == ["lookahead_batchnext", "lookahead_batchsame"]
    assert path("my_optimizers.SignDescent", "next") == path("my_optimizers.SignDescent", "same")
    adala = [run_path(smoke("task=cifar10_vgg11", "optimizer=adala", f"trainer.lookahead_batch={batch}",
                            "optimizer.residual=ema")) for batch in ("next", "same")]
    assert adala[0] == adala[1]  # AdaLA as AdaBelief (residual=ema) takes no closure: next and same are one run


@pytest.mark.parametrize("overrides,message", [
    (["optimizer._target_=no_such_module.Optimizer", "optimizer.lr=1e-3"],
     "optimizer class 'no_such_module.Optimizer' cannot be imported (ModuleNotFoundError"),
    (["optimizer._target_=torch.nn.Linear", "optimizer.lr=1e-3"], "'torch.nn.Linear' is not a torch.optim.Optimizer"),
    (["optimizer._target_=torch.optim.Adamax", "optimizer.lr=1e-3", "+optimizer.momentum=0.9"],
     "'torch.optim.Adamax' cannot be constructed with {'lr': 0.001, 'momentum': 0.9}: "),
    (["optimizer._target_=torch.optim.Adamax", "optimizer.lr=-1"], "'torch.optim.Adamax' cannot be constructed"),
    (["optimizer.lr=1e-3"], "optimizer._target_ has no value; give it on the command line"),
])
def test_a_class_that_cannot_be_imported_or_built_is_one_line(smoke, tmp_path, overrides, message):
    with pytest.raises(ConfigError) as error:
        train_one(smoke("task=cifar10_vgg11", "optimizer=custom", *overrides))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not list((tmp_path / "runs").rglob("status.json"))


def test_the_cli_says_so_in_one_line(tmp_path, data_root):
    result = subprocess.run([ADALA_BIN, "profile=smoke", f"data.root={data_root}", f"results.root={tmp_path}/runs",
                             "optimizer=custom", "optimizer._target_=my_missing.Thing", "optimizer.lr=1"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("adala-train: error: optimizer my_missing.Thing: optimizer class 'my_missing.Thing' cannot be imported")
