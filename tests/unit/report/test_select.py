import math
from pathlib import Path

import pytest

from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values
from adala_bench.report.tables import build_cells
from helpers import write_run
from adala_bench.report.select import choose_hparams, run_values

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


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
