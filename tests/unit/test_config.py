"""config.py's run identity for AdaLA's lookahead_weight (the fix the paper proposes, §7): it names a run directory
as every hyperparameter does, except at its default 1, where every AdaLA run keeps the name it had before the option
existed; w = 0 takes no look-ahead closure, so its directory has no lookahead_batch; the claims_mix sweep."""

from __future__ import annotations

import pytest

from adala_bench.catalog import TASKS
from adala_bench.config import ConfigError, RunConfig, lookahead_weight_of_tag
from adala_bench.sweep_runs import sweep_cells
from helpers import compose

VGG = ("profile=smoke", "task=cifar10_vgg11", "optimizer=adala")
# Recorded in tests/data/smoke_reference.json before lookahead_weight existed.
VGG_ADALA_TAG = "lr0.001-betas0.9,0.999-eps1e-08-weight_decay0.0005-residuallookahead-lookahead_batchnext-bfb8b5e2"


def run(*overrides: str) -> RunConfig:
    return RunConfig.of(compose(*VGG, *overrides))


@pytest.mark.parametrize("overrides", [(), ("optimizer.lookahead_weight=1",), ("optimizer.lookahead_weight=1.0",)])
def test_the_default_weight_names_nothing(overrides):
    config = run(*overrides)
    assert config.tag == VGG_ADALA_TAG and config.takes_lookahead
    assert "lookahead_weight" not in config.identity["optimizer"]


def test_a_weight_between_0_and_1_names_the_run_and_keeps_the_lookahead_batch():
    config = run("optimizer.lookahead_weight=0.25")
    assert config.takes_lookahead and config.identity["optimizer"]["lookahead_weight"] == 0.25
    assert "-lookahead_weight0.25-lookahead_batchnext-" in config.tag
    assert run("optimizer.lookahead_weight=0.5").tag != config.tag
    assert run("optimizer.lookahead_weight=0.25", "trainer.lookahead_batch=same").tag != config.tag


def test_weight_zero_takes_no_closure_so_its_directory_has_no_lookahead_batch():
    config = run("optimizer.lookahead_weight=0.0")
    assert not config.takes_lookahead
    assert "lookahead_batch" not in config.identity["optimizer"] and "lookahead_batch" not in config.tag
    assert run("optimizer.lookahead_weight=0.0", "trainer.lookahead_batch=same").tag == config.tag


@pytest.mark.parametrize("value, message", [
    ("1.5", "optimizer.lookahead_weight=1.5 is not allowed; it must be a number in [0, 1]"),
    ("-0.25", "optimizer.lookahead_weight=-0.25 is not allowed; it must be a number in [0, 1]"),
    ("heavy", "optimizer.lookahead_weight='heavy' is not allowed; it must be a number"),
])
def test_a_weight_outside_0_1_is_one_line_naming_the_key(value, message):
    with pytest.raises(ConfigError) as error:
        run(f"optimizer.lookahead_weight={value}")
    assert str(error.value) == message


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 1e-05, 1.0])
def test_the_weight_reads_back_from_the_tag(weight):
    assert lookahead_weight_of_tag(run(f"optimizer.lookahead_weight={weight}").tag) == weight


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
