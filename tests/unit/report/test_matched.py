import math
import statistics

import pytest

from adala_bench.report.load import load_runs
from adala_bench.report.matched import compute_matched, render_matched_markdown
from helpers import write_run
from adala_bench.report.select import choose_hparams, run_values


@pytest.fixture
def runs_dir(tmp_path):
    # AdaLA: 200 gradient evaluations per epoch, 1 s; AdaBelief: 100 per epoch, 2 s. Seed s adds s points.
    for seed in range(2):
        write_run(tmp_path, "cifar10_vgg11", "adala", "t", seed, [
            {"epoch": e, "grad_evals": 200 * (e + 1), "wall_s": 1.0 * (e + 1), "test_acc": acc + seed}
            for e, acc in enumerate([50.0, 60.0, 70.0, 80.0])])
        write_run(tmp_path, "cifar10_vgg11", "adabelief", "t", seed, [
            {"epoch": e, "grad_evals": 100 * (e + 1), "wall_s": 2.0 * (e + 1), "test_acc": acc + seed}
            for e, acc in enumerate([55.0, 65.0, 75.0, 78.0])])
    # A diverged run with a smaller budget must not set the budget.
    write_run(tmp_path, "cifar10_vgg11", "sgd", "t", 0, [{"epoch": 0, "grad_evals": 10, "wall_s": 0.1,
                                                          "test_acc": 99.0}], state="diverged")
    # GAN: FID only at the final epoch, so AdaLA has none within the smaller budget.
    for name, per_epoch in (("adala", 200), ("adabelief", 100)):
        write_run(tmp_path, "gan_wgan", name, "t", 0, [
            {"epoch": 0, "grad_evals": per_epoch, "wall_s": 1.0},
            {"epoch": 1, "grad_evals": 2 * per_epoch, "wall_s": 2.0, "fid": 90.0 if name == "adala" else 95.0}])
    return tmp_path


def matched(runs_dir, rule="paper"):
    frame = load_runs(runs_dir)
    return compute_matched(frame, choose_hparams(run_values(frame, rule)), rule).set_index(["task", "optimizer"])


def test_budgets_and_values_equal_hand_computed(runs_dir):
    table = matched(runs_dir)
    adala, adabelief = table.loc[("cifar10_vgg11", "adala")], table.loc[("cifar10_vgg11", "adabelief")]
    # Gradient-evaluation budget = min(800, 400) = 400: AdaLA sees epochs 0-1, AdaBelief all four.
    assert adala["grad_evals_budget"] == adabelief["grad_evals_budget"] == 400
    assert (adala["grad_evals_final"], adabelief["grad_evals_final"]) == (800, 400)
    assert adala["grad_evals_mean"] == 60.5 and adala["grad_evals_n"] == 2
    assert adala["grad_evals_std"] == pytest.approx(statistics.stdev([60.0, 61.0]), abs=1e-12)
    assert adabelief["grad_evals_mean"] == 78.5
    # Wall budget = min(4 s, 8 s) = 4 s: AdaLA all four epochs, AdaBelief epochs 0-1.
    assert adala["wall_s_budget"] == 4.0
    assert (adala["wall_s_mean"], adabelief["wall_s_mean"]) == (80.5, 65.5)
    assert (adala["full_mean"], adabelief["full_mean"], adala["n"]) == (80.5, 78.5, 2)
    assert ("cifar10_vgg11", "sgd") not in table.index

    gan_adala, gan_adabelief = table.loc[("gan_wgan", "adala")], table.loc[("gan_wgan", "adabelief")]
    assert gan_adala["grad_evals_budget"] == 200
    assert math.isnan(gan_adala["grad_evals_mean"]) and gan_adala["grad_evals_n"] == 0
    assert gan_adabelief["grad_evals_mean"] == 95.0
    assert (gan_adala["wall_s_mean"], gan_adabelief["wall_s_mean"]) == (90.0, 95.0)


def test_clean_rule_takes_the_last_epoch_within_the_budget(tmp_path):
    for name, per_epoch in (("adala", 200), ("adabelief", 100)):
        write_run(tmp_path, "ptb_lstm1", name, "t", 0, [
            {"epoch": e + 1, "grad_evals": per_epoch * (e + 1), "wall_s": float(e + 1), "test_ppl": ppl}
            for e, ppl in enumerate([150.0, 120.0, 125.0, 110.0])])
    paper, clean = matched(tmp_path, "paper"), matched(tmp_path, "clean")
    # Budget 400 gradient evaluations: AdaLA's epochs 1-2.
    assert paper.loc[("ptb_lstm1", "adala"), "grad_evals_mean"] == 120.0
    assert clean.loc[("ptb_lstm1", "adala"), "grad_evals_mean"] == 120.0
    assert paper.loc[("ptb_lstm1", "adabelief"), "grad_evals_mean"] == 110.0
    assert clean.loc[("ptb_lstm1", "adabelief"), "full_mean"] == 110.0


def test_markdown_lists_each_task_with_its_budgets(runs_dir):
    table = matched(runs_dir).reset_index()
    md = render_matched_markdown(table, "paper")
    assert "### VGG11 (cifar10_vgg11, test_acc)" in md
    assert "Budgets: 400 gradient evaluations, 4.0 s wall time." in md
    assert "| AdaLA | 80.50 ± 0.71 (n=2) | 800 | 60.50 ± 0.71 (n=2) | 4.0 | 80.50 ± 0.71 (n=2) |" in md
    assert "| AdaLA | 90.00 ± – (n=1) | 400 | – | 2.0 | 90.00 ± – (n=1) |" in md
    assert md.index("### VGG11") < md.index("### WGAN")
