"""search_space.py and the shipped spaces (conf/spaces/): the trials' points are scipy's scrambled Sobol points, the
same for every optimizer whatever the budget, mapped into each space as its file says; a bad space is refused in one
line naming its key."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import qmc

from adala_bench import search_space
from adala_bench.catalog import OPTIMIZER_ORDER
from adala_bench.config import CONF_DIR
from adala_bench.settings import SettingsError, SpaceDimension

ADAM_FAMILY = ("adam", "adamw", "radam", "adabound", "adabelief", "adala")  # an eps in the denominator


def test_the_points_are_scipys_scrambled_sobol_points_with_the_fixed_seed():
    expected = qmc.Sobol(d=search_space.MAX_DIMENSIONS, scramble=True,
                         rng=np.random.default_rng(search_space.SOBOL_SEED)).random(64)
    got = np.array([search_space.sobol_point(i) for i in range(64)])
    assert np.array_equal(got, expected)
    # Pinned as well: if scipy ever scrambles otherwise, every tuning run's name changes (re-running trains anew).
    assert got[0][:2] == pytest.approx([0.4099495886, 0.9641202185], abs=1e-10)
    assert got[1][:2] == pytest.approx([0.9048415199, 0.1380961612], abs=1e-10)


def test_a_trials_point_does_not_depend_on_how_many_are_drawn():
    first = search_space.sobol_point(5).copy()
    search_space.sobol_point(1000)  # draws 1,024 points
    assert np.array_equal(search_space.sobol_point(5), first)


def test_log_linear_and_relative_dimensions_map_a_coordinate_as_written():
    lr = SpaceDimension(name="lr", low=0.1, high=10, scale="log", relative=True)
    assert search_space.value(lr, 0.0, 0.003) == pytest.approx(0.0003)
    assert search_space.value(lr, 0.5, 0.003) == pytest.approx(0.003)
    assert search_space.value(lr, 0.75, 2.0) == pytest.approx(2.0 * 0.1 * 100**0.75)
    eps = SpaceDimension(name="eps", low=1e-16, high=1e-6, scale="log")
    assert search_space.value(eps, 0.3, 123.0) == pytest.approx(1e-13)
    momentum = SpaceDimension(name="momentum", low=0.8, high=0.99)
    assert search_space.value(momentum, 0.25, 0.9) == pytest.approx(0.8475)


def test_every_optimizer_has_a_space_lr_first_and_eps_for_the_adam_family():
    for name in OPTIMIZER_ORDER:
        section = {"lr": 0.1, "eps": 1e-8, "momentum": 0.9, "betas": [0.9, 0.999]}
        names = [d.name for d in search_space.load(CONF_DIR / "spaces" / f"{name}.yaml", section, name)]
        assert names == (["lr", "eps"] if name in ADAM_FAMILY else ["lr"]), name


def test_trial_values_take_the_first_coordinates_in_the_files_order(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 0.1, high: 10, scale: log, relative: true}\n"
                     "weight_decay: {low: 0.0, high: 0.01}\n")
    section = {"lr": 2e-3, "weight_decay": 0.0}
    dimensions = search_space.load(space, section, "torch.optim.Adamax")
    u = search_space.sobol_point(7)
    assert search_space.trial_values(7, dimensions, section) == pytest.approx(
        {"lr": 2e-3 * 0.1 * 100 ** u[0], "weight_decay": 0.01 * u[1]})


@pytest.mark.parametrize("text, message", [
    ("epsilon: {low: 1.0e-16, high: 1.0e-6, scale: log}",
     "unknown dimension 'epsilon' for optimizer adam; allowed: lr, eps, weight_decay"),
    ("betas: {low: 0.8, high: 0.99}", "unknown dimension 'betas' for optimizer adam"),
    ("lr: {low: 10, high: 0.1, scale: log, relative: true}", "lr.low=10 is not allowed; it must be below lr.high=0.1"),
    ("eps: {low: 1.0e-6, high: 1.0e-6, scale: log}", "eps.low=1e-06 is not allowed; it must be below eps.high=1e-06"),
    ("eps: {low: 0, high: 1.0e-6, scale: log}", "eps.low=0 is not allowed; a log scale needs bounds > 0"),
    ("lr: {low: 0.1, high: 10, scale: exp}", "lr.scale='exp' is not allowed; allowed: log, linear"),
    ("lr: {lo: 0.1, high: 10}", "lr.lo is not a key of a dimension; allowed: low, high, scale, relative"),
    ("lr: {high: 10}", "lr.low is missing"),
    ("lr: {low: small, high: 10}", "lr.low='small' is not allowed; it must be a number"),
    ("lr: {low: 0.1, high: 10, relative: maybe}", "lr.relative='maybe' is not allowed; it must be true or false"),
    ("weight_decay: {low: 0.1, high: 10, relative: true}", "weight_decay is relative, but optimizer.weight_decay=0"),
    ("lr: 0.1", "lr must be a mapping of low, high, scale, relative"),
    ("[lr, eps]", "must map hyperparameters to dimensions"),
])
def test_a_bad_space_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    space = tmp_path / "space.yaml"
    space.write_text(text + "\n")
    with pytest.raises(SettingsError) as error:
        search_space.load(space, {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0}, "adam")
    assert str(error.value).startswith(f"space {str(space)!r}") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_file_and_too_many_dimensions_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="space '.*nowhere.yaml': no such file"):
        search_space.load(tmp_path / "nowhere.yaml", {"lr": 1.0}, "sgd")
    space = tmp_path / "space.yaml"
    names = [f"h{i}" for i in range(search_space.MAX_DIMENSIONS + 1)]
    space.write_text("".join(f"{n}: {{low: 0, high: 1}}\n" for n in names))
    with pytest.raises(SettingsError, match=f"has 9 dimensions; at most {search_space.MAX_DIMENSIONS}"):
        search_space.load(space, {n: 0.5 for n in names}, "x.Y")


def test_every_trial_stays_inside_its_space():
    lr = SpaceDimension(name="lr", low=0.1, high=10, scale="log", relative=True)
    eps = SpaceDimension(name="eps", low=1e-16, high=1e-6, scale="log")
    for trial in range(256):
        values = search_space.trial_values(trial, [lr, eps], {"lr": 1e-3, "eps": 1e-8})
        assert 1e-4 <= values["lr"] < 1e-2 and 1e-16 <= values["eps"] < 1e-6
        assert math.isfinite(values["lr"])
