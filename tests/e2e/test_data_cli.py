"""adala-data's command line (data/cli.py main), in process: writing and verifying the synthetic CIFAR-10 and PTB,
verify's default root (the runs' data.root), a real PTB downloaded (served from memory) and verified, and every
error in one line with exit status 2 (missing data, a synthetic copy verified as the official one, offline)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from adala_bench.data.cli import main
from helpers import PTB_URL, make_tiny_ptb_official, ptb_how, serve_download, tiny_ptb_archive


# ---- CIFAR-10 ----------------------------------------------------------------------------------------------------

def test_cifar10_cli_writes_verifies_and_reports_errors_in_one_line(tmp_path, capsys):
    assert main(["synthetic-cifar10", "--root", str(tmp_path), "--n-train", "12", "--n-test", "4", "--seed", "1"]) == 0
    directory = tmp_path / "synthetic" / "cifar-10-batches-py"
    assert capsys.readouterr().out == f"{directory}\n"
    assert main(["verify", "cifar10", "--root", str(tmp_path), "--source", "synthetic"]) == 0
    assert capsys.readouterr().out == f"{directory}: ok, 12 train and 4 test images\n"

    assert main(["verify", "cifar10", "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"adala-data: error: CIFAR-10 not found at {tmp_path / 'cifar-10-batches-py'} "
                            f"(missing data_batch_1); download it with: adala-data cifar10 --root {tmp_path} "
                            f"(offline: download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz by hand and "
                            f"extract it under {tmp_path}; or try the suite on the synthetic stand-in: "
                            f"data.source=synthetic)\n")

    # The synthetic copy verified as if it were the official set: named for what it is, not called corrupt.
    assert main(["verify", "cifar10", "--root", str(tmp_path / "synthetic")]) == 2
    assert capsys.readouterr().err == (
        f"adala-data: error: {directory} is a synthetic stand-in (its own manifest and synthetic.json), not the "
        f"official CIFAR-10; verify it as what it is: adala-data verify cifar10 --root {tmp_path} --source "
        "synthetic\n")

    with pytest.raises(SystemExit) as exit_:
        main(["synthetic-cifar10"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "adala-data: error: the following arguments are required: --root\n"


def test_verify_defaults_to_the_runs_data_root(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["synthetic-cifar10", "--root", "data", "--n-train", "12", "--n-test", "4"]) == 0
    capsys.readouterr()
    assert main(["verify", "cifar10", "--source", "synthetic"]) == 0  # no --root: data/, the runs' data.root
    assert capsys.readouterr().out.startswith("data/synthetic/cifar-10-batches-py: ok, 12 train and 4 test images")


# ---- PTB ---------------------------------------------------------------------------------------------------------

def test_ptb_cli_writes_verifies_and_reports_errors_in_one_line(tmp_path, capsys):
    assert main(["synthetic-ptb", "--root", str(tmp_path), "--n-train", "300", "--n-valid", "40", "--n-test", "50",
                 "--vocab-size", "20", "--seed", "1"]) == 0
    directory = tmp_path / "synthetic" / "ptb"
    assert capsys.readouterr().out == f"{directory}\n"
    assert main(["verify", "ptb", "--root", str(tmp_path), "--source", "synthetic"]) == 0
    assert capsys.readouterr().out == f"{directory}: ok, 300 train, 40 valid and 50 test tokens, 20 words\n"

    assert main(["verify", "ptb", "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"adala-data: error: PTB not found at {tmp_path / 'ptb'} (missing ptb.train.txt); "
                            f"{ptb_how(tmp_path)}\n")


def test_ptb_cli_download_offline_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert main(["ptb", "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"adala-data: error: PTB download to {tmp_path} failed (URLError: [Errno -3] Temporary "
                            f"failure in name resolution); download {PTB_URL} by hand and copy "
                            f"simple-examples/data/ptb.{{train,valid,test}}.txt to {tmp_path / 'ptb'}/\n")


def test_ptb_cli_downloads_and_verifies(tmp_path, capsys, monkeypatch):
    make_tiny_ptb_official(monkeypatch)
    serve_download(monkeypatch, tiny_ptb_archive())
    assert main(["ptb", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'ptb'}\n"
    assert main(["verify", "ptb", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'ptb'}: ok, 8 train, 3 valid and 6 test tokens, 6 words\n"
