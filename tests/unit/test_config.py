"""config.py and conf/: every task × optimizer config composes, carries the paper's as-run values (CIFAR-10, PTB at
each depth, the GANs) and builds its optimizer; the profiles (smoke, fast) and the experiments' sweeps; every value
checked in one line naming its key; what names a run directory (lr_scale, the recurrent switch); the SLURM launcher's
config. The tuning side (`trial=i` resolved to its point when the config is composed, the run named by the values it
gives, the trial recorded but no part of the name; the defaults track's package defaults, each checked against its
class's own signature; the bad input of a tuning sweep refused in one line naming the key), and the run identity of
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

from adala_bench import optim, search_space
from adala_bench.catalog import OPTIMIZER_ORDER, TASKS as CATALOGUE
from adala_bench.config import (CONF_DIR, ConfigError, RunConfig, lookahead_weight_of_tag, normalised,
                                run_identity)
from adala_bench.config import options as choices
from adala_bench.optim import MSVAG, AdaLA, Fromage
from adala_bench.settings import FID_DIMS, FidSettings, OptimizerSpec, TrainerSettings
from adala_bench.sweep_runs import sweep_cells
from helpers import compose, run_path

TASKS = ["cifar10_densenet121", "cifar10_resnet34", "cifar10_vgg11"]


def optimizer_hparams(cfg) -> dict:
    return dict(RunConfig.of(cfg).optimizer.hparams)

# PROTOCOL.md §4a, "as run" column (not the curve file names).
CIFAR10_AS_RUN = {
    "adala": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 5e-4, "residual": "lookahead",
              "lookahead_weight": 1.0},
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


# ---- PTB (Table 3) -----------------------------------------------------------------------------------------------

# PROTOCOL.md §4b, as run (not as the curve file names say); the 1-layer values where they differ.
WD = 1.2e-6
AS_RUN_DEEP = {
    "adala": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-12, "weight_decay": WD, "residual": "lookahead",
              "lookahead_weight": 1.0},
    "adabelief": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-12, "weight_decay": WD},
    "sgd": {"lr": 30.0, "momentum": 0.0, "weight_decay": WD},
    "adabound": {"lr": 1e-2, "betas": [0.9, 0.999], "final_lr": 30.0, "gamma": 1e-3, "eps": 1e-8, "weight_decay": WD},
    "yogi": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-3, "initial_accumulator": 1e-6, "weight_decay": WD},
    "adam": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": WD},
    "adamw": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": WD},
    "radam": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": WD},
    "msvag": {"lr": 30.0, "betas": [0.9, 0.999], "weight_decay": WD},
    "fromage": {"lr": 0.01},
}


ONE_LAYER = {
    "adala": {"lr": 1e-3, "eps": 1e-16}, "adabelief": {"lr": 1e-3, "eps": 1e-16},
    "adam": {"lr": 1e-3}, "adamw": {"lr": 1e-3}, "radam": {"lr": 1e-3},
}


def as_run(task: str, optimizer: str) -> dict:
    values = dict(AS_RUN_DEEP[optimizer])
    if task == "ptb_lstm1":
        values.update(ONE_LAYER.get(optimizer, {}))
    return values


@pytest.mark.parametrize("task", ["ptb_lstm1", "ptb_lstm2", "ptb_lstm3"])
@pytest.mark.parametrize("optimizer", sorted(AS_RUN_DEEP))
def test_every_depth_and_optimizer_composes_with_the_as_run_values(task, optimizer):
    paper = compose(f"task={task}", f"optimizer={optimizer}")
    assert dict(RunConfig.of(paper).optimizer.hparams) == as_run(task, optimizer)
    assert (paper.epochs, paper.batch_size, paper.task.clip_grad_norm) == (200, 20, 0.25)
    assert list(paper.task.schedule.milestones) == [100, 145] and paper.task.nlayers == int(task[-1])


def test_a_command_line_lr_wins_over_the_depths_value():
    assert RunConfig.of(compose("task=ptb_lstm3", "optimizer=adala", "optimizer.lr=0.5")).optimizer.hparams["lr"] == 0.5


def test_the_recurrent_switch_and_the_depths_get_their_own_run_directories():
    default = run_path(compose("profile=smoke", "task=ptb_lstm2", "optimizer=adala"))
    trained = run_path(compose("profile=smoke", "task=ptb_lstm2", "optimizer=adala", "task.lstm.train_recurrent=true"))
    assert default.parent != trained.parent and default.parent.parent == trained.parent.parent


# ---- the GANs (Table 4) ------------------------------------------------------------------------------------------

# PROTOCOL.md §4c, as run (the same for critic and generator).
GAN_AS_RUN = {
    "adala": {"lr": 2e-4, "betas": [0.5, 0.999], "eps": 1e-12, "weight_decay": 0.0},
    "adabelief": {"lr": 2e-4, "betas": [0.5, 0.999], "eps": 1e-12, "weight_decay": 0.0},
    "sgd": {"lr": 2e-4, "momentum": 0.0, "weight_decay": 0.0},
    "adabound": {"lr": 2e-4, "betas": [0.5, 0.999], "final_lr": 1e-2, "gamma": 1e-3, "eps": 1e-8, "weight_decay": 0.0},
    "yogi": {"lr": 2e-4, "betas": [0.5, 0.999], "eps": 1e-8, "initial_accumulator": 1e-6, "weight_decay": 0.0},
    "adam": {"lr": 2e-4, "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 0.0},
    "msvag": {"lr": 2e-4, "betas": [0.5, 0.999], "weight_decay": 0.0},
    "radam": {"lr": 2e-4, "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"lr": 2e-4, "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 1e-2},
    "fromage": {"lr": 2e-4},
}


@pytest.mark.parametrize("name", sorted(GAN_AS_RUN))
def test_hparams_files_hold_the_as_run_values_and_build(name):
    """conf/hparams/gan/<name>.yaml, as the task's defaults list picks it."""
    spec = OptimizerSpec(name, OmegaConf.to_container(OmegaConf.load(CONF_DIR / "hparams" / "gan" / f"{name}.yaml")))
    assert dict(spec.hparams) == GAN_AS_RUN[name]
    built = spec.build([torch.zeros(2, requires_grad=True)])
    assert built.param_groups[0]["lr"] == 2e-4
    assert built.param_groups[0].get("weight_decay", 0.0) == GAN_AS_RUN[name].get("weight_decay", 0.0)
    if "betas" in GAN_AS_RUN[name]:
        assert tuple(built.param_groups[0]["betas"]) == (0.5, 0.999)


@pytest.mark.parametrize("task, kind, model", [("gan_wgan", "wgan", "WGAN"), ("gan_wgan_gp", "wgan_gp", "WGAN-GP")])
def test_task_files_compose_with_the_gan_hparams(task, kind, model):
    cfg = compose(f"task={task}", "optimizer=yogi")
    assert (cfg.task.name, cfg.task.family, cfg.task.model, cfg.task.kind) == (task, "gan", model, kind)
    assert (cfg.epochs, cfg.batch_size, cfg.task.width, list(cfg.task.schedule.milestones)) == (100, 64, 1.0, [])
    assert RunConfig.of(cfg).optimizer.hparams == GAN_AS_RUN["yogi"]
    assert FidSettings(**OmegaConf.to_container(cfg.task.fid)) == FidSettings()  # the defaults are the protocol's
    assert FidSettings() == FidSettings(dims=2048, every=0, curve_samples=5000, final_samples=64000, real_images=None,
                                        batch_size=50)


# ---- profile=fast ------------------------------------------------------------------------------------------------

def test_the_fast_profile_composes_with_compile_on():
    """The one switch these tests turn off is on in the shipped profile (so the override above is the only change)."""
    assert compose("profile=fast", "task=cifar10_vgg11", "optimizer=adala").trainer.compile is True


def test_fast_composes_with_the_speed_switches_and_paper_has_none():
    fast = RunConfig.of(compose("profile=fast", "task=cifar10_resnet34", "optimizer=adala")).trainer
    assert (fast.precision, fast.channels_last, fast.compile, fast.fast) == ("bf16", True, True, True)
    paper = RunConfig.of(compose("task=cifar10_resnet34", "optimizer=adala")).trainer
    assert not paper.fast
    assert TrainerSettings.paper_switches() == {"precision": "fp32", "channels_last": False, "compile": False}
    with pytest.raises(ValueError, match="trainer.precision='fp16' is not allowed; allowed: fp32, bf16"):
        TrainerSettings(precision="fp16")


# ---- the lr search, lr_scale and the launchers -------------------------------------------------------------------

def test_search_experiments_sweep_lr_scale_around_the_as_run_lr():
    for experiment, tasks, val_size in (("search_cifar10", "cifar10_vgg11,cifar10_resnet34,cifar10_densenet121", 5000),
                                        ("search_ptb", "ptb_lstm1,ptb_lstm2,ptb_lstm3", 0)):
        cfg = compose(f"+experiment={experiment}", hydra=True)
        params = cfg.hydra.sweeper.params
        assert params.lr_scale == "0.1,0.3,1,3,10" and params.task == tasks
        assert params.optimizer == "fromage,adamw,radam,msvag,adam,yogi,adabound,sgd,adabelief,adala"
        assert cfg.data.val_size == val_size and cfg.results.root == "results/search"
    cfg = normalised(compose("+experiment=search_cifar10", "task=cifar10_vgg11", "optimizer=adam", "lr_scale=3"))
    assert cfg.optimizer.lr == 3e-3 and "lr_scale" not in cfg
    eps = compose("+experiment=search_ptb_eps", hydra=True)
    params = eps.hydra.sweeper.params
    assert (params.task, params.optimizer, params["optimizer.eps"], params.lr_scale) == (
        "ptb_lstm1,ptb_lstm2,ptb_lstm3", "adabelief,adala", "1e-16,1e-12,1e-8", "0.1,0.3,1,3,10")
    assert eps.data.val_size == 0 and eps.results.root == "results/search"
    cfg = normalised(compose("+experiment=search_ptb_eps", "task=ptb_lstm2", "optimizer=adala",
                             "optimizer.eps=1e-16", "lr_scale=0.3"))
    assert (cfg.optimizer.lr, cfg.optimizer.eps) == (1e-2 * 0.3, 1e-16)  # AdaLA at AdaBelief's 2-layer lr


def test_slurm_launcher_config_asks_one_gpu_per_run():
    cfg = compose("hydra/launcher=slurm_gpu", hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.gpus_per_node, launcher.tasks_per_node) == (1, 1)


def test_lr_scale_names_the_run_by_the_lr_it_gives(smoke):
    scaled = smoke("task=cifar10_vgg11", "optimizer=adam", "lr_scale=3")
    plain = smoke("task=cifar10_vgg11", "optimizer=adam", f"optimizer.lr={1e-3 * 3!r}")
    with pytest.raises(ValueError, match="lr_scale is still in the config"):
        run_identity(scaled, takes_lookahead=False)
    assert normalised(scaled).optimizer.lr == 1e-3 * 3 and run_path(scaled) == run_path(plain)
    assert run_path(scaled).parent.name.startswith("lr0.003-")
    assert RunConfig.of(scaled).cfg.get("lr_scale") is None and scaled.lr_scale == 3  # normalised a copy
    with pytest.raises(ConfigError, match="lr_scale=-1 is not allowed; it must be a number > 0"):
        RunConfig.of(smoke("task=cifar10_vgg11", "optimizer=adam", "lr_scale=-1"))


# ---- tuning, the defaults track and AdaLA's lookahead_weight -----------------------------------------------------

TUNE = {"cifar10": "tune_cifar10", "ptb": "tune_ptb", "gan": "tune_gan"}
ONE_TASK = {"cifar10": "cifar10_resnet34", "ptb": "ptb_lstm2", "gan": "gan_wgan_gp"}


def run(*overrides: str) -> RunConfig:
    return RunConfig.of(compose(*overrides))


@pytest.mark.parametrize("family", sorted(ONE_TASK))
@pytest.mark.parametrize("trial", [0, 6])
def test_trial_i_gives_every_optimizer_the_same_point_of_the_unit_cube(trial, family):
    """The lr coordinate (the first) of trial i is the same quantile of every optimizer's lr range, on every task;
    eps (the second) the same for the Adam family."""
    u, task = search_space.sobol_point(trial), ONE_TASK[family]
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
    for name, task in CATALOGUE.items():
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
    assert params.task.split(",") == list(CATALOGUE)
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
