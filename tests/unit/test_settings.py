"""settings.py, the one checker of the config's values (each refusal from a composed config: tests/unit/test_config.py):
the trainer's paper defaults and clipping; the `logger` config group as the runner reads it: which trackers a
spelling chooses, their settings checked in one line, and a logger never part of the run's identity (the trackers
themselves run in tests/e2e/test_trackers.py)."""

from __future__ import annotations

import pytest

from adala_bench.config import ConfigError, RunConfig
from adala_bench.settings import SettingsError, TrainerSettings
from helpers import compose


def test_the_paper_trainer_defaults_are_the_settings_own_and_clipping_is_checked_by_them():
    assert TrainerSettings.paper_switches() == {"precision": "fp32", "channels_last": False, "compile": False}
    assert not TrainerSettings().fast and TrainerSettings(compile=True).fast
    with pytest.raises(SettingsError, match=r"task.clip_grad_norm=0 is not allowed; it must be > 0 or null"):
        TrainerSettings(clip_grad_norm=0)
    assert TrainerSettings(clip_grad_norm=0.25).clip_grad_norm == 0.25


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
