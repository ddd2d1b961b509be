"""hydra_string: what adala-sweep (its workers' sweep folders) and adala-report --emit-best (optimizer values)
write into Hydra overrides must parse back, through Hydra's own override parser, to the very same string."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from adala_bench.cli import hydra_string
from adala_bench.report.search import hydra_value

PARSER = OverridesParser.create()


def parsed(value_text: str):
    return PARSER.parse_override(f"key={value_text}").value()


@pytest.mark.parametrize("text", [
    "results/sweep-logs/2026-11-29_10-00-00/worker0", "torch.optim.Adamax", "/tmp/a:b+c", ".hidden", "_x",
    "null", "True", "NaN", "inf",  # bare, Hydra would read None, a bool, floats
    "2026-11-29/worker0", "1e-3", "10", "-x",  # bare, a number or not a value at all
    "with space", "a,b", "x=y", "tab\tx", "é", "it's", "a\\b", "trailing\\", "a\\'b", "\\\\server\\share\\",
])
def test_a_string_parses_back_to_itself(text):
    assert parsed(hydra_string(text)) == text


def test_plain_names_and_paths_stay_bare():
    assert hydra_string("results/runs/x") == "results/runs/x"
    assert hydra_string("torch.optim.Adamax") == "torch.optim.Adamax"
    assert hydra_string("null") == "'null'" and hydra_string("a b") == "'a b'"


@pytest.mark.parametrize("value", [1e-3, 30, 0.00030000000000000003, True, None, [0.9, 0.999], "null", "a\\b"])
def test_a_config_value_parses_back_to_itself(value):
    assert parsed(hydra_value(value)) == value
