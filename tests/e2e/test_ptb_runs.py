"""Table 3's task through the runner on the small synthetic corpus: every optimizer learns (the 1-layer model; the
as-run values of every depth are composed in tests/unit/test_config.py), SGD's switch to ASGD resumes bit for bit,
the recurrent matrices stay as the reference leaves them unless asked, and a validation split is refused (PTB has
its own valid.txt)."""

from __future__ import annotations

import math

import pytest
import torch

from adala_bench.config import RunConfig
from adala_bench.runner import train_one
from adala_bench.store import RunDir
from adala_bench.tasks import build_task
from adala_bench.tasks.language import PennTreebankLM
from adala_bench.trainer import Trainer
from helpers import compose, run_path

CPU = torch.device("cpu")
OPTIMIZERS = ("adabelief", "adabound", "adala", "adam", "adamw", "fromage", "msvag", "radam", "sgd", "yogi")


@pytest.fixture(scope="module")
def ptb_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ptb-data")


def ptb(ptb_root, tmp_path, *overrides):
    return compose("profile=smoke", f"data.root={ptb_root}", f"results.root={tmp_path / 'runs'}", *overrides)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_learns(ptb_root, tmp_path, optimizer):
    cfg = ptb(ptb_root, tmp_path, "task=ptb_lstm1", f"optimizer={optimizer}")
    torch.manual_seed(0)
    untrained = build_task(RunConfig.of(cfg), CPU).evaluate(0)["val_loss"]
    assert train_one(cfg) == "completed"
    rows = RunDir(run_path(cfg)).read_metrics()
    assert set(rows[-1]) >= {"train_loss", "train_ppl", "val_ppl", "test_ppl", "test_loss", "lr", "grad_evals", "wall_s"}
    assert rows[-1]["test_ppl"] == pytest.approx(math.exp(rows[-1]["test_loss"]))
    assert rows[-1]["val_loss"] < untrained, f"{optimizer}: {untrained} -> {rows[-1]['val_loss']}"


def test_sgd_switches_to_asgd_in_the_row_and_the_checkpoint_and_resumes(ptb_root, tmp_path, monkeypatch):
    """A test-loss plateau (forced) switches SGD to ASGD after epoch 6: the row says so, the lr goes back to 30 (the
    smoke profile decayed it to 3 at epoch 1), and an interrupted run resumes with ASGD, bit for bit."""
    from helpers import interrupt_at, metrics_without_time

    original = PennTreebankLM.evaluate
    forced = [3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]

    def evaluate(self, epoch):
        return {**original(self, epoch), "test_loss": forced[epoch]}

    monkeypatch.setattr(PennTreebankLM, "evaluate", evaluate)
    straight = ptb(ptb_root, tmp_path / "straight", "task=ptb_lstm1", "optimizer=sgd", "epochs=8")
    assert train_one(straight) == "completed"
    rows = RunDir(run_path(straight)).read_metrics()
    assert [row.get("optimizer_switch") for row in rows] == [None] * 6 + ["model=asgd", None]
    assert [row["lr"] for row in rows] == pytest.approx([30.0] + [3.0] * 6 + [30.0])
    checkpoint = RunDir(run_path(straight)).load_checkpoint()
    assert checkpoint["optimizers"]["model"]["spec"]["name"] == "asgd"

    interrupted = ptb(ptb_root, tmp_path / "interrupted", "task=ptb_lstm1", "optimizer=sgd", "epochs=8")
    interrupt_at(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        train_one(interrupted)
    monkeypatch.setattr("adala_bench.trainer.Trainer.train_epoch", original_train_epoch)
    assert train_one(interrupted) == "completed"
    assert metrics_without_time(RunDir(run_path(interrupted))) == metrics_without_time(RunDir(run_path(straight)))
    resumed = RunDir(run_path(interrupted)).load_checkpoint()
    for name, tensor in checkpoint["models"]["model"].items():
        assert torch.equal(resumed["models"]["model"][name], tensor), name


original_train_epoch = Trainer.train_epoch


@pytest.mark.parametrize("train_recurrent", [False, True])
def test_recurrent_matrices_stay_at_init_as_the_reference_unless_asked(ptb_root, tmp_path, train_recurrent):
    cfg = ptb(ptb_root, tmp_path, "task=ptb_lstm2", "optimizer=adam", "epochs=1",
              f"task.lstm.train_recurrent={str(train_recurrent).lower()}")
    torch.manual_seed(cfg.seed)
    initial = {name: p.detach().clone() for name, p in build_task(RunConfig.of(cfg), CPU).model.named_parameters()}
    assert train_one(cfg) == "completed"
    trained = RunDir(run_path(cfg)).load_checkpoint()["models"]["model"]
    recurrent = [name for name in initial if name.endswith("weight_hh_l0_raw")]
    assert len(recurrent) == 2
    for name in recurrent:
        assert torch.equal(trained[name], initial[name]) != train_recurrent, name
    assert not torch.equal(trained["encoder.weight"], initial["encoder.weight"])


def test_val_size_is_refused_for_ptb(ptb_root, tmp_path):
    from adala_bench.config import ConfigError

    with pytest.raises(ConfigError, match="data.val_size=100 is not allowed for ptb_lstm1; .*valid.txt"):
        train_one(ptb(ptb_root, tmp_path, "task=ptb_lstm1", "optimizer=sgd", "data.val_size=100"))
