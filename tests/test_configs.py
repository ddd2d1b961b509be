"""Every task × optimizer config composes, carries the paper's as-run values, and builds its optimizer."""

from __future__ import annotations

import pytest
import torch

from adala_bench import optim
from adala_bench.catalog import BUILT_TASKS, OPTIMIZER_ORDER, TASKS as CATALOGUE
from adala_bench.runner import CONF_DIR, choices, optimizer_spec

from conftest import compose_config

TASKS = ["cifar10_densenet121", "cifar10_resnet34", "cifar10_vgg11"]


def optimizer_hparams(cfg) -> dict:
    return dict(optimizer_spec(cfg).hparams)

# PROTOCOL.md §4a, "as run" column (not the curve file names).
CIFAR10_AS_RUN = {
    "adala": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 5e-4, "residual": "lookahead"},
    "adabelief": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 5e-4},
    "sgd": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
    "adam": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 5e-4},
    "adamw": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 1e-2},
    "radam": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 5e-4},
    "yogi": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-3, "initial_accumulator": 1e-6, "weight_decay": 5e-4},
    "adabound": {"lr": 1e-3, "betas": [0.9, 0.999], "final_lr": 0.1, "gamma": 1e-3, "eps": 1e-8, "weight_decay": 5e-4},
    "msvag": {"lr": 0.1, "betas": [0.9, 0.999], "weight_decay": 5e-4},
    "fromage": {"lr": 0.01},
}


def test_config_groups_offer_every_task_and_every_registered_optimizer():
    assert choices("task") == TASKS + ["gan_wgan", "gan_wgan_gp", "ptb_lstm1", "ptb_lstm2", "ptb_lstm3"]
    assert sorted(choices("optimizer")) == sorted(optim.OPTIMIZER_NAMES + ("custom",))
    assert choices("profile") == ["fast", "paper", "smoke"]


def test_conf_the_registry_and_the_report_share_one_catalogue():
    """conf/task holds exactly the built tasks, each with the catalogue's family and model; conf/optimizer and every
    built family's conf/hparams hold exactly the registry's optimizers, which are the catalogue's rows."""
    assert sorted(choices("task")) == sorted(BUILT_TASKS)
    assert optim.OPTIMIZER_NAMES == OPTIMIZER_ORDER
    assert sorted(choices("optimizer")) == sorted(OPTIMIZER_ORDER + ("custom",))
    for name in BUILT_TASKS:
        task = compose_config(f"task={name}").task
        assert (task.name, task.family, task.model) == (name, CATALOGUE[name].family.name, CATALOGUE[name].model)
        assert any((CONF_DIR / "hparams" / task.family).rglob("*.yaml")), name
    for folder in {path.parent for path in (CONF_DIR / "hparams").rglob("*.yaml")}:
        assert sorted(path.stem for path in folder.glob("*.yaml")) == sorted(OPTIMIZER_ORDER + ("custom",)), folder
    coming = [name for name, task in CATALOGUE.items() if not task.built]
    assert not any((CONF_DIR / "task" / f"{name}.yaml").exists() for name in coming)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("optimizer", sorted(CIFAR10_AS_RUN))
def test_every_task_and_optimizer_composes_with_the_as_run_values(task, optimizer):
    cfg = compose_config(f"task={task}", f"optimizer={optimizer}")
    assert cfg.task.name == task and cfg.optimizer.name == optimizer
    assert optimizer_hparams(cfg) == CIFAR10_AS_RUN[optimizer]
    built = optim.build(optimizer, [torch.zeros(2, requires_grad=True)], **optimizer_hparams(cfg))
    group = built.param_groups[0]
    assert group["lr"] == CIFAR10_AS_RUN[optimizer]["lr"]
    assert group.get("weight_decay", 0) == CIFAR10_AS_RUN[optimizer].get("weight_decay", 0)
    # the paper protocol for every CIFAR-10 model
    assert (cfg.epochs, cfg.batch_size, list(cfg.task.schedule.milestones), cfg.task.schedule.gamma) == (200, 128, [150], 0.1)
    assert cfg.data.source == "real" and cfg.data.val_size == 0 and cfg.task.width == 1.0


def test_command_line_values_win_over_the_family_values():
    cfg = compose_config("task=cifar10_vgg11", "optimizer=sgd", "optimizer.lr=0.05", "epochs=7", "batch_size=64")
    assert optimizer_hparams(cfg) == {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
    assert (cfg.epochs, cfg.batch_size) == (7, 64)


def test_smoke_profile_is_tiny_cpu_and_synthetic():
    cfg = compose_config("profile=smoke", "task=cifar10_densenet121", "optimizer=adala")
    assert (cfg.epochs, cfg.batch_size, cfg.device, cfg.data.source, cfg.task.width) == (2, 32, "cpu", "synthetic", 0.125)
    assert (cfg.data.synthetic.n_train, cfg.data.synthetic.n_test) == (256, 128)
    assert cfg.trainer.lookahead_batch == "next" and cfg.optimizer.residual == "lookahead"


def test_table2_experiment_sweeps_all_models_and_optimizers():
    cfg = compose_config("+experiment=table2", return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert sorted(params.task.split(",")) == TASKS
    assert sorted(params.optimizer.split(",")) == sorted(optim.OPTIMIZER_NAMES)


def test_table3_experiment_sweeps_all_depths_and_optimizers():
    cfg = compose_config("+experiment=table3", return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.task.split(",") == ["ptb_lstm1", "ptb_lstm2", "ptb_lstm3"]
    assert params.optimizer.split(",") == list(OPTIMIZER_ORDER)


def test_table4_experiment_sweeps_both_gans_and_all_optimizers():
    cfg = compose_config("+experiment=table4", return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.task.split(",") == ["gan_wgan", "gan_wgan_gp"]
    assert params.optimizer.split(",") == list(OPTIMIZER_ORDER)
