"""records.RunRecord's line scan of config.yaml (`profile`, `data_source`): the same values as a YAML parse of the
configs adala-train writes, and None where the config does not say."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from adala_bench.records import read_run
from adala_bench.store import CONFIG_FILE, RunDir
from helpers import compose


@pytest.mark.parametrize("overrides", [
    ("task=cifar10_vgg11",),
    ("task=ptb_lstm1", "profile=smoke"),
    ("task=gan_wgan", "profile=fast", "data.source=synthetic"),
])
def test_the_line_scan_reads_what_a_yaml_parse_reads(tmp_path, overrides):
    RunDir(tmp_path).write_config(compose(*overrides))  # as adala-train writes it
    record = read_run(tmp_path)
    parsed = record.config  # yaml.safe_load of the same file
    assert (record.profile, record.data_source) == (parsed["profile"], parsed["data"]["source"])
    assert record.data_source in ("real", "synthetic")


def test_source_is_read_only_inside_the_data_block(tmp_path):
    # A `source:` key under another top-level key, and one nested deeper inside data, are not data.source.
    config = {"task": {"source": "elsewhere"}, "data": {"synthetic": {"source": "deeper"}, "source": "synthetic"},
              "profile": "smoke"}
    RunDir(tmp_path).write_config(OmegaConf.create(config))
    assert read_run(tmp_path).data_source == "synthetic"
    del config["data"]["source"]
    RunDir(tmp_path).write_config(OmegaConf.create(config))
    assert read_run(tmp_path).data_source is None


def test_without_a_config_neither_is_known(tmp_path):
    record = read_run(tmp_path)
    assert not (tmp_path / CONFIG_FILE).exists()
    assert (record.profile, record.data_source) == (None, None)


@pytest.mark.parametrize("overrides, expected", [
    (("+experiment=tune_ptb", "task=ptb_lstm1", "optimizer=adala", "trial=3"), {"track": "tuned", "trial": "3"}),
    (("+experiment=defaults_gan", "task=gan_wgan", "optimizer=sgd"), {"track": "defaults"}),
    (("task=cifar10_vgg11",), {}),
])
def test_the_tuning_block_is_read_as_a_yaml_parse_reads_it(tmp_path, overrides, expected):
    from adala_bench.config import RunConfig

    RunDir(tmp_path).write_config(RunConfig.of(compose(*overrides)).recorded())  # as adala-train writes it
    record = read_run(tmp_path)
    assert record.tuning == expected
    assert record.tuning == {key: str(value) for key, value in (record.config.get("tuning") or {}).items()}
