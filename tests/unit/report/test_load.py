"""report/load.py: the run store read into one long frame (one row per run and epoch), the bulk metrics parser equal
to json per line (odd files and wider lines falling back), partial and corrupt last lines, runs without epochs or
status, resumed runs' repeated epochs, unknown tasks, only seed directories at depth four, empty and missing stores."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from adala_bench.report.load import RUN_COLUMNS, find_run_dirs, load_runs
from helpers import write_run
from adala_bench.store import METRICS_FILE as METRICS
from adala_bench.store import RunDir


def cifar_records(accs, **extra):
    return [{"epoch": e, "grad_evals": 10 * (e + 1), "wall_s": 1.5 * (e + 1), "lr": 0.1, "train_loss": 1.0 / (e + 1),
             "test_acc": a, **extra} for e, a in enumerate(accs)]


def test_long_frame_has_one_row_per_run_and_epoch(tmp_path):
    write_run(tmp_path, "cifar10_vgg11", "adala", "lr0.001", 0, cifar_records([10.0, 20.5, 30.25]))
    running = write_run(tmp_path, "cifar10_vgg11", "adala", "lr0.001", 1, cifar_records([11.0, 21.0]), state="running")
    write_run(tmp_path, "ptb_lstm2", "sgd", "default", 3, [{"epoch": 1, "test_ppl": 99.5}], state="diverged",
              reason="loss is nan", diverged_at={"epoch": 1, "step": 17})
    with RunDir(running):  # its trainer holds the lock: running (records.read_run's vocabulary)
        frame = load_runs(tmp_path)

    assert list(frame.columns[: len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert list(frame.columns[len(RUN_COLUMNS): len(RUN_COLUMNS) + 4]) == ["epoch", "grad_evals", "wall_s", "lr"]
    assert len(frame) == 6
    assert frame["run"].tolist() == [0, 0, 0, 1, 1, 2]
    assert frame["epoch"].tolist() == [0, 1, 2, 0, 1, 1]
    assert frame["epoch"].dtype == np.int64
    assert frame["test_acc"].tolist()[:5] == [10.0, 20.5, 30.25, 11.0, 21.0]
    assert math.isnan(frame["test_acc"].iloc[5]) and frame["test_ppl"].iloc[5] == 99.5
    first, last = frame.iloc[0], frame.iloc[5]
    assert (first["task"], first["family"], first["model"], first["optimizer"], first["hparams"], first["seed"],
            first["state"]) == ("cifar10_vgg11", "cifar10", "VGG11", "adala", "lr0.001", 0, "completed")
    assert (last["task"], last["family"], last["model"], last["seed"], last["state"], last["reason"]) == (
        "ptb_lstm2", "ptb", "LSTM-2layer", 3, "diverged", "loss is nan")
    assert frame.loc[frame["run"] == 1, "state"].eq("running").all()


def test_bulk_parser_equals_json_per_line(tmp_path):
    rng = np.random.default_rng(0)
    for seed in range(4):
        records = [{"epoch": e, "grad_evals": 391 * (e + 1), "wall_s": float(rng.random() * 1e3),
                    "d_loss": float(rng.normal()), "g_loss": float(-rng.normal() * 1e-9)} for e in range(5)]
        records[-1]["fid"] = float(rng.random() * 100)
        records[2]["g_loss"] = float("nan")
        records[3]["d_loss"] = float("inf")
        write_run(tmp_path, "gan_wgan_gp", "adam", "default", seed, records)
    frame = load_runs(tmp_path)
    for run, rows in frame.groupby("run"):
        path = rows["run_dir"].iloc[0]
        expected = [json.loads(line) for line in open(f"{path}/{METRICS}")]
        for row, record in zip(rows.to_dict("records"), expected):
            for key, value in record.items():
                assert row[key] == value or (math.isnan(row[key]) and math.isnan(value)), (key, row[key], value)
            assert math.isnan(row["fid"]) == ("fid" not in record)


def test_odd_files_take_the_slow_path_with_the_same_result(tmp_path):
    path = write_run(tmp_path, "ptb_lstm1", "yogi", "default", 0, [])
    lines = [
        '{"epoch": 1, "test_ppl": 120.5, "note": "a: b, {c}", "hist": [1, 2]}',
        "",
        '{"test_ppl": 110.25, "epoch": 2, "extra": {"nested": 1}}',
        '{"epoch": 3, "test_ppl": 100.0, "ok": true, "lr": null}',
    ]
    (path / METRICS).write_text("\n".join(lines) + "\n")
    frame = load_runs(tmp_path)
    assert frame["epoch"].tolist() == [1, 2, 3]
    assert frame["test_ppl"].tolist() == [120.5, 110.25, 100.0]
    assert "note" not in frame and "hist" not in frame and "extra" not in frame
    assert frame["ok"].tolist()[2] == 1.0 and frame["lr"].isna().all()


def test_wider_middle_line_falls_back_for_the_whole_batch(tmp_path):
    write_run(tmp_path, "gan_wgan", "sgd", "default", 0, [
        {"epoch": 0, "d_loss": 1.0}, {"epoch": 1, "d_loss": 2.0, "fid": 70.0, "g_loss": 0.5}, {"epoch": 2, "d_loss": 3.0}])
    write_run(tmp_path, "gan_wgan", "sgd", "default", 1, [{"epoch": 0, "d_loss": 4.0, "fid": 60.0}])
    frame = load_runs(tmp_path)
    assert frame["d_loss"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert frame["fid"].tolist()[1] == 70.0 and frame["fid"].tolist()[3] == 60.0
    assert frame["g_loss"].tolist()[1] == 0.5 and frame["g_loss"].isna().sum() == 3


def test_partially_written_last_line_is_dropped(tmp_path):
    path = write_run(tmp_path, "cifar10_resnet34", "sgd", "default", 0, cifar_records([50.0, 60.0]),
                     state="running")
    with open(path / METRICS, "a") as f:
        f.write('{"epoch": 2, "grad_evals": 30, "test_a')
    frame = load_runs(tmp_path)
    assert frame["epoch"].tolist() == [0, 1]
    assert frame["test_acc"].tolist() == [50.0, 60.0]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = write_run(tmp_path, "cifar10_resnet34", "sgd", "default", 0, [])
    (path / METRICS).write_text('{"epoch": 0, "test_acc": 5.5}\n{"epoch": 1, "test_acc": 6.5}')
    assert load_runs(tmp_path)["test_acc"].tolist() == [5.5, 6.5]


def test_corrupt_line_marks_the_run_corrupt(tmp_path):
    path = write_run(tmp_path, "cifar10_resnet34", "sgd", "default", 0, [])
    (path / METRICS).write_text('{"epoch": 0, "test_acc": 5.5}\n{"epoch": 1, "test_acc\n{"epoch": 2, "test_acc": 7}\n')
    write_run(tmp_path, "cifar10_resnet34", "sgd", "default", 1, cifar_records([1.0]))
    frame = load_runs(tmp_path)
    bad = frame[frame["seed"] == 0]
    assert len(bad) == 1 and bad["epoch"].isna().all()
    assert bad["state"].iloc[0] == "unreadable"
    assert bad["reason"].iloc[0] == "metrics.jsonl: line 2 is not JSON"
    assert frame.loc[frame["seed"] == 1, "test_acc"].tolist() == [1.0]


def test_run_without_epochs_or_status_keeps_one_row(tmp_path):
    path = write_run(tmp_path, "gan_wgan", "adala", "default", 2, [], state="running")
    (path / METRICS).unlink()
    bare = tmp_path / "gan_wgan" / "adala" / "default" / "seed=3"
    bare.mkdir()
    frame = load_runs(tmp_path)
    assert len(frame) == 2
    # status running with nobody holding the lock: the process was killed; no status.json: not started
    assert frame["state"].tolist() == ["interrupted", "not started"]
    assert frame["reason"].iloc[0] == "killed (status running, lock free)" and pd.isna(frame["reason"].iloc[1])
    assert frame["seed"].tolist() == [2, 3]
    assert frame[["epoch", "grad_evals", "wall_s", "lr"]].isna().all().all()


def test_resumed_run_keeps_the_last_record_of_a_repeated_epoch(tmp_path):
    records = cifar_records([10.0, 20.0, 30.0])
    records.insert(2, {**records[1], "test_acc": 25.0})  # epoch 1 logged again after a resume
    write_run(tmp_path, "cifar10_vgg11", "adam", "default", 0, records)
    frame = load_runs(tmp_path)
    assert frame["epoch"].tolist() == [0, 1, 2]
    assert frame["test_acc"].tolist() == [10.0, 25.0, 30.0]


def test_unknown_task_reads_family_and_model_from_config(tmp_path):
    write_run(tmp_path, "cifar10_tiny", "adam", "default", 0, cifar_records([1.0]), family="cifar10", model="Tiny")
    frame = load_runs(tmp_path)
    assert (frame["family"].iloc[0], frame["model"].iloc[0]) == ("cifar10", "Tiny")


def test_only_seed_directories_at_depth_four_are_runs(tmp_path):
    write_run(tmp_path, "cifar10_vgg11", "adam", "default", 0, cifar_records([1.0]))
    (tmp_path / "cifar10_vgg11" / "adam" / "default" / "notes").mkdir()
    (tmp_path / "cifar10_vgg11" / "adam" / "default" / "seed=x").mkdir()
    (tmp_path / ".hydra").mkdir()
    assert [(r.task, r.seed) for r in find_run_dirs(tmp_path)] == [("cifar10_vgg11", 0)]


def test_empty_and_missing_runs_dir(tmp_path):
    frame = load_runs(tmp_path)
    assert frame.empty and list(frame.columns) == RUN_COLUMNS + ["epoch", "grad_evals", "wall_s", "lr"]
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        load_runs(tmp_path / "does-not-exist")
