"""The one list of what the benchmark contains: task families, tasks, and the optimizers in the paper's row order.

The config, the optimizer registry, the report and the tests read these names from here, and a test checks that
conf/ (task/, optimizer/, hparams/<family>/) holds exactly one file for each.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Family:
    """A task family shares one table, one metric and one selection direction."""

    name: str
    table: str
    title: str
    metric: str
    val_metric: str | None
    higher_is_better: bool
    # How the paper (and the AdaBelief repo) picked one number per run.
    paper_rule: str


@dataclass(frozen=True)
class TaskInfo:
    name: str
    family: Family
    model: str


CIFAR10 = Family(
    name="cifar10",
    table="Table2",
    title="CIFAR-10 test accuracy (%)",
    metric="test_acc",
    val_metric="val_acc",
    higher_is_better=True,
    paper_rule="best test accuracy over epochs (selected on the test set)",
)
PTB = Family(
    name="ptb",
    table="Table3",
    title="Penn TreeBank test perplexity",
    metric="test_ppl",
    val_metric="val_ppl",
    higher_is_better=False,
    paper_rule="lowest test perplexity over epochs (selected on the test set)",
)
GAN = Family(
    name="gan",
    table="Table4",
    title="CIFAR-10 generation FID",
    metric="fid",
    val_metric=None,
    higher_is_better=False,
    paper_rule="FID of the final-epoch generator",
)
FAMILIES: dict[str, Family] = {f.name: f for f in (CIFAR10, PTB, GAN)}

TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("cifar10_vgg11", CIFAR10, "VGG11"),
        TaskInfo("cifar10_resnet34", CIFAR10, "ResNet34"),
        TaskInfo("cifar10_densenet121", CIFAR10, "DenseNet121"),
        TaskInfo("ptb_lstm1", PTB, "LSTM-1layer"),
        TaskInfo("ptb_lstm2", PTB, "LSTM-2layer"),
        TaskInfo("ptb_lstm3", PTB, "LSTM-3layer"),
        TaskInfo("gan_wgan", GAN, "WGAN"),
        TaskInfo("gan_wgan_gp", GAN, "WGAN-GP"),
    )
}
TABLES: tuple[str, ...] = ("Table2", "Table3", "Table4")

# Paper row order of Tables 2-4, as the names runs use.
OPTIMIZER_ORDER: tuple[str, ...] = (
    "fromage", "adamw", "radam", "msvag", "adam", "yogi", "adabound", "sgd", "adabelief", "adala",
)
OPTIMIZER_LABELS: dict[str, str] = {
    "fromage": "Fromage", "adamw": "AdamW", "radam": "RAdam", "msvag": "MSVAG", "adam": "Adam",
    "yogi": "Yogi", "adabound": "AdaBound", "sgd": "SGD", "adabelief": "AdaBelief", "adala": "AdaLA",
}


def optimizer_label(name: str) -> str:
    """The paper's spelling of an optimizer; names the paper does not have are shown as they are."""
    return OPTIMIZER_LABELS.get(name, name)


def optimizer_rows(names) -> list[str]:
    """The paper's rows first, in its order, then any other optimizer found in the runs, alphabetically."""
    extra = sorted(set(names) - set(OPTIMIZER_ORDER))
    return list(OPTIMIZER_ORDER) + extra


def table_family(table: str) -> Family:
    for family in FAMILIES.values():
        if family.table == table:
            return family
    raise ValueError(f"unknown table {table!r}; allowed: {', '.join(TABLES)}")


def table_tasks(table: str) -> list[TaskInfo]:
    """The table's tasks in column order."""
    family = table_family(table)
    return [t for t in TASKS.values() if t.family is family]


def default_reference_dir() -> Path:
    """results/reference of the checkout the package is installed from (editable install)."""
    import adala_bench

    return Path(adala_bench.__file__).resolve().parents[1] / "results" / "reference"
