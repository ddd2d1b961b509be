"""report/select.py: the paper and clean rules, the run summary's columns, which hyperparameters a task's cell is
chosen from (most completed runs, then the name; a tag whose only run is unfinished keeps its choice), and run_values
on the frames that reach its corners (issue 17, item 3: the survivors of `make mutation` on select.py that a test
should kill): no runs, a task outside the catalog, a family with one run, a metric never logged, a row subset whose
run ids have gaps (compute_matched passes such subsets), and GAN runs whose FID came from random Inception weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values
from adala_bench.report.select import choose_hparams, run_values
from adala_bench.report.tables import build_cells
from helpers import REPO, write_run

REFERENCE = REPO / "results" / "reference"


def records(metric, values, start=0, **columns):
    """One record per value; extra columns are lists of the same length."""
    return [{"epoch": start + i, "grad_evals": 100 * (i + 1), "wall_s": 2.0 * (i + 1), metric: v,
             **{k: col[i] for k, col in columns.items()}} for i, v in enumerate(values)]


@pytest.fixture
def runs_dir(tmp_path):
    # CIFAR: best test_acc at epoch 2 (88), final 85; with val_acc, best val at epoch 1 (ties: first).
    write_run(tmp_path, "cifar10_vgg11", "adam", "default", 0, records("test_acc", [70.0, 80.0, 88.0, 85.0]))
    write_run(tmp_path, "cifar10_vgg11", "adam", "val", 0,
              records("test_acc", [70.0, 80.0, 88.0, 85.0], val_acc=[60.0, 75.0, 75.0, 74.0]))
    # PTB (epochs from 1): min test_ppl 90 at epoch 3, final 95; val_ppl best (lowest) at epoch 2.
    write_run(tmp_path, "ptb_lstm1", "sgd", "default", 0, records("test_ppl", [120.0, 100.0, 90.0, 95.0], start=1))
    write_run(tmp_path, "ptb_lstm1", "sgd", "val", 0,
              records("test_ppl", [120.0, 100.0, 90.0, 95.0], start=1, val_ppl=[130.0, 99.0, 101.0, 102.0]))
    # GAN: FID only at epochs 1 and 3 (final); the final one counts under both rules, even if not the best.
    gan = records("d_loss", [0.1, 0.2, 0.3, 0.4])
    gan[1]["fid"], gan[3]["fid"] = 70.0, 75.5
    write_run(tmp_path, "gan_wgan", "adala", "default", 0, gan)
    # GAN run whose final epoch has no FID: no value.
    gan_missing = records("d_loss", [0.1, 0.2])
    gan_missing[0]["fid"] = 60.0
    write_run(tmp_path, "gan_wgan", "adala", "default", 1, gan_missing, state="failed")
    return tmp_path


def values_by(runs, task, hparams, seed=0):
    row = runs[(runs["task"] == task) & (runs["hparams"] == hparams) & (runs["seed"] == seed)]
    assert len(row) == 1
    return row.iloc[0]


def test_paper_rule(runs_dir):
    runs = run_values(load_runs(runs_dir), "paper")
    cifar = values_by(runs, "cifar10_vgg11", "default")
    assert (cifar["value"], cifar["epoch"]) == (88.0, 2)
    assert values_by(runs, "cifar10_vgg11", "val")["value"] == 88.0  # paper ignores validation
    ptb = values_by(runs, "ptb_lstm1", "default")
    assert (ptb["value"], ptb["epoch"]) == (90.0, 3)
    gan = values_by(runs, "gan_wgan", "default")
    assert (gan["value"], gan["epoch"]) == (75.5, 3)
    assert math.isnan(values_by(runs, "gan_wgan", "default", seed=1)["value"])


def test_clean_rule(runs_dir):
    runs = run_values(load_runs(runs_dir), "clean")
    assert values_by(runs, "cifar10_vgg11", "default")["value"] == 85.0  # final epoch
    best_val = values_by(runs, "cifar10_vgg11", "val")
    assert (best_val["value"], best_val["epoch"]) == (80.0, 1)  # val 75 at epochs 1 and 2: the first
    assert values_by(runs, "ptb_lstm1", "default")["value"] == 95.0
    ptb_val = values_by(runs, "ptb_lstm1", "val")
    assert (ptb_val["value"], ptb_val["epoch"]) == (100.0, 2)
    assert values_by(runs, "gan_wgan", "default")["value"] == 75.5


def test_run_summary_columns(runs_dir):
    runs = run_values(load_runs(runs_dir), "paper")
    cifar = values_by(runs, "cifar10_vgg11", "default")
    assert (cifar["table"], cifar["metric"], cifar["epochs_logged"], cifar["last_epoch"]) == ("Table2", "test_acc",
                                                                                              4, 3)
    assert (cifar["final_grad_evals"], cifar["final_wall_s"]) == (400, 8.0)


def test_unknown_rule_is_rejected(runs_dir):
    with pytest.raises(ValueError, match="'best'.*paper, clean"):
        run_values(load_runs(runs_dir), "best")


def test_choose_hparams_prefers_most_completed_then_lexicographic(tmp_path):
    acc = records("test_acc", [50.0])
    # tag "b": 2 completed; tag "a": 1 completed + 2 diverged; tag "c": 2 completed -> "b" (tie with "c").
    for seed in range(2):
        write_run(tmp_path, "cifar10_resnet34", "adala", "b", seed, acc)
        write_run(tmp_path, "cifar10_resnet34", "adala", "c", seed, acc)
    write_run(tmp_path, "cifar10_resnet34", "adala", "a", 0, acc)
    write_run(tmp_path, "cifar10_resnet34", "adala", "a", 1, acc, state="diverged")
    write_run(tmp_path, "cifar10_resnet34", "adala", "a", 2, acc, state="diverged")
    # Another optimizer with a single, running tag: chosen, but not used.
    write_run(tmp_path, "cifar10_resnet34", "sgd", "z", 0, acc, state="running")
    runs = choose_hparams(run_values(load_runs(tmp_path), "paper"))
    chosen = runs[runs["chosen"]]
    assert sorted(zip(chosen["optimizer"], chosen["hparams"], chosen["seed"])) == [
        ("adala", "b", 0), ("adala", "b", 1), ("sgd", "z", 0)]
    assert runs.loc[runs["used"], "optimizer"].tolist() == ["adala", "adala"]


def test_a_task_whose_only_tag_has_only_an_unfinished_run_keeps_its_choice(tmp_path):
    # Another task's tag "a" sorts before LSTM-1layer's only tag "z", whose one run is still running (its lock
    # free here: interrupted). Grouping by every category combination (pandas 2's default, observed=False) would
    # give LSTM-1layer a tag "a" with 0 completed runs and choose it.
    write_run(tmp_path, "cifar10_vgg11", "adala", "a", 0, records("test_acc", [50.0]))
    write_run(tmp_path, "ptb_lstm1", "adala", "z", 0, records("test_ppl", [90.0], start=1), state="running")
    runs = choose_hparams(run_values(load_runs(tmp_path), "paper"))
    lstm = runs[runs["task"] == "ptb_lstm1"]
    assert (lstm["hparams"].tolist(), lstm["chosen"].tolist(), lstm["used"].tolist()) == (["z"], [True], [False])
    cells = build_cells(runs, paper_values(REFERENCE), "paper")
    cell = cells[(cells["model"] == "LSTM-1layer") & (cells["optimizer"] == "adala")].iloc[0]
    assert (cell["hparams"], cell["n"], cell["seeds"], cell["flags"]) == ("z", 0, 1, "1 run interrupted")


# ---- run_values at its corners -----------------------------------------------------------------------------------

RUN_VALUE_COLUMNS = ["run", "task", "family", "model", "optimizer", "hparams", "profile", "seed", "state", "reason",
                     "run_dir", "table", "metric", "epochs_logged", "last_epoch", "final_grad_evals", "final_wall_s",
                     "value", "epoch", "random_fid_weights"]


def rows(metric: str | None, values: list[float], **extra) -> list[dict]:
    return [{"epoch": e, "grad_evals": 10 * (e + 1), "wall_s": float(e + 1), **({metric: v} if metric else {}),
             **{k: column[e] for k, column in extra.items()}} for e, v in enumerate(values)]


@pytest.mark.parametrize("rule", ["paper", "clean"])
@pytest.mark.filterwarnings("error")  # the report's numbers come without RuntimeWarnings
def test_run_values_of_no_runs_is_an_empty_frame_with_every_column(tmp_path, rule):
    runs = run_values(load_runs(tmp_path), rule)
    assert list(runs.columns) == RUN_VALUE_COLUMNS and len(runs) == 0


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_a_single_run_whose_best_epoch_is_the_frames_first_row(tmp_path, rule):
    """One CIFAR-10 run, alone in its family, best at epoch 0 (the first row of the frame), last at epoch 2."""
    write_run(tmp_path, "cifar10_vgg11", "adam", "t", 0, rows("test_acc", [80.0, 60.0, 70.0]))
    runs = run_values(load_runs(tmp_path), rule)
    assert list(runs.columns) == RUN_VALUE_COLUMNS and len(runs) == 1
    run = runs.iloc[0]
    expected = (80.0, 0.0) if rule == "paper" else (70.0, 2.0)
    assert (run["value"], run["epoch"]) == expected
    assert (run["table"], run["metric"], run["last_epoch"], run["final_grad_evals"]) == ("Table2", "test_acc", 2.0, 30.0)
    assert run["epochs_logged"] == 3 and runs["epochs_logged"].dtype.kind == "i"
    # epochs and grad_evals are whole numbers (loaded as integers); the run's final values are floats all the same
    for column in ("last_epoch", "final_grad_evals", "final_wall_s", "value", "epoch"):
        assert runs[column].dtype == np.float64, column
    assert not run["random_fid_weights"]


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_a_task_outside_the_catalog_and_a_run_without_values_get_nan(tmp_path, rule):
    write_run(tmp_path, "cifar10_vgg11", "adam", "t", 0, rows("test_acc", [50.0, 55.0]))
    write_run(tmp_path, "cifar10_vgg11", "adam", "t", 1, rows("test_acc", [math.nan, math.nan]))  # never evaluated
    write_run(tmp_path, "mnist_mlp", "adam", "t", 0, rows("test_acc", [97.0, 98.0]), family="mnist", model="MLP")
    runs = run_values(load_runs(tmp_path), rule).set_index(["task", "seed"])
    assert runs["value"].dtype == np.float64 and runs["epoch"].dtype == np.float64
    assert runs.loc[("cifar10_vgg11", 0), "value"] == 55.0
    assert math.isnan(runs.loc[("cifar10_vgg11", 1), "value"])
    # paper: no epoch has a value; clean: the final epoch counts, whatever it holds
    epoch = runs.loc[("cifar10_vgg11", 1), "epoch"]
    assert epoch == 1.0 if rule == "clean" else math.isnan(epoch)
    assert math.isnan(runs.loc[("mnist_mlp", 0), "value"]) and math.isnan(runs.loc[("mnist_mlp", 0), "epoch"])
    outside = runs.loc[("mnist_mlp", 0)]
    assert pd.isna(outside["table"]) and pd.isna(outside["metric"]) and outside["epochs_logged"] == 2


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_a_metric_never_logged_gives_no_value_and_no_error(tmp_path, rule):
    """A CIFAR-10 run (alone) that stopped before any evaluation: its rows have no test_acc column at all."""
    write_run(tmp_path, "cifar10_vgg11", "adam", "t", 0, rows(None, [0.0], train_loss=[2.3]))
    runs = run_values(load_runs(tmp_path), rule)
    assert len(runs) == 1 and math.isnan(runs["value"].iloc[0]) and math.isnan(runs["epoch"].iloc[0])


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_run_values_of_a_row_subset_whose_run_ids_have_gaps(tmp_path, rule):
    """compute_matched hands run_values the rows of some runs only: run ids 0 and 2, not 0 and 1."""
    for seed, curve in enumerate([[50.0, 70.0, 60.0], [10.0, 20.0, 30.0], [65.0, 55.0, 45.0]]):
        write_run(tmp_path, "cifar10_vgg11", "adam", "t", seed, rows("test_acc", curve))
    frame = load_runs(tmp_path)
    subset = frame[frame["seed"] != 1]
    runs = run_values(subset, rule).set_index("seed")
    expected = {"paper": {0: (70.0, 1.0), 2: (65.0, 0.0)}, "clean": {0: (60.0, 2.0), 2: (45.0, 2.0)}}[rule]
    assert {seed: (runs.loc[seed, "value"], runs.loc[seed, "epoch"]) for seed in (0, 2)} == expected


@pytest.mark.parametrize("rule", ["paper", "clean"])
def test_fids_from_random_inception_weights_are_flagged(tmp_path, rule):
    """Two one-epoch GAN runs: the first one's FID (the frame's first row) from random weights, the second's real."""
    write_run(tmp_path, "gan_wgan", "adam", "t", 0, rows("fid", [50.0], fid_real_weights=[0.0]))
    write_run(tmp_path, "gan_wgan", "adam", "t", 1, rows("fid", [60.0], fid_real_weights=[1.0]))
    runs = run_values(load_runs(tmp_path), rule)
    assert runs["value"].tolist() == [50.0, 60.0]
    assert runs["random_fid_weights"].tolist() == [True, False] and runs["random_fid_weights"].dtype == bool
