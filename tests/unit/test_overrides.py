"""Overrides are read by Hydra's parser: adala-train, adala-plan and adala-sweep take the same sweep syntax, and a
sweep's jobs are Hydra's basic sweeper's, experiment included. The other way, hydra_string/hydra_value: what
adala-sweep (its workers' sweep folders) and adala-report --emit-best (optimizer values) write into Hydra overrides
must parse back, through Hydra's own override parser, to the very same value."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from adala_bench.config import ConfigError, RunConfig
from adala_bench.overrides import check_groups, hydra_string, hydra_value, override_args, sweep_jobs
from adala_bench.sweep_runs import sweep_cells
from helpers import compose


def test_choice_glob_range_and_commas_expand_as_hydra_expands_them():
    jobs = sweep_jobs(["optimizer=choice(adam,sgd)", "task=glob(cifar10_v*)", "seed=range(0,2)"])
    assert jobs == [["optimizer=adam", "task=cifar10_vgg11", "seed=0"], ["optimizer=adam", "task=cifar10_vgg11", "seed=1"],
                    ["optimizer=sgd", "task=cifar10_vgg11", "seed=0"], ["optimizer=sgd", "task=cifar10_vgg11", "seed=1"]]
    assert len(sweep_jobs(["task=glob(*,exclude=gan_*)", "optimizer=adam,sgd"])) == 6 * 2


def test_an_experiments_params_cross_with_the_command_line_which_replaces_a_swept_key():
    table2 = sweep_jobs(["+experiment=table2", "seed=0,1"])
    assert len(table2) == 3 * 10 * 2 and table2[0] == ["task=cifar10_vgg11", "optimizer=fromage",
                                                       "+experiment=table2", "seed=0"]
    only_adam = sweep_jobs(["+experiment=table2", "optimizer=adam"])
    assert [job[:2] for job in only_adam] == [[f"task={t}", "optimizer=adam"] for t in
                                              ("cifar10_vgg11", "cifar10_resnet34", "cifar10_densenet121")]


def test_hydras_own_overrides_change_how_a_sweep_runs_not_its_runs():
    assert sweep_jobs(["task=gan_wgan", "hydra/launcher=submitit_local", "hydra.sweep.dir=x"]) == [["task=gan_wgan"]]


@pytest.mark.parametrize("args, message", [
    (["task=cifar10_vgg12"], "unknown task 'cifar10_vgg12'; allowed: cifar10_densenet121, cifar10_resnet34, "),
    (["optimizer=choice(adam,lamb)"], "unknown optimizer 'lamb'; allowed: adabelief, "),
    (["profile=tiny"], "unknown profile 'tiny'; allowed: fast, paper, smoke"),
    (["track=tuned"], "unknown track 'tuned'; allowed: defaults"),
    (["+experiment=table9"], "unknown experiment 'table9'; allowed: claims_mix, defaults_cifar10, defaults_gan, "),
    (["optimizer=choice(adam"], "cannot read the override 'optimizer=choice(adam'"),
    (["seed=interval(0,1)"], "BasicSweeper does not support sweep type : INTERVAL_SWEEP"),
])
def test_bad_overrides_are_one_line(args, message):
    with pytest.raises(ConfigError) as error:
        sweep_jobs(args)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("override", ["logger=comet", "logger=[tensorboard,comet]", "logger=none,comet"])
def test_an_unknown_logger_is_refused_before_hydra_composes(override):
    with pytest.raises(ConfigError, match="^unknown logger 'comet'; allowed: mlflow, none, tensorboard, wandb$"):
        check_groups([override])


def test_only_overrides_are_checked_among_adala_trains_arguments():
    assert override_args(["--multirun", "-cd", "somewhere", "a=b", "--cfg", "job", "c=d", "-m"]) == ["a=b", "c=d"]
    check_groups(override_args(["--multirun", "task=cifar10_vgg11", "hydra/launcher=submitit_local"]))


def test_one_cell_per_composed_config_with_its_seeds_and_its_sweep_values():
    cells = sweep_cells(["+experiment=search_ptb", "task=ptb_lstm1", "optimizer=sgd,adam", "seed=range(0,3)"])
    assert [(c.optimizer, c.variant, c.seeds) for c in cells[:2]] == [
        ("sgd", "lr_scale=0.1", [0, 1, 2]), ("sgd", "lr_scale=0.3", [0, 1, 2])]
    assert len(cells) == 2 * 5 and cells[0].root.name == "search"
    assert cells[0].run.optimizer.hparams["lr"] == pytest.approx(3.0)  # 30 × 0.1: the lr the run is named by
    assert [c.seeds for c in sweep_cells(["task=cifar10_vgg11"])] == [[0]]  # the config's seed when none is given


PARSER = OverridesParser.create()


def parsed(value_text: str):
    return PARSER.parse_override(f"key={value_text}").value()


@pytest.mark.parametrize("text", [
    "results/sweep-logs/2026-11-29_10-00-00/worker0", "torch.optim.Adamax", "/tmp/a:b+c", ".hidden", "_x",
    "null", "True", "NaN", "inf",  # bare, Hydra would read None, a bool, floats
    "2026-11-29/worker0", "1e-3", "10", "-x",  # bare, a number or not a value at all
    "with space", "a,b", "x=y", "tab\tx", "é", "it's", "a\\b", "trailing\\", "a\\'b", "\\\\server\\share\\",
])
def test_a_string_parses_back_to_itself(text):
    assert parsed(hydra_string(text)) == text


def test_plain_names_and_paths_stay_bare():
    assert hydra_string("results/runs/x") == "results/runs/x"
    assert hydra_string("torch.optim.Adamax") == "torch.optim.Adamax"
    assert hydra_string("null") == "'null'" and hydra_string("a b") == "'a b'"


@pytest.mark.parametrize("value", [1e-3, 30, 0.00030000000000000003, True, None, [0.9, 0.999], "null", "a\\b"])
def test_a_config_value_parses_back_to_itself(value):
    assert parsed(hydra_value(value)) == value


def test_a_tuning_sweeps_trial_range_reads_the_budget_as_hydras_basic_sweeper_does():
    """conf/experiment/tune_*.yaml sweep `trial: range(0,${trials})`: the interpolation is resolved in the sweep's
    config, so `trials=` on the command line sets the budget (Hydra's own sweeper: tests/e2e/test_tuning_sweep.py)."""
    jobs = sweep_jobs(["+experiment=tune_cifar10", "trials=3", "task=cifar10_vgg11", "optimizer=adam,sgd", "seed=0,1"])
    assert [job[:3] for job in jobs[:3]] == [["task=cifar10_vgg11", "optimizer=adam", "trial=0"]] * 2 + [
        ["task=cifar10_vgg11", "optimizer=adam", "trial=1"]]
    assert len(jobs) == 2 * 3 * 2
    assert len(sweep_jobs(["+experiment=tune_ptb", "task=ptb_lstm1", "seed=0"])) == 10 * 16  # the default budget


@pytest.mark.parametrize("args", [["+experiment=tune_gan", "trials=0"], ["trials=0"],
                                  ["+experiment=tune_ptb", "trials=-1"]])
def test_a_budget_of_no_trials_is_refused_before_anything_runs(args):
    message = f"trials={args[-1].split('=')[1]} is not allowed; it must be an integer ≥ 1"
    with pytest.raises(ConfigError, match=message):
        check_groups(args)  # what adala-train checks before Hydra sweeps nothing
    with pytest.raises(ConfigError, match=message):
        sweep_jobs(args)


def test_a_tuning_sweeps_cells_are_the_runs_adala_train_names():
    args = ["+experiment=tune_cifar10", "trials=3", "task=cifar10_vgg11", "optimizer=adala,fromage", "seed=0,1"]
    cells = sweep_cells(args)
    assert [(c.optimizer, c.variant, c.seeds) for c in cells] == [
        (optimizer, f"trial={i}", [0, 1]) for optimizer in ("adala", "fromage") for i in range(3)]
    named = [RunConfig.of(compose(*[o for o in job if not o.startswith("seed=")])).path.parent
             for job in sweep_jobs(args)[::2]]
    assert [cell.path(0).parent for cell in cells] == named and len(set(named)) == 6
