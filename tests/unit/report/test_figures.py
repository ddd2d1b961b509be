"""report/figures.py: the fixed palette (Fromage visible on white, a custom optimizer one colour everywhere), curves as
mean and std over seeds with integer epoch ticks and a y range that holds everything drawn, the x axis in epochs,
gradient evaluations or wall time, the published curves overlaid dashed without squashing short runs, random-weight
FIDs flagged, sample grids and the FID plot, PNG and PDF written."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.image import imread, imsave

from adala_bench.report.figures import COLOURS, colour, curve_figure, fid_figure, sample_grid_figure, write_figures
from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values, published_curves
from adala_bench.store import SAMPLES_FILE as SAMPLES
from helpers import REPO, write_run
from adala_bench.report.select import choose_hparams, run_values

REFERENCE = REPO / "results" / "reference"


@pytest.fixture(scope="module")
def report_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, per_epoch in (("adala", 2), ("adabelief", 1)):
        for seed in range(2):
            write_run(root, "cifar10_vgg11", name, "t", seed, [
                {"epoch": e, "grad_evals": per_epoch * 391 * (e + 1), "wall_s": 10.0 * (e + 1),
                 "test_acc": 80.0 + e + seed + (0.5 if name == "adala" else 0.0)} for e in range(5)])
        write_run(root, "ptb_lstm1", name, "t", 0, [{"epoch": e, "grad_evals": e, "test_ppl": 100.0 - e}
                                                    for e in range(1, 4)])
        for seed, fid in enumerate([80.0, 84.0]):
            path = write_run(root, "gan_wgan", name, "t", seed, [{"epoch": 0, "d_loss": 0.1, "fid": fid}])
            (path / SAMPLES).parent.mkdir()
            shade = 0.2 if name == "adala" else 0.8
            imsave(path / SAMPLES, np.full((8, 8, 3), shade))
    frame = load_runs(root)
    return frame, choose_hparams(run_values(frame, "paper")), paper_values(REFERENCE), published_curves(REFERENCE)


@pytest.fixture(scope="module")
def long_inputs(tmp_path_factory):
    """60-epoch runs: long enough (over a quarter of the published 200 epochs) for the published overlay."""
    root = tmp_path_factory.mktemp("long")
    for name, per_epoch in (("adala", 2), ("adabelief", 1)):
        write_run(root, "cifar10_vgg11", name, "t", 0, [
            {"epoch": e, "grad_evals": per_epoch * 391 * (e + 1), "wall_s": 10.0 * (e + 1), "test_acc": 80.0 + e / 10}
            for e in range(60)])
        write_run(root, "ptb_lstm1", name, "t", 0, [{"epoch": e, "grad_evals": e, "test_ppl": 100.0 - e / 10}
                                                    for e in range(60)])
    frame = load_runs(root)
    return frame, choose_hparams(run_values(frame, "paper")), published_curves(REFERENCE)


def relative_luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance (white 1, black 0)."""
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_palette_is_fixed_and_distinct():
    assert len(set(COLOURS.values())) == len(COLOURS) == 10
    assert colour("adala") == "#D55E00" and colour("adabelief") == "#0072B2"
    assert colour("rmsprop") == colour("rmsprop") and colour("rmsprop") not in COLOURS.values()


def test_fromage_is_visible_on_white():
    # WCAG's 3:1 for graphical objects: (1.05) / (L + 0.05) >= 3, i.e. L <= 0.30 (Tol's sand, the old colour: 0.60).
    assert 1.05 / (relative_luminance(COLOURS["fromage"]) + 0.05) >= 3.0


def test_a_custom_optimizer_keeps_one_colour_in_every_figure(tmp_path):
    name = "torch.optim.Adamax"
    for seed in range(2):
        write_run(tmp_path, "cifar10_vgg11", name, "t", seed,
                  [{"epoch": e, "test_acc": 50.0 + e + seed} for e in range(3)])
        write_run(tmp_path, "gan_wgan", name, "t", seed, [{"epoch": 0, "fid": 90.0 + seed}])
    frame = load_runs(tmp_path)
    runs = choose_hparams(run_values(frame, "paper"))
    (line,) = curve_figure(frame, runs, "cifar10_vgg11", "epoch").axes[0].get_lines()
    points = fid_figure(runs, paper_values(REFERENCE), "gan_wgan").axes[0].collections[0]
    assert to_hex(line.get_color()).upper() == to_hex(points.get_facecolor()[0]).upper() == colour(name)
    assert colour(name) not in COLOURS.values()
    # From the name alone (crc32), not Python's per-process salted hash(): the same value in every process.
    assert colour(name) == "#225555"


def test_epoch_ticks_are_integers_and_the_y_range_holds_everything_drawn(report_inputs, long_inputs):
    frame, runs, _, _ = report_inputs
    ax = curve_figure(frame, runs, "cifar10_vgg11", "epoch").axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    # Ours only: the std bands (AdaBelief's epoch 0: 80.5 - 0.71; AdaLA's epoch 4: 85 + 0.71) and a small margin.
    spread = statistics.stdev([80.0, 81.0])
    low, high = 80.5 - spread, 85.0 + spread
    bottom, top = ax.get_ylim()
    assert bottom < low and top > high and (low - bottom) < 0.1 * (high - low) and (top - high) < 0.1 * (high - low)
    # With the published curves: their range too (VGG11: 19.88 .. 91.41), nothing of ours cut off.
    frame, runs, published = long_inputs
    bottom, top = curve_figure(frame, runs, "cifar10_vgg11", "epoch", published).axes[0].get_ylim()
    assert 16.0 < bottom < 19.88 and 91.41 < top < 95.0
    # PTB (lower is better) is not cut at the published curves' best either.
    bottom, top = curve_figure(frame, runs, "ptb_lstm1", "epoch", published).axes[0].get_ylim()
    assert bottom < 84.21 and top > 438.77


def test_curves_are_mean_and_std_over_seeds_in_fixed_colours(report_inputs):
    frame, runs, _, _ = report_inputs
    fig = curve_figure(frame, runs, "cifar10_vgg11", "epoch")
    ax = fig.axes[0]
    lines = {line.get_label().split(" ")[0]: line for line in ax.get_lines()}
    assert set(lines) == {"AdaBelief", "AdaLA"}
    assert to_hex(lines["AdaLA"].get_color()).upper() == COLOURS["adala"]
    np.testing.assert_allclose(lines["AdaLA"].get_ydata(), [statistics.mean([80.5 + e, 81.5 + e]) for e in range(5)])
    np.testing.assert_allclose(lines["AdaLA"].get_xdata(), range(5))
    assert len(ax.collections) == 2  # one std band per optimizer
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    spread = statistics.stdev([80.0, 81.0])
    assert band.min() == pytest.approx(80.5 - spread) and band.max() == pytest.approx(84.5 + spread)
    assert lines["AdaLA"].get_label() == "AdaLA (n=2)"


def test_x_axis_can_be_gradient_evaluations_or_wall_time(report_inputs):
    frame, runs, _, _ = report_inputs
    epochs = range(5)
    for x, adala_x in (("grad_evals", [782 * (e + 1) for e in epochs]), ("wall_s", [10.0 * (e + 1) for e in epochs])):
        ax = curve_figure(frame, runs, "cifar10_vgg11", x).axes[0]
        adala = next(line for line in ax.get_lines() if line.get_label().startswith("AdaLA"))
        np.testing.assert_allclose(adala.get_xdata(), adala_x)
        assert ax.get_xlabel() == {"grad_evals": "gradient evaluations", "wall_s": "wall time (s)"}[x]
    with pytest.raises(ValueError, match="'steps'.*epoch, grad_evals, wall_s"):
        curve_figure(frame, runs, "cifar10_vgg11", "steps")


def test_published_curves_are_overlaid_dashed(long_inputs):
    frame, runs, published = long_inputs
    ax = curve_figure(frame, runs, "cifar10_vgg11", "epoch", published).axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 9  # the AdaBelief repo's nine VGG11 curves
    adabelief = next(line for line in dashed if to_hex(line.get_color()).upper() == COLOURS["adabelief"])
    assert max(adabelief.get_ydata()) == 91.41 and len(adabelief.get_ydata()) == 200
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "published (AdaBelief repo)" in labels and "Adam (published only)" in labels
    # On the gradient-evaluation axis only optimizers we ran can be placed; AdaBelief's epochs 0-59.
    ax = curve_figure(frame, runs, "cifar10_vgg11", "grad_evals", published).axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [391.0 * (e + 1) for e in range(60)]


def test_short_runs_are_not_squashed_by_the_published_curves(report_inputs, tmp_path):
    """5 epochs beside 200 published ones: the overlay is left out, and the legend and the notes say so."""
    frame, runs, paper, published = report_inputs
    ax = curve_figure(frame, runs, "cifar10_vgg11", "epoch", published).axes[0]
    assert not [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert ax.get_xlim()[1] < 6  # the axis is ours: epochs 0-4
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "published curves left out: these runs cover 5 of 200 epochs" in labels
    _, notes = write_figures(frame, runs, paper, tmp_path, "epoch", published)
    assert ("fig1_cifar10_test_acc_vgg11: the published curves are left out: the runs cover 5 of 200 epochs"
            in notes)


def test_random_weight_fids_are_flagged_in_the_figure_and_titles_never_clip(tmp_path):
    for seed in range(2):
        path = write_run(tmp_path, "gan_wgan", "adam", "t", seed,
                         [{"epoch": 0, "fid": 50.0 + seed, "fid_real_weights": 0.0}])
        (path / SAMPLES).parent.mkdir()
        imsave(path / SAMPLES, np.full((8, 8, 3), 0.5))
    runs = choose_hparams(run_values(load_runs(tmp_path), "paper"))
    title = fid_figure(runs, paper_values(REFERENCE), "gan_wgan").axes[0].get_title()
    assert "random Inception weights in 2 of 2 runs: not a real FID" in title
    grid, _ = sample_grid_figure(runs, "gan_wgan")  # one optimizer: one image, narrower than the title
    grid.canvas.draw()
    box = grid._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= grid.bbox.width


def test_sample_grid_and_fid_plot(report_inputs):
    _, runs, paper, _ = report_inputs
    grid, notes = sample_grid_figure(runs, "gan_wgan")
    assert notes == []
    assert [ax.get_title() for ax in grid.axes] == ["AdaBelief", "AdaLA"]
    assert grid.axes[1].get_images()[0].get_array()[0, 0, 0] == pytest.approx(0.2, abs=0.01)
    fid = fid_figure(runs, paper, "gan_wgan").axes[0]
    points = [c.get_offsets()[:, 1].tolist() for c in fid.collections if len(c.get_offsets())]
    assert [80.0, 84.0] in points and [83.13] in points  # runs of AdaBelief, its paper value
    assert [t.get_text() for t in fid.get_xticklabels()] == ["AdaBelief", "AdaLA"]


def test_write_figures_writes_png_and_pdf(report_inputs, tmp_path):
    frame, runs, paper, published = report_inputs
    written, notes = write_figures(frame, runs, paper, tmp_path, "epoch", published)
    names = sorted(p.name for p in written)
    stems = ["fig1_cifar10_test_acc_vgg11", "fig2_ptb_test_ppl_lstm1", "fig3_wgan_samples", "fig5_fid_wgan"]
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("pdf", "png"))
    for stem in stems:
        png = imread(tmp_path / f"{stem}.png")
        assert png.shape[0] > 100 and png[..., :3].std() > 0.05  # drawn, not blank
        assert (tmp_path / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    assert any("fig4_wgan_gp_samples not drawn" in n for n in notes)
    assert any("fig1_cifar10_test_acc_resnet34 not drawn" in n for n in notes)
