"""The report page adala-report writes (order of the parts, what the runs can support, partial sweeps, every figure
embedded in one self-contained HTML file). Its blocks' rendering: tests/unit/report/test_page.py."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from matplotlib.image import imsave
from omegaconf import OmegaConf

from adala_bench.report.cli import main
from adala_bench.store import CONFIG_FILE, SAMPLES_FILE, RunDir
from helpers import parse_html, write_run


def acc_curve(values, per_epoch):
    return [{"epoch": e, "grad_evals": per_epoch * (e + 1), "wall_s": 1.0 * (e + 1), "test_acc": v}
            for e, v in enumerate(values)]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """A small demo-like sweep (profile smoke): VGG11 and LSTM-1layer with AdaLA, AdaBelief and SGD, two seeds
    (one SGD seed diverged), WGAN with random-weight FIDs and sample grids; everything else missing."""
    root = tmp_path_factory.mktemp("runs")
    for name, shift, grads in (("adala", 2.0, 200), ("adabelief", 0.0, 100), ("sgd", -3.0, 100)):
        for seed in range(2):
            state = "diverged" if name == "sgd" and seed == 1 else "completed"
            write_run(root, "cifar10_vgg11", name, "t", seed,
                      acc_curve([50 + shift + seed, 60 + shift + seed, 58 + shift], grads),
                      state=state, profile="smoke")
            write_run(root, "ptb_lstm1", name, "t", seed,
                      [{"epoch": e, "grad_evals": grads * e, "wall_s": float(e),
                        "test_ppl": 200 - 20 * e - shift + seed} for e in (1, 2, 3)], profile="smoke")
            path = write_run(root, "gan_wgan", name, "t", seed, [
                {"epoch": 0, "grad_evals": grads, "wall_s": 1.0, "fid_curve": 30.0 - shift, "fid_real_weights": 0.0},
                {"epoch": 1, "grad_evals": 2 * grads, "wall_s": 2.0, "fid": 20.0 - shift + seed,
                 "fid_real_weights": 0.0}], profile="smoke")
            (path / SAMPLES_FILE).parent.mkdir()
            imsave(path / SAMPLES_FILE, np.full((8, 8, 3), 0.5))
    out = tmp_path_factory.mktemp("report")
    assert main(["--runs", str(root), "--out", str(out), "--profile", "smoke", "--no-published"]) == 0
    return root, out


def headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("#")]


def test_the_page_is_the_report_in_the_issue_order(smoke_report):
    _, out = smoke_report
    md = (out / "index.md").read_text()
    order = ["# adala-bench report", "## The answer: AdaLA against AdaBelief", "### What these runs can and cannot "
             "support", "## Across the tasks", "### Ranks", "### Performance profile",
             "### Time to AdaBelief's final value", "## Tables 2-4 beside the paper",
             "### Table 2. CIFAR-10 test accuracy (%), rule `paper`", "### Table 3. Penn TreeBank test perplexity, "
             "rule `paper`", "### Table 4. CIFAR-10 generation FID, rule `paper`",
             "## Compute-matched view (rule `paper`)", "## What is missing or flagged", "## Files"]
    found = headings(md)
    assert [h for h in found if h in order] == order
    # The answer: every cell, with difference, CI, n and verdict. VGG11: AdaLA's best 62, 63; AdaBelief's 60, 61:
    # diff 2, se = sqrt(0.5/2 + 0.5/2) = 0.7071, df = 0.5^2 / (0.25^2 + 0.25^2) = 2, t(0.975, 2) = 4.3027:
    # 2 ± 3.04. LSTM-1layer and WGAN are the same two-seed difference (p = 0.106 each): Holm over the 3 tests
    # multiplies the smallest p by 3, the next by 2 and takes the running maximum, 3 × 0.1056 = 0.317 for all three.
    assert "| Table 2 | VGG11 | 62.50 ± 0.71 (2) | 60.50 ± 0.71 (2) | +2.00 [-1.04, +5.04] | 0.106 | 0.317 | " \
           "+0.25 | difference inside the noise (CI contains 0) |" in md
    assert "| Table 3 | LSTM-3layer | – (0) | – (0) | – [–, –] | – | – |" in md
    assert "no runs of AdaLA and AdaBelief" in md
    # Figures inline where they belong: Figure 1 after Table 2 and before Table 3, the GAN figures after Table 4.
    assert md.index("### Table 2.") < md.index("](fig1_cifar10_test_acc_vgg11.png)") < md.index("### Table 3.")
    assert md.index("### Table 4.") < md.index("](fig3_wgan_samples.png)") < md.index("](fig5_fid_wgan.png)")
    assert md.index("### Performance profile") < md.index("](fig6_performance_profile.png)")
    assert md.index("### Time to") < md.index("](fig7_time_to_target.png)") < md.index("## Tables 2-4")
    # The separate files stay, listed at the end.
    assert "[table3.csv](table3.csv)" in md and "[time_to_target.csv](time_to_target.csv)" in md


def test_what_the_runs_can_support_is_computed_from_them(smoke_report):
    _, out = smoke_report
    md = (out / "index.md").read_text()
    paragraph = md.split("### What these runs can and cannot support\n\n")[1].split("\n")[0]
    assert "All 18 runs train on synthetic data" in paragraph  # 3 tasks x 3 optimizers x 2 seeds
    assert "The FIDs of 6 runs come from an Inception network with random weights" in paragraph
    assert "In 3 cells a side has fewer than 3 seeds: too few for a 95% CI to mean much" in paragraph
    assert "The sweep is partial: 71 of the 80 table cells have no completed run" in paragraph
    assert "AdaLA and AdaBelief both have runs on 3 of the 8 tasks" in paragraph
    assert "1 run did not complete (1 diverged): its cell averages the completed runs only and is flagged" \
        in paragraph
    assert "What they can support: that every station of the pipeline" in paragraph


def test_a_paper_report_says_which_runs_trained_on_synthetic_data(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        path = write_run(root, "cifar10_vgg11", "adala", "t", seed, acc_curve([50.0, 60.0], 100))
    config = OmegaConf.load(path / CONFIG_FILE)  # seed 1: a paper-profile run on the synthetic data set
    config.data = {"root": "data", "source": "synthetic"}
    RunDir(path).write_config(config)
    out = tmp_path / "report"
    assert main(["--runs", str(root), "--out", str(out), "--what", "tables"]) == 0
    paragraph = (out / "index.md").read_text().split("### What these runs can and cannot support\n\n")[1]
    assert paragraph.startswith("1 run trains on synthetic data (data.source=synthetic;")
    assert "What they can support: that every station of the pipeline" in paragraph


def test_index_html_is_self_contained_with_every_figure_embedded(smoke_report):
    _, out = smoke_report
    html = (out / "index.html").read_text()
    document = parse_html(html)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 6  # fig1 VGG11, fig2 LSTM-1layer, fig3 (samples) and fig5 (FID) WGAN, fig6, fig7
    assert len(document.images) == len(pngs)
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in document.images}
    assert embedded == {(out / name).read_bytes() for name in pngs}
    assert all(src.startswith("data:image/png;base64,") for src in document.images)
    assert not re.search(r"https?://", html)
    assert not any(tag in ("script", "link", "iframe", "object", "embed") for tag, _ in document.tags)
    for tag, attrs in document.tags:
        for name in ("src", "href"):
            assert not (attrs.get(name) or "").startswith(("http:", "https:", "//"))
    # The same page as the Markdown: the same headings in the same order.
    html_headings = [(t, a) for t, a in document.tags if re.fullmatch(r"h\d", t)]
    assert len(html_headings) == len(headings((out / "index.md").read_text()))


def test_a_partial_sweep_with_one_optimizer_still_gives_a_correct_page(tmp_path):
    write_run(tmp_path / "runs", "ptb_lstm2", "sgd", "t", 0, [{"epoch": 1, "test_ppl": 90.0}])
    out = tmp_path / "report"
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(out), "--no-published"]) == 0
    md = (out / "index.md").read_text()
    assert "Of the 8 cells of Tables 2-4: without runs of one or both in 8." in md
    assert "They support no AdaLA-against-AdaBelief verdict yet" in md
    assert "| SGD | 1 | – | 0 |" in md  # ranked alone: no mean rank
    assert "One optimizer only, left out of the mean ranks (rank 1 there says nothing): LSTM-2layer." in md
    assert "No task has a completed AdaBelief run, so there is no target." in md
    assert "Tasks without a completed run (left out of the cross-task view): VGG11, ResNet34, DenseNet121, " \
           "LSTM-1layer, LSTM-3layer, WGAN, WGAN-GP." in md
    assert "fig7_time_to_target not drawn: no task has an AdaBelief run to set the target" in md
    assert parse_html((out / "index.html").read_text()).images  # the profile and Figure 2 are drawn and embedded


def test_no_runs_at_all(tmp_path):
    (tmp_path / "runs").mkdir()
    out = tmp_path / "report"
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(out), "--what", "tables"]) == 0
    md = (out / "index.md").read_text()
    assert "No task has a completed run: nothing to compare across tasks." in md
    assert "Figures were not drawn in this report (`--what tables`)." in md
    assert "No run directories were found." in md
    assert parse_html((out / "index.html").read_text()).images == []
