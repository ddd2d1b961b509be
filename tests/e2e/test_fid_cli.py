"""`adala-fid` as a user runs it: against `python -m pytorch_fid` on the same folders, through saved statistics, and
its one-line errors. Offline: Inception has random weights in a temporary TORCH_HOME and downloads fail."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torchvision.utils import save_image

from adala_bench.metrics import cli
from helpers import REPO

pytestmark = [pytest.mark.usefixtures("no_network"),
              pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")]

PYTHON = sys.executable


@pytest.fixture
def torch_home(random_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


def write_png_folders(root, count: int):
    """Two folders of `count` smooth 32x32 PNGs whose colour distributions differ."""
    generator = torch.Generator().manual_seed(0)
    folders = []
    for name, red in (("a", 0.0), ("b", 0.4)):
        folder = root / name
        folder.mkdir()
        base = torch.nn.functional.interpolate(torch.rand(count, 3, 8, 8, generator=generator), size=32,
                                               mode="bilinear")
        images = (0.6 * base + red * torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)).clamp(0, 1)
        for i, image in enumerate(images):
            save_image(image, folder / f"{i:03d}.png")
        folders.append(folder)
    return folders[0], folders[1]


@pytest.fixture(scope="session")
def png_folders(tmp_path_factory):
    """66 images a folder: 66 > 64 dims, full-rank covariances, for the comparison with scipy's sqrtm."""
    return write_png_folders(tmp_path_factory.mktemp("pngs"), 66)


@pytest.fixture(scope="session")
def few_png_folders(tmp_path_factory):
    """12 images a folder, where adala-fid is compared with itself (each Inception forward costs ~0.06 s on a CPU)."""
    return write_png_folders(tmp_path_factory.mktemp("few_pngs"), 12)


def _fid_from_stdout(stdout: str) -> float:
    line = [line for line in stdout.splitlines() if line.startswith("FID:")][-1]
    return float(line.split()[-1])


def test_adala_fid_agrees_with_python_m_pytorch_fid(png_folders, torch_home):
    """Both as subprocesses on the same folders and weights; pytorch-fid uses scipy's sqrtm, we eigenvalues."""
    env = {**os.environ, "TORCH_HOME": str(torch_home), "OMP_NUM_THREADS": "1"}
    args = [str(png_folders[0]), str(png_folders[1]), "--dims", "64", "--device", "cpu", "--num-workers", "0"]
    ours = subprocess.run([PYTHON, "-m", "adala_bench.metrics.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO)
    theirs = subprocess.run([PYTHON, "-m", "pytorch_fid", *args], capture_output=True, text=True, env=env, cwd=REPO)
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
    assert "adala-fid: warning: RANDOM WEIGHTS: not a real FID" in ours.stderr
    assert ours.stdout.startswith("FID:  ")
    value = _fid_from_stdout(ours.stdout)
    assert value > 0.1 and value == pytest.approx(_fid_from_stdout(theirs.stdout), rel=1e-6)


def test_adala_fid_save_stats_then_npz_gives_the_same_fid(few_png_folders, torch_home, tmp_path, capsys):
    a, b = few_png_folders
    stats = tmp_path / "a.npz"
    common = ["--dims", "64", "--device", "cpu", "--num-workers", "0"]
    assert cli.main([str(a), str(stats), "--save-stats", *common]) == 0
    with np.load(stats) as stored:
        assert stored["mu"].shape == (64,) and stored["sigma"].shape == (64, 64)
    assert cli.main([str(a), str(b), *common]) == 0
    assert cli.main([str(stats), str(b), *common]) == 0
    captured = capsys.readouterr()
    assert "it/s]" not in captured.err and "%|" not in captured.err  # no progress bars in a log: not a terminal
    from_folders, from_npz = (_fid_from_stdout(line) for line in captured.out.splitlines()[-2:])
    assert from_npz == pytest.approx(from_folders, rel=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["{a}", "{missing}"], "adala-fid: error: no image folder {missing}"),
    (["{a}", "{a}", "--dims", "100"], "adala-fid: error: argument --dims: invalid choice: 100"),
    (["{a}", "{b}.npz", "--save-stats", "--batch-size", "0"], "adala-fid: error: --batch-size must be >= 1"),
    (["{a}", "{a}", "--save-stats"], "adala-fid: error: --save-stats writes a .npz file"),
    (["{empty}", "{a}"], "adala-fid: error: {empty} holds 0 images"),
    (["{a}", "{b}", "--device", "gpu"], "adala-fid: error: --device 'gpu' is not a device"),
])
def test_adala_fid_errors_are_one_line_exit_2(argv, message, png_folders, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    names = {"a": png_folders[0], "b": png_folders[1], "missing": tmp_path / "nope", "empty": tmp_path / "empty"}
    argv = [arg.format(**names) for arg in argv]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(message.format(**names))


def test_adala_fid_offline_weights_error(png_folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert cli.main([str(png_folders[0]), str(png_folders[1]), "--dims", "64", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adala-fid: error: Inception weights pt_inception-2015-12-05-6726825d.pth are not in")
    assert err.count("\n") == 1
