"""config.py: the tuning side (`trial=i` resolved to its point when the config is composed, the run named by the
values it gives, the trial recorded but no part of the name; the defaults track's package defaults, each checked against
its class's own signature; the bad input of a tuning sweep refused in one line naming the key), and the run identity of
AdaLA's lookahead_weight (the fix the paper proposes, §7): it names a run directory as every hyperparameter does,
except at its default 1, where every AdaLA run keeps the name it had before the option existed; w = 0 takes no
look-ahead closure, so its directory has no lookahead_batch; the claims_mix sweep."""

from __future__ import annotations

import inspect

import adabound
import numpy as np
import pytest
import torch
import torch_optimizer
from omegaconf import OmegaConf

from adala_bench import search_space
from adala_bench.catalog import OPTIMIZER_ORDER, TASKS
from adala_bench.config import CONF_DIR, ConfigError, RunConfig, lookahead_weight_of_tag
from adala_bench.optim import MSVAG, AdaLA, Fromage
from adala_bench.sweep_runs import sweep_cells
from helpers import compose

TUNE = {"cifar10": "tune_cifar10", "ptb": "tune_ptb", "gan": "tune_gan"}
ONE_TASK = {"cifar10": "cifar10_resnet34", "ptb": "ptb_lstm2", "gan": "gan_wgan_gp"}


def run(*overrides: str) -> RunConfig:
    return RunConfig.of(compose(*overrides))


def test_trial_i_gives_every_optimizer_the_same_point_of_the_unit_cube():
    """The lr coordinate (the first) of trial i is the same quantile of every optimizer's lr range, on every task;
    eps (the second) the same for the Adam family."""
    for trial in (0, 6):
        u = search_space.sobol_point(trial)
        for family, task in ONE_TASK.items():
            for optimizer in OPTIMIZER_ORDER:
                as_run = run(f"task={task}", f"optimizer={optimizer}").optimizer.hparams
                tuned = run(f"+experiment={TUNE[family]}", f"task={task}", f"optimizer={optimizer}", f"trial={trial}")
                hparams = tuned.optimizer.hparams
                assert np.log10(hparams["lr"] / as_run["lr"]) == pytest.approx(-1 + 2 * u[0]), (optimizer, task)
                if "eps" in hparams and optimizer != "yogi":
                    assert np.log10(hparams["eps"]) == pytest.approx(-16 + 10 * u[1]), (optimizer, task)
                untouched = {k for k in as_run if k not in ("lr", "eps")}
                assert {k: hparams[k] for k in untouched} == {k: as_run[k] for k in untouched}
            assert tuned.recorded()["tuning"] == {"track": "tuned", "trial": trial}


def test_a_trial_is_the_run_its_values_name(tmp_path):
    """Trial 3 of the CIFAR-10 sweep lands where the same values given on the command line land: the trial index
    and the budget are no part of the name."""
    root = f"results.root={tmp_path}"
    trial = run("+experiment=tune_cifar10", "task=cifar10_vgg11", "optimizer=adala", "trial=3", "trials=4", root)
    values = trial.optimizer.hparams
    by_hand = run("task=cifar10_vgg11", "optimizer=adala", f"optimizer.lr={values['lr']!r}",
                  f"optimizer.eps={values['eps']!r}", "data.val_size=5000", root)
    assert trial.path == by_hand.path
    assert "tuning" not in trial.identity and f"lr{values['lr']:g}" in trial.tag
    budget_16 = run("+experiment=tune_cifar10", "task=cifar10_vgg11", "optimizer=adala", "trial=3", "trials=16", root)
    assert budget_16.path == trial.path
    assert run("+experiment=tune_cifar10", "task=cifar10_vgg11", "optimizer=adala", "trial=2", root).path != trial.path


def test_a_custom_optimizer_brings_its_own_space(tmp_path):
    space = tmp_path / "adamax.yaml"
    space.write_text("lr: {low: 0.1, high: 10, scale: log, relative: true}\nweight_decay: {low: 0, high: 0.01}\n")
    custom = ("optimizer=custom", "optimizer._target_=torch.optim.Adamax", "optimizer.lr=2e-3",
              "+optimizer.weight_decay=0.0")
    tuned = run("+experiment=tune_cifar10", "task=cifar10_vgg11", *custom, "trial=5", f"space={space}")
    u = search_space.sobol_point(5)
    assert tuned.optimizer.name == "torch.optim.Adamax"
    assert dict(tuned.optimizer.hparams) == pytest.approx({"lr": 2e-3 * 0.1 * 100 ** u[0], "weight_decay": 0.01 * u[1]})


def test_the_defaults_track_takes_the_package_defaults_and_nothing_of_the_as_run_values():
    for family, task in ONE_TASK.items():
        for optimizer in OPTIMIZER_ORDER:
            cfg = compose(f"+experiment=defaults_{family}", f"task={task}", f"optimizer={optimizer}")
            section = OmegaConf.to_container(cfg.optimizer)
            group = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "optimizer" / f"{optimizer}.yaml"))
            defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "hparams" / "package_defaults" /
                                                             f"{optimizer}.yaml"))
            assert section == {**defaults, **group}, (family, optimizer)
            assert cfg.tuning == {"track": "defaults"}
    lr = compose("+experiment=defaults_ptb", "task=ptb_lstm1", "optimizer=sgd", "optimizer.lr=20").optimizer.lr
    assert lr == 20  # the command line still wins
    assert compose("track=defaults", "task=ptb_lstm1", "optimizer=adam").tuning == {"track": "defaults"}


def _signature_defaults(cls) -> dict:
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_each_package_default_is_its_class_own():
    """The written defaults equal each implementing class's signature defaults; where the suite decides, it says:
    AdaLA takes Adam's, AdaBelief 0.0.5's (the step the suite runs; 0.2.1's signature has another algorithm's
    defaults), Fromage's lr (its class has none) is the suite's choice."""
    classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
               "radam": torch.optim.RAdam, "yogi": torch_optimizer.Yogi, "adabound": adabound.AdaBound,
               "msvag": MSVAG, "adala": torch.optim.Adam}
    adabelief_0_0_5 = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0}  # its change log's table
    for optimizer in OPTIMIZER_ORDER:
        written = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "hparams" / "package_defaults" /
                                                        f"{optimizer}.yaml"))
        written = {k: tuple(v) if isinstance(v, list) else v for k, v in written.items()}
        if optimizer == "fromage":
            assert written == {"lr": 0.01}
            assert "lr" not in _signature_defaults(Fromage)
            continue
        own = adabelief_0_0_5 if optimizer == "adabelief" else _signature_defaults(classes[optimizer])
        assert written == {k: own[k] for k in written}, optimizer
    adam = _signature_defaults(torch.optim.Adam)
    assert all(_signature_defaults(AdaLA)[k] == adam[k] for k in ("lr", "betas", "eps", "weight_decay"))


@pytest.mark.parametrize("overrides, message", [
    (("optimizer=custom", "optimizer._target_=torch.optim.Adamax", "optimizer.lr=1e-3", "trial=0"),
     "space: optimizer torch.optim.Adamax has no search space in conf/spaces/; give space=<a YAML file>"),
    (("optimizer=adam", "trial=0", "space=/nowhere/space.yaml"), "space '/nowhere/space.yaml': no such file"),
    (("optimizer=adam", "trial=0", "trials=0"), "trials=0 is not allowed; it must be an integer ≥ 1"),
    (("optimizer=adam", "trial=-1"), "trial=-1 is not allowed; it must be an integer ≥ 0, or null"),
    (("optimizer=adam", "trial=1.5"), "trial=1.5 is not allowed; it must be an integer"),
    (("optimizer=adam", "trial=0", "lr_scale=3"), "lr_scale=3 is not allowed with trial=0"),
    (("+experiment=defaults_cifar10", "optimizer=adam", "trial=0"),
     "trial=0 is not allowed on the defaults track"),
])
def test_bad_tuning_input_is_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        run("task=cifar10_vgg11", *overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_shipped_spaces_bounds_reversed_in_a_copy_are_refused(tmp_path):
    space = tmp_path / "space.yaml"
    shipped = (CONF_DIR / "spaces" / "adam.yaml").read_text()
    space.write_text(shipped.replace("low: 0.1, high: 10", "low: 10, high: 0.1"))
    with pytest.raises(ConfigError, match=r"lr\.low=10 is not allowed; it must be below lr\.high=0\.1"):
        run("task=cifar10_vgg11", "optimizer=adam", "trial=0", f"space={space}")


def test_every_task_has_a_tuning_and_a_defaults_experiment():
    for name, task in TASKS.items():
        family = task.family.name
        for experiment in (TUNE[family], f"defaults_{family}"):
            cfg = compose(f"+experiment={experiment}", f"task={name}")
            assert cfg.results.root == "results/tuning"
            assert cfg.data.val_size == (5000 if family == "cifar10" else 0)


# -- AdaLA's lookahead_weight in the run identity -------------------------------------------------------------------
VGG = ("profile=smoke", "task=cifar10_vgg11", "optimizer=adala")
# Recorded in tests/data/smoke_reference.json before lookahead_weight existed.
VGG_ADALA_TAG = "lr0.001-betas0.9,0.999-eps1e-08-weight_decay0.0005-residuallookahead-lookahead_batchnext-bfb8b5e2"


def vgg_adala(*overrides: str) -> RunConfig:
    return RunConfig.of(compose(*VGG, *overrides))


@pytest.mark.parametrize("overrides", [(), ("optimizer.lookahead_weight=1",), ("optimizer.lookahead_weight=1.0",)])
def test_the_default_weight_names_nothing(overrides):
    config = vgg_adala(*overrides)
    assert config.tag == VGG_ADALA_TAG and config.takes_lookahead
    assert "lookahead_weight" not in config.identity["optimizer"]


def test_a_weight_between_0_and_1_names_the_run_and_keeps_the_lookahead_batch():
    config = vgg_adala("optimizer.lookahead_weight=0.25")
    assert config.takes_lookahead and config.identity["optimizer"]["lookahead_weight"] == 0.25
    assert "-lookahead_weight0.25-lookahead_batchnext-" in config.tag
    assert vgg_adala("optimizer.lookahead_weight=0.5").tag != config.tag
    assert vgg_adala("optimizer.lookahead_weight=0.25", "trainer.lookahead_batch=same").tag != config.tag


def test_weight_zero_takes_no_closure_so_its_directory_has_no_lookahead_batch():
    config = vgg_adala("optimizer.lookahead_weight=0.0")
    assert not config.takes_lookahead
    assert "lookahead_batch" not in config.identity["optimizer"] and "lookahead_batch" not in config.tag
    assert vgg_adala("optimizer.lookahead_weight=0.0", "trainer.lookahead_batch=same").tag == config.tag


@pytest.mark.parametrize("value, message", [
    ("1.5", "optimizer.lookahead_weight=1.5 is not allowed; it must be a number in [0, 1]"),
    ("-0.25", "optimizer.lookahead_weight=-0.25 is not allowed; it must be a number in [0, 1]"),
    ("heavy", "optimizer.lookahead_weight='heavy' is not allowed; it must be a number"),
])
def test_a_weight_outside_0_1_is_one_line_naming_the_key(value, message):
    with pytest.raises(ConfigError) as error:
        vgg_adala(f"optimizer.lookahead_weight={value}")
    assert str(error.value) == message


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 1e-05, 1.0])
def test_the_weight_reads_back_from_the_tag(weight):
    assert lookahead_weight_of_tag(vgg_adala(f"optimizer.lookahead_weight={weight}").tag) == weight


def test_the_claims_mix_sweep_is_every_task_at_five_weights():
    params = compose("+experiment=claims_mix", hydra=True).hydra.sweeper.params
    assert params.task.split(",") == list(TASKS)
    assert [float(w) for w in params["optimizer.lookahead_weight"].split(",")] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert compose("+experiment=claims_mix").optimizer.name == "adala"


def test_the_claims_mix_runs_at_w1_are_the_tables_adala_runs():
    tasks = "task=cifar10_vgg11,ptb_lstm1,gan_wgan"  # one of each family
    cells = sweep_cells(["+experiment=claims_mix", tasks, "seed=1"])
    assert sorted({lookahead_weight_of_tag(cell.run.tag) for cell in cells}) == [0.0, 0.25, 0.5, 0.75, 1.0]
    at_one = {cell.task: cell.path(1) for cell in cells if lookahead_weight_of_tag(cell.run.tag) == 1.0}
    tables = {cell.task: cell.path(1) for table, task in (("table2", "cifar10_vgg11"), ("table3", "ptb_lstm1"),
                                                          ("table4", "gan_wgan"))
              for cell in sweep_cells([f"+experiment={table}", f"task={task}", "optimizer=adala", "seed=1"])}
    assert at_one == tables and len(at_one) == 3
