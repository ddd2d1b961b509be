"""The `logger` config group as the runner reads it: which trackers a spelling chooses, their settings checked in one
line, and a logger never part of the run's identity (the trackers themselves run in tests/e2e/test_trackers.py)."""

from __future__ import annotations

import pytest

from adala_bench.config import ConfigError, RunConfig
from adala_bench.overrides import check_groups
from helpers import compose


@pytest.mark.parametrize("overrides,names", [
    ((), ()),
    (("logger=none",), ()),
    (("logger=tensorboard",), ("tensorboard",)),
    (("logger=[mlflow,tensorboard]",), ("tensorboard", "mlflow")),
    (("logger=[tensorboard,mlflow,wandb]",), ("tensorboard", "mlflow", "wandb")),
])
def test_a_spelling_chooses_its_trackers_and_never_the_run(overrides, names):
    run = RunConfig.of(compose("task=cifar10_vgg11", "optimizer=adala", *overrides))
    assert run.run.logger.names == names
    plain = RunConfig.of(compose("task=cifar10_vgg11", "optimizer=adala"))
    assert (run.tag, run.path) == (plain.tag, plain.path)


def test_each_trackers_settings_come_from_its_own_keys():
    chosen = RunConfig.of(compose(
        "task=cifar10_vgg11", "optimizer=adam", "logger=[mlflow,wandb]", "logger.mlflow.tracking_uri=http://127.0.0.1:5000",
        "logger.mlflow.experiment=mine", "logger.wandb.project=lab", "logger.wandb.entity=team",
        "logger.wandb.group=g", "logger.wandb.mode=online")).run.logger
    assert (chosen.mlflow.tracking_uri, chosen.mlflow.experiment) == ("http://127.0.0.1:5000", "mine")
    assert (chosen.wandb.project, chosen.wandb.entity, chosen.wandb.group, chosen.wandb.mode) == ("lab", "team", "g",
                                                                                                    "online")
    defaults = RunConfig.of(compose("task=cifar10_vgg11", "optimizer=adam", "logger=[mlflow,wandb]")).run.logger
    assert (defaults.mlflow.tracking_uri, defaults.mlflow.experiment) == (None, None)
    assert (defaults.wandb.project, defaults.wandb.entity, defaults.wandb.group, defaults.wandb.mode) == (
        "adala-bench", None, None, None)


def test_a_bad_wandb_mode_is_one_line_naming_the_key():
    with pytest.raises(ConfigError) as error:
        RunConfig.of(compose("task=cifar10_vgg11", "optimizer=adam", "logger=wandb", "logger.wandb.mode=sometimes"))
    assert str(error.value) == ("logger.wandb.mode='sometimes' is not allowed; allowed: offline, online, or null "
                                "($WANDB_MODE, else offline)")


def test_a_key_of_the_logger_section_that_names_no_tracker_is_refused():
    with pytest.raises(ConfigError, match=r"^logger.comet is not a tracker; allowed: tensorboard, mlflow, wandb$"):
        RunConfig.of(compose("task=cifar10_vgg11", "optimizer=adam", "+logger.comet.project=x"))


@pytest.mark.parametrize("override", ["logger=comet", "logger=[tensorboard,comet]", "logger=none,comet"])
def test_an_unknown_logger_is_refused_before_hydra_composes(override):
    with pytest.raises(ConfigError, match="^unknown logger 'comet'; allowed: mlflow, none, tensorboard, wandb$"):
        check_groups([override])


@pytest.mark.parametrize("overrides,name", [
    (("hydra.mode=RUN",), None),  # a single run belongs to no sweep
    (("hydra.mode=MULTIRUN", "hydra.sweep.dir=/x/outputs/multirun/2026-01-02_03-04-05"), "2026-01-02_03-04-05"),
    (("hydra.mode=MULTIRUN", "hydra.sweep.dir=/x/results/sweep-logs/lr-probe/worker3"), "lr-probe"),  # adala-sweep's
    (("hydra.mode=MULTIRUN", "+experiment=table3", "hydra.sweep.dir=/x/results/sweep-logs/t/worker0"), "table3"),
])
def test_a_sweep_is_named_by_its_experiment_else_by_its_folder(monkeypatch, overrides, name):
    """What groups a sweep's tracker runs, read from the job's Hydra config as a running job has it."""
    from hydra.core.hydra_config import HydraConfig

    from adala_bench.trackers import sweep_name

    hydra = HydraConfig.instance()
    monkeypatch.setattr(hydra, "cfg", hydra.cfg)  # put back after the test
    hydra.set_config(compose("task=cifar10_vgg11", "optimizer=adam", *overrides, hydra=True))
    assert sweep_name() == name
