"""An lr search on real smoke runs: the report's choice, and the emitted adala-train line composes to exactly the
chosen run's directory."""

from __future__ import annotations

from adala_bench.config import normalised
from adala_bench.report.cli import main
from adala_bench.runner import train_one
from adala_bench.store import layout_path
from helpers import emitted_lines, read_search, run_path

VGG = "cifar10_vgg11"


def test_an_eps_search_emits_the_chosen_eps_and_names_the_chosen_run(smoke, tmp_path):
    """Two eps of AdaBelief at one lr on the smoke profile with a validation split: the emitted line sets lr and eps,
    and composed with the same profile overrides it names exactly the chosen run's directory."""
    runs = tmp_path / "runs"
    common = ("task=cifar10_vgg11", "optimizer=adabelief", "epochs=1", "data.val_size=64")
    trained = {}
    for eps in ("1e-16", "1e-8"):
        cfg = smoke(*common, f"optimizer.eps={eps}")
        assert train_one(cfg) == "completed"
        trained[float(eps)] = run_path(cfg)
    best = tmp_path / "best.txt"
    assert main(["--runs", str(runs), "--out", str(tmp_path / "report"), "--search", "--emit-best", str(best), "--profile", "smoke"]) == 0
    cell = read_search(tmp_path / "report").loc[(VGG, "adabelief")]
    assert cell["eps_searched"] and cell["n_tags"] == 2 and cell["flags"] == ""
    (line,) = emitted_lines(best)
    assert line == f"task={VGG} optimizer=adabelief optimizer.lr=0.001 optimizer.eps={float(cell['clean_eps'])!r}"
    assert run_path(smoke(*line.split(), "epochs=1", "data.val_size=64")) == trained[cell["clean_eps"]]


def test_a_real_search_and_its_emitted_line_name_the_chosen_run(smoke, tmp_path):
    """Three lrs of SGD on the smoke profile with a validation split, the search report, and the emitted line:
    composed with the same profile overrides it names exactly the chosen run's directory."""
    runs = tmp_path / "runs"
    common = ("task=cifar10_vgg11", "optimizer=sgd", "epochs=2", "data.val_size=64")
    trained = {}
    for scale in ("0.3", "1", "3"):
        cfg = smoke(*common, f"lr_scale={scale}")
        assert train_one(cfg) == "completed"
        trained[normalised(cfg).optimizer.lr] = run_path(cfg)
    assert sorted(trained) == [0.1 * 0.3, 0.1, 0.1 * 3]

    out, best = tmp_path / "report", tmp_path / "report" / "best.txt"
    assert main(["--runs", str(runs), "--out", str(out), "--search", "--emit-best", str(best), "--profile", "smoke"]) == 0
    cell = read_search(out).loc[(VGG, "sgd")]
    assert cell["n_tags"] == 3 and cell["lrs"] == "0.03; 0.1; 0.30000000000000004" and cell["as_run_lr"] == 0.1
    assert cell["flags"] == "" and cell["clean_n"] == 1
    chosen = layout_path(runs, VGG, "sgd", cell["clean_hparams"], 0)
    assert chosen in trained.values() and trained[cell["clean_lr"]] == chosen

    (line,) = emitted_lines(best)
    assert line == cell["line"]
    assert run_path(smoke(*line.split(), "epochs=2", "data.val_size=64")) == chosen


