"""The cross-task view (ranks, performance profile, time-to-target) against values worked by hand."""
import math

import numpy as np
import pandas as pd
import pytest

from adala_bench.report.crosstask import (covered_tasks, performance_profile, profile_ratios, rank_table, ranks,
                                          time_to_target)
from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values
from adala_bench.report.select import choose_hparams, run_values
from adala_bench.report.tables import build_cells
from helpers import REPO, write_run

REFERENCE = REPO / "results" / "reference"
# Per epoch: AdaLA 200 gradient evaluations and 1.5 s, AdaBelief and SGD 100 and 1 s (epochs counted from 0 for
# CIFAR-10 and the GANs, from 1 for PTB, as the runner logs them).
PER_EPOCH = {"adala": (200, 1.5), "adabelief": (100, 1.0), "sgd": (100, 1.0)}


def curve(optimizer, values, first_epoch=0, key="test_acc"):
    grads, seconds = PER_EPOCH[optimizer]
    return [{"epoch": first_epoch + i, "grad_evals": grads * (i + 1), "wall_s": seconds * (i + 1), key: v}
            for i, v in enumerate(values)]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # VGG11 (accuracy, higher is better). Paper rule: best over epochs.
    #   AdaBelief: best 91, 93 -> 92; final 90, 92 -> target 91.  AdaLA: best 89, 91 -> 90.  SGD: best 88.
    for seed, values in enumerate([[80, 85, 91, 90], [82, 88, 93, 92]]):
        write_run(root, "cifar10_vgg11", "adabelief", "t", seed, curve("adabelief", values))
    for seed, values in enumerate([[85, 89, 88, 87], [86, 91, 90, 90]]):
        write_run(root, "cifar10_vgg11", "adala", "t", seed, curve("adala", values))
    write_run(root, "cifar10_vgg11", "sgd", "t", 0, curve("sgd", [70, 80, 88, 85]))
    # LSTM-1layer (perplexity, lower is better), epochs 1-3: AdaBelief 100 (best = final = target), AdaLA 80.
    write_run(root, "ptb_lstm1", "adabelief", "t", 0, curve("adabelief", [120, 105, 100], 1, "test_ppl"))
    write_run(root, "ptb_lstm1", "adala", "t", 0, curve("adala", [110, 95, 80], 1, "test_ppl"))
    # WGAN (FID, lower is better): fid_curve before the last epoch, fid at it. AdaLA and AdaBelief tie at 50;
    # SGD logged only the final fid (task.fid.every=0): 100.
    for optimizer, curve_fids in (("adabelief", [80, 60]), ("adala", [90, 49])):
        rows = curve(optimizer, [*curve_fids, 50], key="fid")
        for row in rows[:-1]:
            row["fid_curve"] = row.pop("fid")
        write_run(root, "gan_wgan", optimizer, "t", 0, rows)
    sgd = curve("sgd", [math.nan, 100], key="fid")
    del sgd[0]["fid"]
    write_run(root, "gan_wgan", "sgd", "t", 0, sgd)
    frame = load_runs(root)
    runs = choose_hparams(run_values(frame, "paper"))
    return frame, runs, build_cells(runs, paper_values(REFERENCE), "paper")


def test_ranks_and_mean_ranks(report):
    _, _, cells = report
    ranked = ranks(cells).set_index(["model", "optimizer"])
    # VGG11: AdaBelief 92 > AdaLA 90 > SGD 88.  LSTM-1layer: AdaLA 80 < AdaBelief 100.  WGAN: 50 = 50 < 100, the
    # tie shares ranks 1 and 2: 1.5 each.
    assert ranked["rank"].to_dict() == {
        ("VGG11", "adabelief"): 1, ("VGG11", "adala"): 2, ("VGG11", "sgd"): 3,
        ("LSTM-1layer", "adabelief"): 2, ("LSTM-1layer", "adala"): 1,
        ("WGAN", "adabelief"): 1.5, ("WGAN", "adala"): 1.5, ("WGAN", "sgd"): 3,
    }
    assert ranked.loc[("LSTM-1layer", "adala"), "ranked"] == 2 and ranked.loc[("VGG11", "sgd"), "ranked"] == 3
    table = rank_table(ranks(cells)).set_index("optimizer")
    assert list(table.index) == ["sgd", "adabelief", "adala"]  # the paper's row order
    assert list(table.columns) == ["label", "VGG11", "LSTM-1layer", "WGAN", "mean_rank", "tasks"]
    # AdaLA (2 + 1 + 1.5) / 3 = 1.5; AdaBelief (1 + 2 + 1.5) / 3 = 1.5; SGD (3 + 3) / 2 = 3 over 2 tasks.
    assert table["mean_rank"].to_dict() == {"sgd": 3.0, "adabelief": 1.5, "adala": 1.5}
    assert table["tasks"].to_dict() == {"sgd": 2, "adabelief": 3, "adala": 3}
    assert math.isnan(table.loc["sgd", "LSTM-1layer"])
    assert covered_tasks(cells) == ["cifar10_vgg11", "ptb_lstm1", "gan_wgan"]


def test_performance_profile(report):
    _, _, cells = report
    ratios = profile_ratios(cells).set_index(["model", "optimizer"])
    # Costs: VGG11 error rate 100 - acc: AdaBelief 8 (best), AdaLA 10 -> 10/8 = 1.25, SGD 12 -> 1.5.
    # LSTM-1layer perplexity: AdaLA 80 (best), AdaBelief 100 -> 1.25.  WGAN FID: 50, 50 -> 1; SGD 100 -> 2.
    assert ratios.loc[("VGG11", "adala"), "cost"] == 10 and ratios.loc[("VGG11", "adala"), "best_cost"] == 8
    assert ratios["ratio"].to_dict() == {
        ("VGG11", "sgd"): 1.5, ("VGG11", "adabelief"): 1.0, ("VGG11", "adala"): 1.25,
        ("LSTM-1layer", "adabelief"): 1.25, ("LSTM-1layer", "adala"): 1.0,
        ("WGAN", "sgd"): 2.0, ("WGAN", "adabelief"): 1.0, ("WGAN", "adala"): 1.0,
    }
    profile = performance_profile(profile_ratios(cells))
    # Three tasks. AdaLA's ratios 1.25, 1, 1: within tau = 1 on 2 of 3, from 1.25 on all. AdaBelief's 1, 1.25, 1:
    # the same. SGD's 1.5, 2 and no LSTM-1layer value (never counts): 0 until 1.5, then 1/3, from 2 on 2/3.
    assert list(profile.columns) == ["tau", "sgd", "adabelief", "adala"]
    assert profile["tau"].tolist() == [1.0, 1.25, 1.5, 2.0]
    np.testing.assert_allclose(profile["adala"], [2 / 3, 1, 1, 1])
    np.testing.assert_allclose(profile["adabelief"], [2 / 3, 1, 1, 1])
    np.testing.assert_allclose(profile["sgd"], [0, 0, 1 / 3, 2 / 3])


def test_time_to_target(report):
    frame, runs, _ = report
    ttt = time_to_target(frame, runs).set_index(["model", "optimizer"])
    assert list(ttt.index) == [("VGG11", "sgd"), ("VGG11", "adabelief"), ("VGG11", "adala"),
                               ("LSTM-1layer", "adabelief"), ("LSTM-1layer", "adala"),
                               ("WGAN", "sgd"), ("WGAN", "adabelief"), ("WGAN", "adala")]
    # VGG11: target = mean of AdaBelief's final accuracies (90 + 92) / 2 = 91. AdaBelief reaches >= 91 at epoch 2 in
    # both seeds (91, 93): 3 x 100 = 300 gradient evaluations, 3 s. AdaLA: seed 0 never (best 89); seed 1 at epoch 1
    # (91): 2 x 200 = 400, 3 s -> 400 / 300 = 4/3 of AdaBelief's gradients, 3 / 3 = 1 of its time. SGD: never.
    vgg = ttt.xs("VGG11")
    assert (vgg["target"] == 91).all()
    assert vgg.loc["adabelief", ["n", "reached", "epoch", "grad_evals", "wall_s"]].tolist() == [2, 2, 2, 300, 3]
    assert vgg.loc["adala", ["n", "reached", "epoch", "grad_evals", "wall_s"]].tolist() == [2, 1, 1, 400, 3]
    assert vgg.loc["adala", "grad_evals_vs_adabelief"] == pytest.approx(4 / 3)
    assert vgg.loc["adala", "wall_s_vs_adabelief"] == 1.0
    assert (vgg.loc["sgd", "n"], vgg.loc["sgd", "reached"]) == (1, 0) and math.isnan(vgg.loc["sgd", "grad_evals"])
    # LSTM-1layer: target 100 (AdaBelief's final). AdaBelief reaches <= 100 at epoch 3: 300 evaluations, 3 s; AdaLA
    # at epoch 2 (95): 400 evaluations, 3 s.
    lstm = ttt.xs("LSTM-1layer")
    assert lstm.loc["adabelief", ["target", "epoch", "grad_evals", "wall_s"]].tolist() == [100, 3, 300, 3]
    assert lstm.loc["adala", ["epoch", "grad_evals", "wall_s"]].tolist() == [2, 400, 3]
    # WGAN: target 50 (AdaBelief's final fid), reached by AdaBelief only at the last epoch (2: 300 evaluations);
    # AdaLA's fid_curve is 49 at epoch 1: 400 evaluations, 3 s. SGD's one fid (100) never reaches it.
    wgan = ttt.xs("WGAN")
    assert wgan.loc["adabelief", ["target", "epoch", "grad_evals"]].tolist() == [50, 2, 300]
    assert wgan.loc["adala", ["epoch", "grad_evals", "wall_s", "grad_evals_vs_adabelief"]].tolist() == [1, 400, 3,
                                                                                                          4 / 3]
    assert wgan.loc["sgd", "reached"] == 0


def test_a_task_without_adabelief_has_no_target_and_one_optimizer_ranks_first(tmp_path):
    write_run(tmp_path, "ptb_lstm3", "sgd", "t", 0, curve("sgd", [90, 80], 1, "test_ppl"))
    frame = load_runs(tmp_path)
    runs = choose_hparams(run_values(frame, "paper"))
    cells = build_cells(runs, paper_values(REFERENCE), "paper")
    assert ranks(cells)[["model", "optimizer", "rank", "ranked"]].values.tolist() == [["LSTM-3layer", "sgd", 1, 1]]
    assert performance_profile(profile_ratios(cells)).to_dict("list") == {"tau": [1.0], "sgd": [1.0]}
    assert time_to_target(frame, runs).empty


def test_no_runs_gives_empty_frames(tmp_path):
    frame = load_runs(tmp_path)
    runs = choose_hparams(run_values(frame, "paper"))
    cells = build_cells(runs, paper_values(REFERENCE), "paper")
    assert ranks(cells).empty and rank_table(ranks(cells)).empty and profile_ratios(cells).empty
    assert list(performance_profile(profile_ratios(cells)).columns) == ["tau"]
    assert time_to_target(frame, runs).empty
    assert isinstance(time_to_target(frame, runs), pd.DataFrame)


def test_runs_that_end_at_the_target_reach_it_despite_the_rounding_of_its_mean(tmp_path):
    # Three AdaBelief seeds end at 90.03 accuracy: their mean in floats is 90.03000000000002, a hair above each of
    # them; three end at 110.1 perplexity: their mean is 110.09999999999998, a hair below. Each run still reaches
    # its own final value, at its last epoch (300 gradient evaluations, 3 s). AdaLA ends at the same values one
    # epoch sooner (400 evaluations, 3 s): 4/3 of AdaBelief's gradients, as much wall time.
    for seed in range(3):
        write_run(tmp_path, "cifar10_vgg11", "adabelief", "t", seed, curve("adabelief", [80.0, 85.0, 90.03]))
        write_run(tmp_path, "cifar10_vgg11", "adala", "t", seed, curve("adala", [85.0, 90.03]))
        write_run(tmp_path, "ptb_lstm1", "adabelief", "t", seed, curve("adabelief", [130, 120, 110.1], 1, "test_ppl"))
        write_run(tmp_path, "ptb_lstm1", "adala", "t", seed, curve("adala", [120, 110.1], 1, "test_ppl"))
    frame = load_runs(tmp_path)
    ttt = time_to_target(frame, choose_hparams(run_values(frame, "paper"))).set_index(["model", "optimizer"])
    assert ttt.loc[("VGG11", "adabelief"), "target"] > 90.03  # the float means the runs must reach
    assert ttt.loc[("LSTM-1layer", "adabelief"), "target"] < 110.1
    # The epoch each reaches it (CIFAR-10 counts epochs from 0, PTB from 1), for AdaBelief and for AdaLA.
    for model, epochs in (("VGG11", (2, 1)), ("LSTM-1layer", (3, 2))):
        assert ttt.loc[(model, "adabelief"), ["n", "reached", "epoch", "grad_evals", "wall_s"]].tolist() == [
            3, 3, epochs[0], 300, 3]
        assert ttt.loc[(model, "adala"), ["n", "reached", "epoch", "grad_evals", "wall_s"]].tolist() == [
            3, 3, epochs[1], 400, 3]
        assert ttt.loc[(model, "adabelief"), ["grad_evals_vs_adabelief", "wall_s_vs_adabelief"]].tolist() == [1, 1]
        assert ttt.loc[(model, "adala"), "grad_evals_vs_adabelief"] == pytest.approx(4 / 3)
        assert ttt.loc[(model, "adala"), "wall_s_vs_adabelief"] == 1.0
