"""What a person watching a run sees: one log line per epoch (Python logging, so it lands in a sweep's log files
too), and a bar within the epoch only when stdout is a terminal."""

from __future__ import annotations

import logging
import re
import sys

from adala_bench.runner import train_one


def test_a_smoke_run_logs_one_line_per_epoch_with_the_right_fields(smoke, caplog):
    with caplog.at_level(logging.INFO, logger="adala_bench"):
        assert train_one(smoke("task=cifar10_vgg11", "optimizer=adala", "epochs=3")) == "completed"
    lines = [r.getMessage() for r in caplog.records if r.name == "adala_bench.runner"]
    assert len(lines) == 3
    # epochs numbered from 0, as in metrics.jsonl, the figures and the lr milestones; "k/3 done" counts them
    pattern = (r"cifar10_vgg11 adala seed=0: epoch {e} \({k}/3 done\), train_loss [\d.]+, test_acc [\d.]+, "
               r"lr {lr}, [\d.]+ s/epoch, ETA \dm\d\ds")
    for e, (line, lr) in enumerate(zip(lines, ("0.001", "0.0001", "0.0001"))):
        assert re.fullmatch(pattern.format(e=e, k=e + 1, lr=re.escape(lr)), line), line
    assert lines[-1].endswith("ETA 0m00s")


def test_the_bar_is_off_without_a_terminal_and_on_with_one(smoke, capsys, monkeypatch):
    assert train_one(smoke("task=cifar10_vgg11", "optimizer=sgd", "epochs=1")) == "completed"
    assert "batch/s" not in capsys.readouterr().out

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert train_one(smoke("task=cifar10_vgg11", "optimizer=sgd", "epochs=1", "seed=1")) == "completed"
    out = capsys.readouterr().out
    assert "epoch 0 (1/1):" in out and "/8 [" in out and "batch/s" in out


def test_tensorboard_scalars_are_optional_and_follow_resume(smoke, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from helpers import run_path
    from helpers import interrupt_at

    cfg = smoke("task=cifar10_vgg11", "optimizer=sgd", "epochs=3", "logger=tensorboard")
    interrupt_at(monkeypatch, 2)
    try:
        train_one(cfg)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert train_one(cfg) == "completed"
    events = EventAccumulator(str(run_path(cfg) / "tensorboard"))
    events.Reload()
    steps = [event.step for event in events.Scalars("test_acc")]
    assert steps == [0, 1, 2]
    # logger is not part of the run's identity: the same run with and without it is one directory
    assert run_path(cfg) == run_path(smoke("task=cifar10_vgg11", "optimizer=sgd", "epochs=3"))


def test_an_unknown_logger_is_refused(smoke):
    import pytest

    from adala_bench.config import ConfigError

    with pytest.raises(ConfigError, match="logger='wandb' is not allowed; allowed: none, tensorboard"):
        train_one(smoke("task=cifar10_vgg11", "optimizer=sgd", "logger=wandb"))
