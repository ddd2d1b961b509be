"""The one owner of config meaning: conf/ composed by Hydra → what one run is.

    compose(*overrides)   conf/ composed exactly as adala-train composes it (from outside a running Hydra app)
    options(group)        the choices of a config group (task, optimizer, profile, experiment)
    RunConfig.of(cfg)     the config in its one spelling, every value checked (one line naming the key), and all
                          that the layers below take: typed settings, the optimizer spec, whether it takes the
                          look-ahead closure, and the run's identity (its hparam tag and run directory)

The run directory is named from the resolved config, never from a timestamp:
<results.root>/<task>/<optimizer>/<hparam-tag>/seed=<n>. The tag spells out the optimizer's hyperparameters and ends
in a digest of everything else that changes what the run computes; seed, device, data root, results root, logger
and a tuning run's `tuning` record (its track and trial: a trial is named by the values it gives) are left out.
`trainer.lookahead_batch` counts only for an optimizer that takes the look-ahead closure and is spelled
among its hyperparameters (as `optimizer.lookahead_batch`, where it stood when the names were first given); the
speed switches count only where they differ from the paper's protocol, and then the tag says `fast`;
`trainer.deterministic` counts only when true, and then the tag says `det`. A hyperparameter added after the names
were given (LATER_HPARAMS) names a run only away from its default, so that every run named before keeps its directory.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from adala_bench import search_space
from adala_bench.catalog import FAMILIES, TASKS
from adala_bench.settings import (DataSettings, FidSettings, GanTaskSettings, ImageTaskSettings, LanguageTaskSettings,
                                  LoggerSettings, LrScale, OptimizerSpec, RunSettings, Schedule, SettingsError,
                                  TrainerSettings, TuningSettings)
from adala_bench.store import layout_path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
CUSTOM = "custom"  # conf/optimizer/custom.yaml: any optimizer class by import path
# Optimizer config keys that are not constructor arguments.
NOT_HPARAMS = ("name",)
# Keys that decide where files go or what hardware runs, not what is computed: left out of the run's identity.
# `tuning` records a tuning run's track and trial (its values name it).
NON_IDENTITY_KEYS = ("seed", "device", "data.root", "results", "logger", "tuning")
FAST_MARK = "fast"
DETERMINISTIC_MARK = "det"  # trainer.deterministic=true
# Optimizer hyperparameters added after the run names were first given, with the default that names nothing.
LATER_HPARAMS = {"adala": {"lookahead_weight": 1.0}}


class ConfigError(ValueError):
    """Bad input: reported as one line, exit status 2."""


def compose(*overrides: str, hydra: bool = False) -> DictConfig:
    """conf/ composed with these overrides, as adala-train composes one job (with the `hydra` node if asked).

    A process composes the same overrides again and again (a sweep's cells, an lr search's as-run values, tests): each
    is composed once and handed out as a copy, since Hydra's composition costs a tenth of a second. conf/ is read
    once per process; the `hydra` node (timestamps) is never cached."""
    if hydra:
        return _compose(overrides, hydra=True)
    if overrides not in _composed:
        if len(_composed) >= 512:
            _composed.clear()
        _composed[overrides] = _compose(overrides, hydra=False)
    return copy.deepcopy(_composed[overrides])


_composed: dict[tuple[str, ...], DictConfig] = {}


def _compose(overrides: tuple[str, ...], hydra: bool) -> DictConfig:
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=hydra)


def options(group: str) -> list[str]:
    """The choices of a config group: the names of its YAML files."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


@dataclass(frozen=True)
class RunConfig:
    """One run, as every layer below the config sees it."""

    cfg: DictConfig  # in its one spelling: what the run's identity is computed from
    run: RunSettings
    task: str
    family: str
    task_settings: ImageTaskSettings | LanguageTaskSettings | GanTaskSettings
    data: DataSettings
    optimizer: OptimizerSpec
    takes_lookahead: bool  # whether the optimizer asks for the look-ahead closure (decided from the optimizer)
    trainer: TrainerSettings
    schedule: Schedule
    results_root: Path

    @classmethod
    def of(cls, cfg: DictConfig) -> "RunConfig":
        """Check and read a composed config (ConfigError in one line naming the key)."""
        cfg = normalised(cfg)
        try:
            return cls._read(cfg)
        except SettingsError as error:
            raise ConfigError(str(error)) from None

    @classmethod
    def _read(cls, cfg: DictConfig) -> "RunConfig":
        task = cfg.task.name
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
        family = TASKS[task].family.name
        if cfg.task.get("family") != family:
            raise ConfigError(f"task.family={cfg.task.get('family')!r} is not allowed for {task}; it is {family!r}")
        values = OmegaConf.to_container(cfg, resolve=True)
        spec, takes_lookahead = optimizer_spec(values["optimizer"])
        return cls(
            cfg=cfg,
            run=RunSettings(seed=values["seed"], epochs=values["epochs"], batch_size=values["batch_size"],
                            device=values["device"], logger=LoggerSettings.of(values["logger"])),
            task=task,
            family=family,
            task_settings=task_settings(family, values["task"]),
            data=DataSettings(root=values["data"]["root"], source=values["data"]["source"],
                              val_size=values["data"]["val_size"], **values["data"]["synthetic"]),
            optimizer=spec,
            takes_lookahead=takes_lookahead,
            trainer=TrainerSettings(**values["trainer"], clip_grad_norm=values["task"].get("clip_grad_norm")),
            schedule=Schedule(**values["task"]["schedule"]),
            results_root=Path(values["results"]["root"]),
        )

    @property
    def identity(self) -> dict[str, Any]:
        return run_identity(self.cfg, self.takes_lookahead)

    @property
    def tag(self) -> str:
        return hparam_tag(self.identity)

    @property
    def path(self) -> Path:
        return layout_path(self.results_root, self.task, self.optimizer.name, self.tag, self.run.seed)

    def recorded(self) -> DictConfig:
        """What the run's config.yaml records: the config, resolved, with the task's protocol epochs and batch size
        given way to the ones this run trains with (a profile or the command line may set those)."""
        recorded = OmegaConf.create(OmegaConf.to_container(self.cfg, resolve=True))
        recorded.task.epochs, recorded.task.batch_size = self.run.epochs, self.run.batch_size
        return recorded


def normalised(cfg: DictConfig) -> DictConfig:
    """The config in its one spelling (a copy):
    - `optimizer=custom optimizer._target_=pkg.Class`: the optimizer's name becomes its import path (its run
      directories and its rows in the report are named after it);
    - `lr_scale=k` (an lr search, conf/experiment/search_*.yaml) multiplies the as-run lr: the run is the one that
      `optimizer.lr=<lr·k>` names, so a chosen setting is re-run by its lr alone;
    - `trial=i` (a tuning sweep, conf/experiment/tune_*.yaml) sets the hyperparameters of the optimizer's search space
      to trial i's point (search_space.py): the run is the one those values name, and `tuning` records the trial.
    """
    cfg = copy.deepcopy(cfg)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} has no value; give it on the command line, e.g. {missing[0]}=...")
    with open_dict(cfg):
        if cfg.optimizer.name == CUSTOM:
            target = cfg.optimizer.pop("_target_")
            if not isinstance(target, str) or "." not in target:
                raise ConfigError(f"optimizer._target_={target!r} is not allowed; give a class's import path, "
                                  "e.g. torch.optim.Adamax")
            cfg.optimizer.name = target
    resolve_trial(cfg)  # after the custom optimizer has its name, before lr_scale (which a trial refuses) goes
    with open_dict(cfg):
        scale = cfg.pop("lr_scale", 1.0)
        if scale != 1.0:
            try:
                cfg.optimizer.lr = LrScale(lr_scale=scale, lr=cfg.optimizer.get("lr")).scaled_lr
            except SettingsError as error:
                raise ConfigError(str(error)) from None
    return cfg


def resolve_trial(cfg: DictConfig) -> None:
    """Take `trial`, `trials` and `space` out of the config (in place); for a trial, set the optimizer's searched
    hyperparameters to its point and record `tuning: {track: tuned, trial: i}` (not part of the run's identity)."""
    with open_dict(cfg):
        try:
            tuning = TuningSettings(trial=cfg.pop("trial", None), trials=cfg.pop("trials", TuningSettings.trials),
                                    space=cfg.pop("space", None))
        except SettingsError as error:
            raise ConfigError(str(error)) from None
        if tuning.trial is None:
            return
        if cfg.get("lr_scale", 1.0) != 1.0:
            raise ConfigError(f"lr_scale={cfg.lr_scale!r} is not allowed with trial={tuning.trial}: a trial sets the "
                              "lr of its own search space")
        if "tuning" in cfg:
            raise ConfigError(f"trial={tuning.trial} is not allowed on the defaults track (+experiment=defaults_*): "
                              "its runs take the packages' defaults, untuned")
        name = cfg.optimizer.name  # a custom optimizer's import path by now
        path = CONF_DIR / "spaces" / f"{name}.yaml" if tuning.space is None else Path(tuning.space)
        if tuning.space is None and not path.is_file():
            raise ConfigError(f"space: optimizer {name} has no search space in conf/spaces/; give space=<a YAML file> "
                              "(docs/USAGE.md, A tuning budget)")
        section = OmegaConf.to_container(cfg.optimizer, resolve=True)
        try:
            dimensions = search_space.load(path, section, name)
        except SettingsError as error:
            raise ConfigError(str(error)) from None
        for key, value in search_space.trial_values(tuning.trial, dimensions, section).items():
            cfg.optimizer[key] = value
        cfg.tuning = {"track": search_space.TUNED, "trial": tuning.trial}


def check_trials(trials: Any) -> None:
    """ConfigError in one line unless the tuning budget `trials` is an integer ≥ 1."""
    try:
        TuningSettings(trials=trials)
    except SettingsError as error:
        raise ConfigError(str(error)) from None


def optimizer_spec(section: dict[str, Any]) -> tuple[OptimizerSpec, bool]:
    """The optimizer section as the registry takes it, and whether that optimizer asks for the look-ahead closure.

    Both come from building it once on a probe parameter: the registry checks every name and value, and the answer
    is the trainer's own test (optim.needs_closure) asked of an instance, since it may depend on a hyperparameter
    (AdaLA with residual=ema takes none)."""
    import torch

    from adala_bench import optim

    name = section["name"]
    spec = OptimizerSpec(name, {key: value for key, value in section.items() if key not in NOT_HPARAMS})
    try:
        probe = spec.build([torch.zeros(1, requires_grad=True)])
    except optim.HparamError as error:
        raise ConfigError(f"optimizer.{error}") from None
    except (ValueError, TypeError) as error:
        raise ConfigError(f"optimizer {name}: {error}") from None
    return spec, optim.needs_closure(probe)


def task_settings(family: str, task: dict[str, Any]):
    """The task section as the family's settings (tasks/ builds the task from these)."""
    if family == "cifar10":
        return ImageTaskSettings(arch=task["arch"], width=task["width"])
    if family == "ptb":
        return LanguageTaskSettings(nlayers=task["nlayers"], width=task["width"],
                                    train_recurrent=task["lstm"]["train_recurrent"], **task["synthetic"])
    if family == "gan":
        return GanTaskSettings(kind=task["kind"], width=task["width"], fid=FidSettings(**task["fid"]))
    raise ConfigError(f"task family {family!r} is not known; known: {', '.join(FAMILIES)}")


# -- run identity -------------------------------------------------------------------------------------------------
def run_identity(cfg: DictConfig, takes_lookahead: bool) -> dict[str, Any]:
    """The normalised config as far as it decides what a run computes (see the module docstring)."""
    identity = OmegaConf.to_container(cfg, resolve=True)
    if "lr_scale" in identity:
        raise ValueError("lr_scale is still in the config: name the run from RunConfig.of(cfg), which turns it into "
                         "the lr it means")
    optimizer = identity["optimizer"]
    for key, default in LATER_HPARAMS.get(optimizer["name"], {}).items():
        if optimizer.get(key) == default:
            del optimizer[key]
    trainer = identity.pop("trainer", {})
    lookahead_batch = trainer.pop("lookahead_batch", "next")
    if takes_lookahead:
        identity["optimizer"]["lookahead_batch"] = lookahead_batch
    defaults = TrainerSettings.defaults()  # the paper's protocol: a run that keeps them is named as before they existed
    trainer = {key: value for key, value in trainer.items() if defaults.get(key, object()) != value}
    if trainer:
        identity["trainer"] = trainer
    for dotted in NON_IDENTITY_KEYS:
        _drop(identity, dotted)
    return identity


def hparam_tag(identity: dict[str, Any]) -> str:
    """A readable, deterministic name for everything but task, optimizer and seed: the optimizer's hyperparameters
    spelled out, then an 8-hex digest of the whole identity, so two runs share a directory only if they would compute
    the same thing."""
    readable = "-".join(f"{key}{_short(value)}" for key, value in identity["optimizer"].items() if key != "name")
    trainer = identity.get("trainer", {})
    marks = []
    if any(key in TrainerSettings.SPEED_SWITCHES for key in trainer):
        marks.append(FAST_MARK)
    if trainer.get("deterministic"):
        marks.append(DETERMINISTIC_MARK)
    readable = "-".join(filter(None, [readable, *marks]))
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest


def is_fast_tag(tag: str) -> bool:
    """Whether a run directory's hparam tag is that of a run with a speed switch on (see hparam_tag)."""
    return FAST_MARK in tag.split("-")


_LOOKAHEAD_WEIGHT = re.compile(r"(?:^|-)lookahead_weight(\d[\d.]*(?:e[+-]\d+)?)-")


def lookahead_weight_of_tag(tag: str) -> float:
    """The lookahead_weight an AdaLA run directory's hparam tag spells out (see hparam_tag); 1, AdaLA's default,
    where it spells none."""
    match = _LOOKAHEAD_WEIGHT.search(tag)
    return float(match[1]) if match else LATER_HPARAMS["adala"]["lookahead_weight"]


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_short(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.get(key, {})
    tree.pop(leaf, None)
