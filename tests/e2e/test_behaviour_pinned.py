"""Results do not move: the smoke runs recorded by scripts/record_reference.py (CIFAR-10, PTB and the GANs) come out
the same, bit for bit on CPU, in the same run directories, and every run directory of the smoke and paper profiles
keeps its name.

CPU float results depend on the CPU and its maths library, so each platform has its own recording
(tests/data/smoke_reference.json, keyed by scripts/record_reference.platform_fingerprint). On a platform with a
recording the runs must equal it; elsewhere a run must equal the recording of some platform, or the test is skipped
saying how to record this one (a platform never seen cannot tell a changed result from its own rounding). Run
directory names do not depend on the platform and are always checked.

Since the redesign, profile=smoke sizes the GANs' FID for CPU and keeps their constant lr: the GAN runs were recorded
with those settings given on the command line, and are held here to the plain smoke profile.
"""

from __future__ import annotations

import json
import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
import record_reference  # noqa: E402

REFERENCE = json.loads(record_reference.REFERENCE.read_text())
PLATFORM = record_reference.platform_fingerprint()
RECORDED = {name for platform in REFERENCE["platforms"].values() for name in platform["runs"]}


def plain_smoke(overrides: list[str]) -> list[str]:
    """The overrides without the GAN sizing the smoke profile now gives by itself."""
    return [o for o in overrides if o not in record_reference.SMOKE_GAN]


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory):
    """One data root for the module: its synthetic sets and FID statistics are written once (as by a sweep)."""
    return tmp_path_factory.mktemp("pinned-data")


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_smoke_run_equals_the_recorded_one(tmp_path, shared_data, random_home, monkeypatch, name):
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    recordings = [platform["runs"][name] for platform in REFERENCE["platforms"].values() if name in platform["runs"]]
    got = record_reference.record_run(tmp_path, plain_smoke(recordings[0]["overrides"]), data=shared_data)
    assert got["run_dir"] == recordings[0]["run_dir"]
    mine = REFERENCE["platforms"].get(PLATFORM, {}).get("runs", {}).get(name)
    if mine is not None:
        assert got["metrics"] == mine["metrics"]
        assert got["model_digests"] == mine["model_digests"]
        return
    if any(got["metrics"] == r["metrics"] and got["model_digests"] == r["model_digests"] for r in recordings):
        return
    pytest.skip(f"no recording of {name} on this platform ({PLATFORM}) and no other platform's matches: record it "
                "with `OMP_NUM_THREADS=1 .venv/bin/python scripts/record_reference.py` on the commit before a change")


def test_every_run_directory_keeps_its_name(tmp_path):
    assert record_reference.record_run_dirs(tmp_path) == REFERENCE["run_dirs"]


@pytest.mark.parametrize("task", ["gan_wgan", "gan_wgan_gp"])
def test_the_smoke_profile_gives_the_gans_the_recorded_fid_sizing_by_itself(tmp_path, task):
    for optimizer in ("adala", "sgd"):
        plain = record_reference.run_dir(tmp_path, "profile=smoke", f"task={task}", f"optimizer={optimizer}")
        assert str(plain) == REFERENCE["run_dirs"][f"smoke:{task}/{optimizer}"]
