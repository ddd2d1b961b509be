"""Run-store files: atomic writes, status updates, checkpoint checksums."""

from __future__ import annotations

import os

import pytest
import torch

from adala_bench import files, store
from adala_bench.files import atomic_write
from adala_bench.store import RunDir, RunStoreError


@pytest.mark.parametrize("content", [b"new\n", lambda handle: handle.write(b"new\n")])
def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch, content):
    target = tmp_path / "metrics.jsonl"
    atomic_write(target, b"old\n")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, content)
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["metrics.jsonl"]  # no temp file left behind
    monkeypatch.undo()
    atomic_write(target, content)
    assert target.read_bytes() == b"new\n"


def test_status_updates_keep_earlier_fields_and_reject_unknown_states(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_status("running", started_at="t0", git_commit="abc")
    status = run.write_status("completed", ended_at="t1")
    assert status == {"state": "completed", "started_at": "t0", "git_commit": "abc", "ended_at": "t1"}
    assert run.read_status() == status
    with pytest.raises(ValueError, match="unknown run state 'done'"):
        run.write_status("done")


def test_checkpoint_round_trip_and_checksum(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    assert run.load_checkpoint() is None
    state = {"weights": torch.arange(6.0).reshape(2, 3), "epoch": 4}
    run.save_checkpoint(state)
    loaded = run.load_checkpoint()
    assert torch.equal(loaded["weights"], state["weights"]) and loaded["epoch"] == 4

    run.checksum_file.unlink()  # a checkpoint nobody vouches for is not used either
    with pytest.raises(RunStoreError, match="corrupt or truncated"):
        run.load_checkpoint()


def test_an_interruption_between_the_checkpoint_renames_leaves_the_previous_checkpoint_usable(tmp_path, monkeypatch):
    """Ctrl-C (or SIGKILL) after the checksum file is replaced and before the checkpoint is: the previous
    checkpoint is still in place, whole, and still loads (a resume redoes that epoch), also in a new process."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.save_checkpoint({"epoch": 1})
    run.save_checkpoint({"epoch": 2})
    real_write = store.atomic_write

    def interrupted_at_the_checkpoint(path, data):
        if path == run.checkpoint_file:
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(store, "atomic_write", interrupted_at_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run.save_checkpoint({"epoch": 3})
    monkeypatch.undo()
    assert len(run.checksum_file.read_text().split()) == 2  # the new file's (never landed) and the one in place
    resumed = RunDir(run.path)
    assert resumed.load_checkpoint() == {"epoch": 2}
    # The next epochs save as usual; a file nobody wrote whole is still refused.
    resumed.save_checkpoint({"epoch": 3})
    assert RunDir(run.path).load_checkpoint() == {"epoch": 3}
    run.checkpoint_file.write_bytes(run.checkpoint_file.read_bytes()[:-10])
    with pytest.raises(RunStoreError, match="corrupt or truncated"):
        RunDir(run.path).load_checkpoint()


def test_metrics_round_trip(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    rows = [{"epoch": 0, "test_acc": 10.5}, {"epoch": 1, "test_acc": 20.25}]
    run.write_metrics(rows)
    assert run.read_metrics() == rows
    assert run.metrics_file.read_text().count("\n") == 2
