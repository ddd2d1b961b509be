"""A GAN smoke run through the runner and the report: its FID lands in Table 4, flagged as not a real FID (random
Inception weights), with its samples and FID figures."""

from __future__ import annotations

import pytest

from adala_bench.store import SAMPLES_FILE
from helpers import compose

pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture(autouse=True)
def torch_home(random_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


def test_a_smoke_gan_run_reaches_table4_flagged_as_not_a_real_fid(data_root, tmp_path):
    """train_one on the composed smoke config (random-weight Inception, small FID), then adala-report: the cell has
    its FID, is flagged, and the samples and FID figures are drawn."""
    import pandas as pd

    from adala_bench.report.cli import main as report
    from adala_bench.runner import train_one
    from adala_bench.store import RunDir
    from helpers import run_path

    overrides = ("profile=smoke", f"data.root={data_root}", f"results.root={tmp_path / 'runs'}")  # nothing else
    for seed in (0, 1):
        cfg = compose("task=gan_wgan", "optimizer=adam", f"seed={seed}", *overrides)
        assert train_one(cfg) == "completed"
    rows = RunDir(run_path(cfg)).read_metrics()
    assert rows[-1]["fid"] > 0 and rows[-1]["fid_real_weights"] == 0.0 and "fid" not in rows[0]
    assert rows[0]["fid_curve"] > 0  # the smoke profile's FID every epoch (16 fakes; 32 after the last)
    assert [row["lr"] for row in rows] == [2e-4, 2e-4]  # the GANs' constant lr, under smoke too
    assert rows[-1]["grad_evals_critic"] == rows[-1]["step"] == 16 and rows[-1]["grad_evals_generator"] == 2 * 2
    assert (run_path(cfg) / SAMPLES_FILE).stat().st_size > 0

    out = tmp_path / "report"
    assert report(["--runs", str(tmp_path / "runs"), "--out", str(out), "--no-published", "--profile", "smoke"]) == 0
    table = pd.read_csv(out / "table4.csv").set_index(["model", "optimizer"])
    cell = table.loc[("WGAN", "adam")]
    assert cell["n"] == 2 and cell["mean"] > 0
    assert "random Inception weights in 2 runs (not a real FID)" in cell["flags"]
    assert "not a real FID" in (out / "table4.md").read_text()
    assert any(path.name.startswith("fig3") for path in out.iterdir())
