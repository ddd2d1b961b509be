"""Every task × optimizer config composes, carries the paper's as-run values, and builds its optimizer."""

from __future__ import annotations

import pytest
import torch

from adala_bench import optim
from adala_bench.catalog import OPTIMIZER_ORDER, TASKS as CATALOGUE
from adala_bench.config import CONF_DIR, ConfigError, RunConfig
from adala_bench.config import options as choices
from adala_bench.settings import FID_DIMS, FidSettings, SettingsError, TrainerSettings

from helpers import compose

TASKS = ["cifar10_densenet121", "cifar10_resnet34", "cifar10_vgg11"]


def optimizer_hparams(cfg) -> dict:
    return dict(RunConfig.of(cfg).optimizer.hparams)

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
    assert sorted(choices("optimizer")) == sorted(OPTIMIZER_ORDER + ("custom",))
    assert choices("profile") == ["fast", "paper", "smoke"]


def test_conf_the_registry_and_the_report_share_one_catalogue():
    """conf/task holds exactly the catalogue's tasks, each with its family and model; conf/optimizer and every
    family's conf/hparams hold exactly the registry's optimizers, which are the catalogue's rows."""
    assert sorted(choices("task")) == sorted(CATALOGUE)
    assert sorted(choices("optimizer")) == sorted(OPTIMIZER_ORDER + ("custom",))
    for name in CATALOGUE:
        task = compose(f"task={name}").task
        assert (task.name, task.family, task.model) == (name, CATALOGUE[name].family.name, CATALOGUE[name].model)
        assert any((CONF_DIR / "hparams" / task.family).rglob("*.yaml")), name
    for folder in {path.parent for path in (CONF_DIR / "hparams").rglob("*.yaml")}:
        assert sorted(path.stem for path in folder.glob("*.yaml")) == sorted(OPTIMIZER_ORDER + ("custom",)), folder
    # the settings' list of FID dims is pytorch-fid's
    from pytorch_fid.inception import InceptionV3
    assert FID_DIMS == tuple(InceptionV3.BLOCK_INDEX_BY_DIM)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("optimizer", sorted(CIFAR10_AS_RUN))
def test_every_task_and_optimizer_composes_with_the_as_run_values(task, optimizer):
    cfg = compose(f"task={task}", f"optimizer={optimizer}")
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
    cfg = compose("task=cifar10_vgg11", "optimizer=sgd", "optimizer.lr=0.05", "epochs=7", "batch_size=64")
    assert optimizer_hparams(cfg) == {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
    assert (cfg.epochs, cfg.batch_size) == (7, 64)


def test_smoke_profile_is_tiny_cpu_and_synthetic():
    cfg = compose("profile=smoke", "task=cifar10_densenet121", "optimizer=adala")
    assert (cfg.epochs, cfg.batch_size, cfg.device, cfg.data.source, cfg.task.width) == (2, 32, "cpu", "synthetic", 0.125)
    assert (cfg.data.synthetic.n_train, cfg.data.synthetic.n_test) == (256, 128)
    assert cfg.trainer.lookahead_batch == "next" and cfg.optimizer.residual == "lookahead"


def test_table2_experiment_sweeps_all_models_and_optimizers():
    cfg = compose("+experiment=table2", hydra=True)
    params = cfg.hydra.sweeper.params
    assert sorted(params.task.split(",")) == TASKS
    assert sorted(params.optimizer.split(",")) == sorted(OPTIMIZER_ORDER)


def test_table3_experiment_sweeps_all_depths_and_optimizers():
    cfg = compose("+experiment=table3", hydra=True)
    params = cfg.hydra.sweeper.params
    assert params.task.split(",") == ["ptb_lstm1", "ptb_lstm2", "ptb_lstm3"]
    assert params.optimizer.split(",") == list(OPTIMIZER_ORDER)


def test_table4_experiment_sweeps_both_gans_and_all_optimizers():
    cfg = compose("+experiment=table4", hydra=True)
    params = cfg.hydra.sweeper.params
    assert params.task.split(",") == ["gan_wgan", "gan_wgan_gp"]
    assert params.optimizer.split(",") == list(OPTIMIZER_ORDER)


def test_the_smoke_profile_keeps_each_familys_schedule_shape_and_sizes_fid_for_a_cpu():
    for task in ("cifar10_vgg11", "ptb_lstm2"):  # the protocol's step decay, brought forward to epoch 1
        assert list(compose("profile=smoke", f"task={task}").task.schedule.milestones) == [1]
    for task in ("gan_wgan", "gan_wgan_gp"):  # the protocol's constant lr, and a CPU-sized FID
        cfg = compose("profile=smoke", f"task={task}")
        assert list(cfg.task.schedule.milestones) == []
        fid = RunConfig.of(cfg).task_settings.fid
        assert (fid.dims, fid.every, fid.curve_samples, fid.final_samples, fid.real_images) == (64, 1, 16, 32, 64)
        paper = RunConfig.of(compose(f"task={task}")).task_settings.fid
        assert paper == FidSettings()  # the paper profile: the protocol's FID (2048-d, 64,000 fakes)
    # the command line still wins over the profile
    assert compose("profile=smoke", "task=gan_wgan", "task.fid.final_samples=128").task.fid.final_samples == 128


@pytest.mark.parametrize("overrides, message", [
    (["task=ptb_lstm1", "task.lstm.train_recurrent=maybe"],
     "task.lstm.train_recurrent='maybe' is not allowed; it must be true or false"),
    (["optimizer.lr=abc"], "optimizer.lr='abc' is not allowed; it must be a number"),
    (["optimizer.betas=[0.9]"], "optimizer.betas=[0.9] is not allowed; it must be a pair of numbers"),
    (["optimizer=adala", "optimizer.residual=1"], "optimizer.residual=1 is not allowed; it must be a string"),
    (["task=ptb_lstm1", "task.clip_grad_norm=0"], "task.clip_grad_norm=0 is not allowed; it must be > 0 or null"),
    (["task=ptb_lstm1", "task.clip_grad_norm=-1"], "task.clip_grad_norm=-1 is not allowed; it must be > 0 or null"),
    (["task=ptb_lstm1", "task.clip_grad_norm=big"], "task.clip_grad_norm='big' is not allowed; it must be a number"),
    (["task.schedule.milestones=[1.5]"], "task.schedule.milestones[0]=1.5 is not allowed; it must be an integer"),
    (["task.schedule.gamma=0"], "task.schedule.gamma=0 is not allowed; it must be a number > 0"),
    (["trainer.compile=yes"], "trainer.compile='yes' is not allowed; it must be true or false"),
    (["data.val_size=-1"], "data.val_size=-1 is not allowed; it must be an integer ≥ 0"),
    (["data.source=fake"], "data.source='fake' is not allowed; allowed: real, synthetic"),
    (["lr_scale=0"], "lr_scale=0 is not allowed; it must be a number > 0"),
    (["lr_scale=big"], "lr_scale='big' is not allowed; it must be a number"),
    (["lr_scale=3", "optimizer.lr=abc"], "optimizer.lr='abc' is not allowed; it must be a number"),
    (["data.synthetic.n_train=0"], "data.synthetic.n_train=0 is not allowed; it must be a positive integer"),
    (["task=gan_wgan", "task.fid.real_images=1"], "task.fid.real_images=1 is not allowed; it must be an integer ≥ 2"),
    (["task=gan_wgan", "task.kind=lsgan"], "task.kind='lsgan' is not allowed; allowed: wgan, wgan_gp"),
    (["task.arch=vgg19"], "task.arch='vgg19' is not allowed; allowed: vgg11, resnet34, densenet121"),
    (["device=cuda:x"], "device='cuda:x' is not allowed; allowed: auto, cpu, cuda, cuda:<index>"),
    (["epochs=2.5"], "epochs=2.5 is not allowed; it must be an integer"),
])
def test_every_value_is_checked_where_its_key_is_defined_and_the_error_names_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        RunConfig.of(compose(*overrides))
    assert str(error.value) == message or str(error.value).startswith(message), str(error.value)


def test_the_paper_trainer_defaults_are_the_settings_own_and_clipping_is_checked_by_them():
    assert TrainerSettings.paper_switches() == {"precision": "fp32", "channels_last": False, "compile": False}
    assert not TrainerSettings().fast and TrainerSettings(compile=True).fast
    with pytest.raises(SettingsError, match=r"task.clip_grad_norm=0 is not allowed; it must be > 0 or null"):
        TrainerSettings(clip_grad_norm=0)
    assert TrainerSettings(clip_grad_norm=0.25).clip_grad_norm == 0.25


def test_the_config_yaml_records_the_epochs_and_batch_size_that_run():
    run = RunConfig.of(compose("profile=smoke", "task=cifar10_vgg11"))
    recorded = run.recorded()
    assert (recorded.epochs, recorded.task.epochs, recorded.batch_size, recorded.task.batch_size) == (2, 2, 32, 32)
    assert run.cfg.task.epochs == 200  # what the run's identity is computed from, as before


def test_the_store_knows_no_config_key():
    """store.py is files only: it imports nothing of the config and names no key of it."""
    import re

    from adala_bench import store

    source = open(store.__file__).read()
    assert not re.search(r"lr_scale|lookahead_batch|optimizer\.|cfg\.|trainer\.|run_identity|hparam_tag", source)
