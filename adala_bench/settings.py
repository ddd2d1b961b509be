"""The typed settings the layers below the config take, each checked where its fields are defined.

`config.py` builds them from the composed Hydra config; tests build them directly. Every field's type is checked
from its annotation when an object is made, and each class checks its own ranges (`check`); a bad value stops with
one line naming its config key, e.g. `task.lstm.train_recurrent='maybe' is not allowed; it must be true or false`.
Nothing here imports torch, so the tools that only read configs (adala-plan, adala-report) stay quick to start.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

LOOKAHEAD_BATCHES = ("next", "same")
PRECISIONS = ("fp32", "bf16")
# real: the official dataset under the data root, never replaced silently;
# synthetic: a small dataset in the same on-disk format, written under <root>/synthetic/ on first use.
SOURCES = ("real", "synthetic")
IMAGE_ARCHS = ("vgg11", "resnet34", "densenet121")
CRITIC_KINDS = ("wgan", "wgan_gp")
FID_DIMS = (64, 192, 768, 2048)  # pytorch-fid's InceptionV3.BLOCK_INDEX_BY_DIM (a test holds them equal)


class SettingsError(ValueError):
    """A value of the wrong type or out of range; the one-line message names its config key."""


_WANT = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_type(key: str, value: Any, annotation: Any) -> Any:
    """`value` if it has the annotated type (bool, int, float, str, X | None, tuple[X, ...]); SettingsError otherwise.
    An int is a float; a bool is neither. A list becomes a tuple."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [kind for kind in typing.get_args(annotation) if kind is not type(None)]
        if value is None:
            return None
        annotation = kinds[0]
        if len(kinds) != 1:
            raise TypeError(f"unsupported annotation for {key}: {annotation}")
    if typing.get_origin(annotation) is tuple:
        item = typing.get_args(annotation)[0]
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{key}={value!r} is not allowed; it must be a list of {_plural(item)}")
        return tuple(check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if annotation is Any:
        return value
    if isinstance(annotation, type) and issubclass(annotation, Settings):
        if not isinstance(value, annotation):
            raise SettingsError(f"{key} must be a section of settings, got {value!r}")
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[annotation]
    if not ok:
        raise SettingsError(f"{key}={value!r} is not allowed; it must be {_WANT[annotation]}")
    return value


def _plural(kind: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(kind, str(kind))


class Settings:
    """Base of the settings dataclasses: type checks from the annotations, then `check` for ranges.

    PREFIX is the config section the fields live in; KEYS names the fields that live elsewhere.
    """

    PREFIX: ClassVar[str] = ""
    KEYS: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):
            value = check_type(self.key(item.name), getattr(self, item.name), hints[item.name])
            object.__setattr__(self, item.name, value)
        self.check()

    def check(self) -> None:
        """Range checks; `refuse` names the key."""

    @classmethod
    def key(cls, name: str) -> str:
        return cls.KEYS.get(name, f"{cls.PREFIX}.{name}" if cls.PREFIX else name)

    def refuse(self, name: str, must: str) -> typing.NoReturn:
        raise SettingsError(f"{self.key(name)}={getattr(self, name)!r} is not allowed; {must}")

    def require(self, name: str, ok: bool, must: str) -> None:
        if not ok:
            self.refuse(name, must)

    def one_of(self, name: str, allowed: tuple) -> None:
        self.require(name, getattr(self, name) in allowed, f"allowed: {', '.join(map(str, allowed))}")


@dataclass(frozen=True)
class MlflowSettings(Settings):
    """logger=mlflow (conf/logger/mlflow.yaml): the store (None: a local one beside the run store) and experiment."""

    tracking_uri: str | None = None
    experiment: str | None = None

    PREFIX = "logger.mlflow"


@dataclass(frozen=True)
class WandbSettings(Settings):
    """logger=wandb (conf/logger/wandb.yaml): where the run goes, and whether it goes there now (online) or later."""

    project: str = "adala-bench"
    entity: str | None = None
    group: str | None = None
    mode: str | None = None  # None: $WANDB_MODE, else offline

    PREFIX = "logger.wandb"
    MODES: ClassVar[tuple[str, ...]] = ("offline", "online")

    def check(self) -> None:
        self.require("mode", self.mode in (None, *self.MODES), "allowed: offline, online, or null ($WANDB_MODE, else "
                                                               "offline)")


@dataclass(frozen=True)
class LoggerSettings(Settings):
    """The experiment trackers a run also logs to (the config group `logger`: each chosen one is a key of it)."""

    tensorboard: bool = False
    mlflow: MlflowSettings | None = None
    wandb: WandbSettings | None = None

    PREFIX = "logger"
    TRACKERS: ClassVar[tuple[str, ...]] = ("tensorboard", "mlflow", "wandb")  # its fields, in the order chosen

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> "LoggerSettings":
        """From the composed `logger` section, e.g. {"tensorboard": {}, "mlflow": {"tracking_uri": None, ...}}."""
        for name in section:
            if name not in cls.TRACKERS:
                raise SettingsError(f"logger.{name} is not a tracker; allowed: {', '.join(cls.TRACKERS)}")
        return cls(tensorboard="tensorboard" in section,
                   mlflow=MlflowSettings(**section["mlflow"]) if "mlflow" in section else None,
                   wandb=WandbSettings(**section["wandb"]) if "wandb" in section else None)

    @property
    def names(self) -> tuple[str, ...]:
        """The chosen trackers, in a fixed order."""
        return tuple(name for name in self.TRACKERS if getattr(self, name))


@dataclass(frozen=True)
class RunSettings(Settings):
    """The run's top-level keys."""

    seed: int
    epochs: int
    batch_size: int
    device: str = "auto"
    logger: LoggerSettings = field(default_factory=LoggerSettings)

    def check(self) -> None:
        self.require("seed", self.seed >= 0, "it must be a non-negative integer")
        self.require("epochs", self.epochs > 0, "it must be a positive integer")
        self.require("batch_size", self.batch_size > 0, "it must be a positive integer")
        device = self.device
        index = device.partition(":")[2]
        self.require("device", device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and index.isdigit()),
                     "allowed: auto, cpu, cuda, cuda:<index>")


@dataclass(frozen=True)
class TrainerSettings(Settings):
    """How the trainer feeds the optimizers (config group `trainer`, plus the task's clipping).

    The defaults are the paper's protocol in fp32. precision="bf16" (autocast on the training device),
    channels_last and compile (nn.Module.compile, in place) are `profile=fast`'s speed switches. deterministic=True
    asks torch for deterministic algorithms only (on CUDA: a resumed run equals a straight one bit for bit).
    """

    lookahead_batch: str = "next"
    clip_grad_norm: float | None = None
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False

    PREFIX = "trainer"
    KEYS = {"clip_grad_norm": "task.clip_grad_norm"}
    SPEED_SWITCHES: ClassVar[tuple[str, ...]] = ("precision", "channels_last", "compile")

    def check(self) -> None:
        self.one_of("lookahead_batch", LOOKAHEAD_BATCHES)
        self.one_of("precision", PRECISIONS)
        self.require("clip_grad_norm", self.clip_grad_norm is None or self.clip_grad_norm > 0,
                     "it must be > 0 or null")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {item.name: item.default for item in dataclasses.fields(cls)}

    @classmethod
    def paper_switches(cls) -> dict[str, Any]:
        """The speed switches as the paper's protocol has them (the defaults)."""
        return {name: cls.defaults()[name] for name in cls.SPEED_SWITCHES}

    @property
    def fast(self) -> bool:
        """Whether any speed switch is on (the run then computes something other than the paper's fp32 protocol)."""
        return any(getattr(self, name) != value for name, value in self.paper_switches().items())


@dataclass(frozen=True)
class Schedule(Settings):
    """Step decay at the start of epochs: lr = base · gamma^(number of milestones m with since < m ≤ epoch)."""

    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    PREFIX = "task.schedule"

    def check(self) -> None:
        self.require("milestones", all(m >= 0 for m in self.milestones), "epochs are numbered from 0")
        self.require("gamma", self.gamma > 0, "it must be a number > 0")

    def factor(self, epoch: int, since: int = -1) -> float:
        return self.gamma ** sum(since < m <= epoch for m in self.milestones)


@dataclass(frozen=True)
class OptimizerSpec:
    """Which optimizer a player uses: a registry name (or a class's import path) and its constructor arguments.
    The registry checks names and values when it builds one (`optim.build`)."""

    name: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    # The epoch it took over: lr decays count only milestones after it (a switched-in optimizer starts at its lr).
    since_epoch: int = -1

    def build(self, params):
        from adala_bench import optim

        return optim.build(self.name, params, **dict(self.hparams))


@dataclass(frozen=True)
class TuningSettings(Settings):
    """A tuning trial's top-level keys (conf/experiment/tune_*.yaml sweep `trial` over range(0,${trials})): the trial
    (null: the run is no trial), the budget K a tuning sweep gives every optimizer, and a search space file (null: the
    optimizer's conf/spaces/<name>.yaml)."""

    trial: int | None = None
    trials: int = 16
    space: str | None = None

    def check(self) -> None:
        self.require("trial", self.trial is None or self.trial >= 0, "it must be an integer ≥ 0, or null")
        self.require("trials", self.trials >= 1, "it must be an integer ≥ 1")


@dataclass(frozen=True)
class SpaceDimension(Settings):
    """One dimension of a search space (search_space.py): the optimizer hyperparameter `name` drawn from [low, high]
    on a log or linear scale; `relative`: the bounds are multiples of the value the optimizer's config gives (its
    as-run value). Keys are named as the space file spells them, e.g. `lr.low`."""

    name: str
    low: float
    high: float
    scale: str = "linear"
    relative: bool = False

    SCALES: ClassVar[tuple[str, ...]] = ("log", "linear")

    def key(self, name: str) -> str:
        return name if name == "name" else f"{self.name}.{name}"

    def check(self) -> None:
        self.one_of("scale", self.SCALES)
        self.require("low", self.low < self.high, f"it must be below {self.key('high')}={self.high!r}")
        if self.scale == "log":
            self.require("low", self.low > 0, "a log scale needs bounds > 0")


@dataclass(frozen=True)
class DataSettings(Settings):
    root: str
    source: str = "real"
    val_size: int = 0
    # The synthetic CIFAR-10 written for source=synthetic.
    n_train: int = 2000
    n_test: int = 500

    PREFIX = "data"
    KEYS = {"n_train": "data.synthetic.n_train", "n_test": "data.synthetic.n_test"}

    def check(self) -> None:
        self.one_of("source", SOURCES)
        self.require("val_size", self.val_size >= 0, "it must be an integer ≥ 0")
        for name in ("n_train", "n_test"):
            self.require(name, getattr(self, name) >= 1, "it must be a positive integer")


@dataclass(frozen=True)
class LrScale(Settings):
    """An lr search's `lr_scale=k` (conf/experiment/search_*.yaml): it multiplies the optimizer's as-run lr."""

    lr_scale: float
    lr: float  # the as-run lr

    KEYS = {"lr": "optimizer.lr"}

    def check(self) -> None:
        self.require("lr_scale", self.lr_scale > 0, "it must be a number > 0")

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.lr_scale


def _positive_width(settings: Settings) -> None:
    settings.require("width", settings.width > 0, "it must be > 0")


def _scaled(size: int, width: float) -> int:
    """`size` times a width multiplier, rounded, at least 1 (width 1.0 is the reference network)."""
    return max(1, round(size * width))


@dataclass(frozen=True)
class ImageTaskSettings(Settings):
    """CIFAR-10 classification: the network and its channel multiplier (1.0 = the reference network)."""

    arch: str
    width: float = 1.0

    PREFIX = "task"

    def check(self) -> None:
        self.one_of("arch", IMAGE_ARCHS)
        _positive_width(self)


@dataclass(frozen=True)
class LanguageTaskSettings(Settings):
    """PTB: the AWD-LSTM's depth, its width multiplier (of the embedding and hidden sizes, to shrink it for tests and
    the demo), the weight-drop variant, the synthetic corpus's sizes; and, fixed, the rest of the reference's command
    line (PROTOCOL.md §2)."""

    nlayers: int
    width: float = 1.0
    # False: the reference's weight drop, whose recurrent matrices never train (PROTOCOL §2 caveat); True: real
    # DropConnect, a gradient reaches them.
    train_recurrent: bool = False
    n_train: int = 20000
    n_valid: int = 2000
    n_test: int = 2000
    vocab_size: int = 200

    PREFIX = "task"
    KEYS = {"train_recurrent": "task.lstm.train_recurrent", **{name: f"task.synthetic.{name}" for name in
                                                                ("n_train", "n_valid", "n_test", "vocab_size")}}
    # The reference's RNNModel('LSTM', ntok, emsize=400, nhid=1150, nlayers, dropout=0.4, dropouth=0.25,
    # dropouti=0.4, dropoute=0.1, wdrop=0.5) and its AR/TAR weights; not config keys.
    EMSIZE: ClassVar[int] = 400  # at width 1.0
    NHID: ClassVar[int] = 1150  # at width 1.0
    DROPOUT: ClassVar[float] = 0.4
    DROPOUTH: ClassVar[float] = 0.25
    DROPOUTI: ClassVar[float] = 0.4
    DROPOUTE: ClassVar[float] = 0.1
    WDROP: ClassVar[float] = 0.5
    AR_ALPHA: ClassVar[float] = 2.0
    TAR_BETA: ClassVar[float] = 1.0

    def check(self) -> None:
        self.require("nlayers", self.nlayers >= 1, "it must be a positive integer")
        _positive_width(self)
        for name in ("n_train", "n_valid", "n_test", "vocab_size"):
            self.require(name, getattr(self, name) >= 1, "it must be a positive integer")

    @property
    def emsize(self) -> int:
        return _scaled(self.EMSIZE, self.width)

    @property
    def nhid(self) -> int:
        return _scaled(self.NHID, self.width)


@dataclass(frozen=True)
class FidSettings(Settings):
    """How FIDs are measured. The defaults are the protocol's final FID (64,000 fakes against all train images)."""

    dims: int = 2048  # Inception pool3
    every: int = 0  # fid_curve after every `every`-th epoch (epoch + 1 divisible by it); 0: only the final fid
    curve_samples: int = 5000
    final_samples: int = 64000
    real_images: int | None = None  # the first N train images; None: all of them
    batch_size: int = 50  # Inception's batch

    PREFIX = "task.fid"

    def check(self) -> None:
        self.one_of("dims", FID_DIMS)
        self.require("every", self.every >= 0, "it must be an integer ≥ 0 (0: final FID only)")
        for name in ("curve_samples", "final_samples"):
            self.require(name, getattr(self, name) >= 2, "it must be an integer ≥ 2")
        self.require("real_images", self.real_images is None or self.real_images >= 2,
                     "it must be an integer ≥ 2 or null")
        self.require("batch_size", self.batch_size >= 1, "it must be a positive integer")


@dataclass(frozen=True)
class GanTaskSettings(Settings):
    """WGAN / WGAN-GP: the critic's kind, the width of both networks, the FID settings."""

    kind: str
    width: float = 1.0
    fid: FidSettings = field(default_factory=FidSettings)

    PREFIX = "task"

    def check(self) -> None:
        self.one_of("kind", CRITIC_KINDS)
        _positive_width(self)
