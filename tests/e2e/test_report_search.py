"""The lr search: search.md / search.csv pick the lr by validation (clean) and by the test set (paper rule), and
--emit-best writes the clean choice as adala-train overrides that name exactly the chosen run."""

from __future__ import annotations
import math

import pandas as pd
import pytest
from omegaconf import OmegaConf

from adala_bench.overrides import hydra_value
from adala_bench.config import normalised
from adala_bench.report.cli import main
from adala_bench.store import RunDir
from helpers import compose, emitted_lines, read_search, write_run

VGG = "cifar10_vgg11"


def cifar_epochs(val: float | None, test: float) -> list[dict]:
    """Three epochs whose best val_acc is `val` (at epoch 1) and best test_acc is `test` (at epoch 2)."""
    rows = [{"epoch": 0, "test_acc": test - 2}, {"epoch": 1, "test_acc": test - 1}, {"epoch": 2, "test_acc": test}]
    if val is not None:
        for row, v in zip(rows, (val - 3, val, val - 1)):
            row["val_acc"] = v
    return rows


def ptb_epochs(val: float, test: float) -> list[dict]:
    """Best (lowest) val_ppl `val` at epoch 1, best test_ppl `test` at epoch 2."""
    return [{"epoch": e, "val_ppl": v, "test_ppl": t}
            for e, (v, t) in enumerate(zip((val + 3, val, val + 1), (test + 2, test + 1, test)))]


def run(root, task, optimizer, tag, seed, epochs, lr, state="completed", **hparams):
    """A run directory whose config.yaml holds optimizer.lr (and any other hyperparameters), as a real run's does."""
    path = write_run(root, task, optimizer, tag, seed, epochs, state=state)
    RunDir(path).write_config(OmegaConf.create(
        {"task": {"name": task}, "optimizer": {"name": optimizer, "lr": lr, **hparams}, "seed": seed}))
    return path


@pytest.fixture(scope="module")
def search_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # Adam: validation picks the middle lr, the test set (paper rule) the largest.
    for tag, lr, val, test in (("lr0.0001-d", 1e-4, 80.0, 84.0), ("lr0.001-d", 1e-3, 85.0, 85.0),
                               ("lr0.01-d", 1e-2, 82.0, 88.0)):
        for seed in range(2):
            run(root, VGG, "adam", tag, seed, cifar_epochs(val + seed, test + seed), lr)
    # A fast-profile run with the best validation value of all: only --profile fast sees it.
    run(root, VGG, "adam", "lr0.003-fast-d", 0, cifar_epochs(99.0, 99.0), 3e-3)
    # SGD trained without data.val_size: no validation metric, so no clean choice.
    for tag, lr, test in (("lr0.03-d", 0.03, 85.0), ("lr0.1-d", 0.1, 87.0)):
        run(root, VGG, "sgd", tag, 0, cifar_epochs(None, test), lr)
    # AdaBelief: the largest lr looks best on its completed seed, but its other seed diverged.
    for tag, lr, val in (("lr0.0003-d", 3e-4, 70.0), ("lr0.001-d", 1e-3, 75.0)):
        for seed in range(2):
            run(root, VGG, "adabelief", tag, seed, cifar_epochs(val, val), lr)
    run(root, VGG, "adabelief", "lr0.003-d", 0, cifar_epochs(95.0, 95.0), 3e-3)
    run(root, VGG, "adabelief", "lr0.003-d", 1, cifar_epochs(10.0, 10.0)[:1], 3e-3, state="diverged")
    # A custom optimizer: its line needs optimizer=custom, its import path and its other hyperparameters.
    for tag, lr, val in (("lr0.002-weight_decay0.0005-d", 2e-3, 60.0), ("lr0.02-weight_decay0.0005-d", 2e-2, 50.0)):
        run(root, VGG, "torch.optim.Adamax", tag, 0, cifar_epochs(val, val), lr, weight_decay=5e-4)
    # PTB SGD, lr written as the int 30: lower perplexity is better, validation and test disagree.
    for tag, lr, val, test in (("lr3-d", 3.0, 120.0, 100.0), ("lr30-d", 30, 90.0, 95.0),
                               ("lr300-d", 300.0, 95.0, 80.0)):
        run(root, "ptb_lstm1", "sgd", tag, 0, ptb_epochs(val, test), lr)
    # PTB AdaBelief, an (lr, eps) search as search_ptb_eps runs it: validation picks (1e-3, 1e-12), the test set
    # (1e-2, 1e-16).
    for tag, lr, eps, val, test in (("lr0.001-eps1e-16-d", 1e-3, 1e-16, 95.0, 93.0),
                                    ("lr0.001-eps1e-12-d", 1e-3, 1e-12, 90.0, 94.0),
                                    ("lr0.01-eps1e-16-d", 1e-2, 1e-16, 97.0, 91.0)):
        run(root, "ptb_lstm1", "adabelief", tag, 0, ptb_epochs(val, test), lr, eps=eps)
    return root


def test_search_picks_by_validation_and_by_the_test_set(search_runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["--runs", str(search_runs), "--out", str(out), "--search"]) == 0
    # No tables, no figures: the search and a page listing it.
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "index.md", "search.csv", "search.md"]
    assert capsys.readouterr().out == (f"adala-report: the report is {out / 'index.md'} (and {out / 'index.html'}, "
                                       f"one file); 4 files in {out}\n")
    cells = read_search(out)
    assert list(cells.index) == [(VGG, "adam"), (VGG, "sgd"), (VGG, "adabelief"), (VGG, "torch.optim.Adamax"),
                                 ("ptb_lstm1", "sgd"), ("ptb_lstm1", "adabelief")]
    assert not cells["eps_searched"].iloc[:5].any() and cells["clean_eps"].iloc[:5].isna().all()

    adam = cells.loc[(VGG, "adam")]
    assert adam["n_tags"] == 3 and adam["lrs"] == "0.0001; 0.001; 0.01" and adam["as_run_lr"] == 1e-3
    assert (adam["clean_lr"], adam["clean_ratio"], adam["clean_val"], adam["clean_n"]) == (1e-3, 1.0, 85.5, 2)
    assert (adam["paper_lr"], adam["paper_ratio"], adam["paper_test"], adam["paper_n"]) == (1e-2, 10.0, 88.5, 2)
    assert adam["clean_hparams"] == "lr0.001-d" and adam["paper_hparams"] == "lr0.01-d"
    assert adam["agree"] == "no" and adam["flags"] == "" and adam["rule"] == "clean"
    assert adam["line"] == "task=cifar10_vgg11 optimizer=adam optimizer.lr=0.001"

    sgd = cells.loc[(VGG, "sgd")]
    assert math.isnan(sgd["clean_lr"]) and sgd["clean_hparams"] == "" and sgd["line"] == ""
    assert "no validation metric (train the search with data.val_size=5000)" in sgd["flags"]
    assert sgd["paper_lr"] == 0.1 and sgd["agree"] == "n/a"

    adabelief = cells.loc[(VGG, "adabelief")]
    assert adabelief["clean_lr"] == 1e-3 and adabelief["paper_lr"] == 1e-3 and adabelief["agree"] == "yes"
    assert "diverged, never picked: lr 0.003 (1 of 2)" in adabelief["flags"]

    custom = cells.loc[(VGG, "torch.optim.Adamax")]
    assert math.isnan(custom["as_run_lr"]) and math.isnan(custom["clean_ratio"])  # no as-run value to compare with
    assert custom["line"] == ("task=cifar10_vgg11 optimizer=custom optimizer._target_=torch.optim.Adamax "
                              "optimizer.lr=0.002 +optimizer.weight_decay=0.0005")

    ptb = cells.loc[("ptb_lstm1", "sgd")]
    assert (ptb["clean_lr"], ptb["clean_val"], ptb["paper_lr"], ptb["paper_test"]) == (30, 90.0, 300, 80.0)
    assert (ptb["as_run_lr"], ptb["clean_ratio"], ptb["paper_ratio"]) == (30.0, 1.0, 10.0)  # conf/hparams/ptb/lstm1
    assert ptb["line"] == "task=ptb_lstm1 optimizer=sgd optimizer.lr=30"  # the int stays an int: same run name

    eps = cells.loc[("ptb_lstm1", "adabelief")]
    assert eps["eps_searched"] and eps["n_tags"] == 3 and eps["lrs"] == "0.001; 0.01" and eps["flags"] == ""
    assert (eps["clean_lr"], eps["clean_eps"], eps["clean_val"]) == (1e-3, 1e-12, 90.0)
    assert (eps["paper_lr"], eps["paper_eps"], eps["paper_ratio"], eps["paper_test"]) == (1e-2, 1e-16, 10.0, 91.0)
    assert eps["line"] == "task=ptb_lstm1 optimizer=adabelief optimizer.lr=0.001 optimizer.eps=1e-12"

    md = (out / "search.md").read_text()
    assert "| Adam | 0.001 | 3 | 0.001 | ×1 | 85.50 (n=2) | 0.01 | ×10 | 88.50 (n=2) | no |  |" in md
    assert "| Adam | 0.01 | – | ×10 | 2 | 2 | 0 | 82.50 (n=2) | 88.50 (n=2) | paper | `lr0.01-d` |" in md
    assert "×as run: the lr divided by it" in md
    assert "| AdaBelief | 0.001 | 3 | 0.001, eps 1e-12 | ×1 | 90.00 (n=1) | 0.01, eps 1e-16 | ×10 | 91.00 (n=1) | no |  |" in md
    assert "[search.md](search.md)" in (out / "index.md").read_text()


def test_emit_best_writes_the_clean_choices_as_overrides(search_runs, tmp_path, capsys):
    best = tmp_path / "best.txt"
    out = tmp_path / "report"
    assert main(["--runs", str(search_runs), "--out", str(out), "--emit-best", str(best)]) == 0
    assert capsys.readouterr().out == f"adala-report: wrote {best}\n" and not out.exists()
    text = best.read_text()
    assert "grep -v '^#'" in text and "seed=0,1,2 data.val_size=0" in text
    assert emitted_lines(best) == [
        "task=cifar10_vgg11 optimizer=adam optimizer.lr=0.001",
        "task=cifar10_vgg11 optimizer=adabelief optimizer.lr=0.001",
        "task=cifar10_vgg11 optimizer=custom optimizer._target_=torch.optim.Adamax optimizer.lr=0.002 "
        "+optimizer.weight_decay=0.0005",
        "task=ptb_lstm1 optimizer=sgd optimizer.lr=30",
        "task=ptb_lstm1 optimizer=adabelief optimizer.lr=0.001 optimizer.eps=1e-12",
    ]
    assert ("# cifar10_vgg11 sgd: no clean choice: no validation metric (train the search with "
            "data.val_size=5000)\n") in text
    # Every line composes, and says what it should.
    for line in emitted_lines(best):
        cfg = normalised(compose(*line.split()))
        assert f"optimizer.lr={hydra_value(cfg.optimizer.lr)}" in line
    assert cfg.optimizer.name == "adabelief" and (cfg.optimizer.lr, cfg.optimizer.eps) == (1e-3, 1e-12)
    sgd = compose(*emitted_lines(best)[3].split())
    assert sgd.optimizer.name == "sgd" and sgd.optimizer.lr == 30 and isinstance(sgd.optimizer.lr, int)
    custom = normalised(compose(*emitted_lines(best)[2].split()))
    assert (custom.optimizer.name, custom.optimizer.lr, custom.optimizer.weight_decay) == (
        "torch.optim.Adamax", 2e-3, 5e-4)


def test_emit_best_honours_rule_and_profile(search_runs, tmp_path):
    best = tmp_path / "best.txt"
    main(["--runs", str(search_runs), "--emit-best", str(best), "--rule", "paper"])
    assert emitted_lines(best)[0] == "task=cifar10_vgg11 optimizer=adam optimizer.lr=0.01"
    assert "the paper rule chose" in best.read_text() and "TEST" in best.read_text()
    assert "task=cifar10_vgg11 optimizer=sgd optimizer.lr=0.1" in emitted_lines(best)
    main(["--runs", str(search_runs), "--emit-best", str(best), "--profile", "fast"])
    assert emitted_lines(best) == ["task=cifar10_vgg11 optimizer=adam optimizer.lr=0.003"]


def test_search_with_what_also_writes_the_tables(search_runs, tmp_path):
    out = tmp_path / "report"
    assert main(["--runs", str(search_runs), "--out", str(out), "--search", "--what", "tables"]) == 0
    written = {p.name for p in out.iterdir()}
    assert {"search.md", "search.csv", "table2.md", "missing.md", "index.md"} <= written
    assert not any(name.startswith("fig") for name in written)
    assert pd.read_csv(out / "table2.csv")["rule"].eq("paper").all()  # the tables' default rule is still paper
