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
