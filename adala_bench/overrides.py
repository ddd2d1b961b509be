"""Command-line overrides, read by Hydra's own parser; nothing here splits an override by hand.

    override_args(argv)    the overrides among adala-train's arguments (Hydra's flags left out)
    check_groups(args)     every task, optimizer, profile, experiment and logger an override names exists (comma
                           sweeps, choice(), range() and glob() expanded, a list of loggers read one by one): one line
                           otherwise, before anything is composed
    sweep_jobs(args)       a --multirun sweep's jobs, one list of overrides each, exactly as Hydra's basic sweeper
                           makes them: the experiment's hydra.sweeper.params crossed with the command line's, an
                           override of a swept key replacing the experiment's list
    hydra_string(text)     the other way: a string, or any config value (hydra_value), written as an override value
    hydra_value(value)     that Hydra's parser reads back as exactly that value (adala-sweep's sweep folders,
                           adala-report --emit-best's overrides)

adala-train, adala-plan and adala-sweep take the same overrides, so one sweep syntax (Hydra's) serves all three:
`seed=0,1,2`, `seed=range(0,10)`, `optimizer=choice(adam,sgd)`, `task=glob(cifar10_*)`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from adala_bench.config import CONF_DIR, ConfigError, check_trials, options

GROUPS = ("task", "optimizer", "profile", "experiment", "logger", "track")
# A value Hydra's override grammar reads as this very string when written bare; anything else is quoted.
_BARE = re.compile(r"[A-Za-z_/.][\w./:+-]*", re.ASCII)
_NOT_STRINGS = {"null", "true", "false", "nan", "inf"}  # bare, Hydra reads these (any case) as None, bools, floats
# Hydra's own flags that take a value in the next argument (adala-train --help lists them).
_FLAGS_WITH_VALUE = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c",
                     "--package", "-p", "--experimental-rerun")


def override_args(argv: list[str]) -> list[str]:
    """The overrides among a Hydra app's arguments: everything that is not a flag or a flag's value."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _FLAGS_WITH_VALUE
        else:
            args.append(arg)
    return args


@contextlib.contextmanager
def hydra_loader() -> Iterator[object]:
    """Hydra initialised on conf/, and its config loader (what glob() lists group options with)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def parse(args: list[str], loader: object = None) -> list:
    """Hydra's Override objects for these overrides; ConfigError in one line when one cannot be read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException

    try:
        return OverridesParser.create(config_loader=loader).parse_overrides(list(args))
    except OverrideParseException as error:
        raise ConfigError(f"cannot read the override {error.override!r}: {_first_line(error.message)}") from None
    except HydraException as error:
        raise ConfigError(_first_line(str(error))) from None


def values(override) -> list[str]:
    """The values an override gives its key, as plain text (`cuda:1`, not Hydra's escaped `cuda\\:1`)."""
    if not override.is_sweep_override():
        return [str(override.value())]
    if not override.is_discrete_sweep():
        raise ConfigError(f"{override.input_line}: the basic sweeper cannot enumerate a {override.value_type.name}")
    return [str(value) for value in override.sweep_iterator()]


def group_of(override) -> str | None:
    """The config group an override chooses from (task, optimizer, profile, experiment, logger, track), None for any
    other key."""
    key = override.key_or_group
    return key if key in GROUPS and not override.is_delete() else None


def check_groups(args: list[str]) -> None:
    """ConfigError in one line for the first value that names no file of its config group, or a tuning budget
    `trials=` that is no integer ≥ 1 (a sweep of range(0,0) trials would run nothing, and say nothing)."""
    with hydra_loader() as loader:
        for override in parse(args, loader):
            if override.key_or_group == "trials" and not override.is_sweep_override():
                check_trials(override.value())
            group = group_of(override)
            if group is None:
                continue
            allowed = options(group)
            for value in chosen(override):
                if value not in allowed:
                    raise ConfigError(f"unknown {group} {value!r}; allowed: {', '.join(allowed)}")


def chosen(override) -> list[str]:
    """The options an override of a config group names: one, a sweep's, or a list chosen at once (logger=[a,b])."""
    value = None if override.is_sweep_override() else override.value()
    return [str(item) for item in value] if isinstance(value, list) else values(override)


def sweep_jobs(args: list[str]) -> list[list[str]]:
    """The jobs `adala-train --multirun ARGS` runs, in its order: one list of "key=value" overrides each (Hydra's
    own overrides, hydra.* and hydra/*, left out: they change how a sweep runs, not what its runs are)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    check_groups(args)
    with hydra_loader() as loader:
        overrides = parse(args, loader)
        params = _sweeper_params([o for o in overrides if not o.is_sweep_override()])
        overrides = parse([f"{key}={value}" for key, value in params.items()] + list(args), loader)
        kept = [o for o in overrides if not o.is_hydra_override()]
        try:
            jobs = BasicSweeper.split_arguments(kept, None)[0]
        except HydraException as error:
            raise ConfigError(_first_line(str(error))) from None
    return [list(job) for job in jobs]


def _sweeper_params(fixed: list) -> dict[str, str]:
    """An experiment's hydra.sweeper.params ({} without an experiment), resolved as Hydra's basic sweeper gets them:
    in the sweep's config, composed with the command line's overrides that sweep nothing (so that
    `trial: range(0,${trials})` reads `trials=4` from the command line)."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    experiment = [o.input_line for o in fixed if o.key_or_group == "experiment"]
    if not experiment:
        return {}
    from hydra import compose

    try:
        cfg = compose("config", overrides=[o.input_line for o in fixed], return_hydra_config=True)
        check_trials(cfg.get("trials", 1))
        params = OmegaConf.to_container(cfg.hydra.sweeper.get("params") or {}, resolve=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"{experiment[0]} cannot be composed: {_first_line(str(error))}") from None
    return {key: str(value) for key, value in params.items()}


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else "invalid override"


def hydra_string(text: str) -> str:
    """`text` as a Hydra override value that parses back to the same string (a path, a class name, any text)."""
    if _BARE.fullmatch(text) and text.lower() not in _NOT_STRINGS:
        return text
    # Hydra's quoted strings: backslashes are literal except before a quote or the closing quote (then doubled).
    escaped = re.sub(r"(\\+)(?='|$)", lambda run: run[1] * 2, text).replace("'", "\\'")
    return f"'{escaped}'"


def hydra_value(value) -> str:
    """A config value as a Hydra override spells it so that it parses back to the same value (floats by repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return hydra_string(str(value))
