"""adala-report's command line (report/cli.py main): the files it writes with --what tables, the clean rule and the
figures, an empty run store, bad input in one line with exit status 2, a missing reference, a search alone, --explain,
and the compute-matched view each --rule writes."""

from __future__ import annotations

import pandas as pd
import pytest

from adala_bench.report.cli import main
from adala_bench.report.load import load_runs
from adala_bench.report.matched import compute_matched
from adala_bench.report.select import choose_hparams, run_values
from helpers import write_run

TABLE_FILES = [f"{t}.{ext}" for t in ("table2", "table3", "table4") for ext in ("md", "tex", "csv")]
OTHER_FILES = ["adala_vs_adabelief.md", "adala_vs_adabelief.csv", "compute_matched.md", "compute_matched.csv",
               "ranks.csv", "performance_profile.csv", "performance_ratios.csv", "time_to_target.csv", "claims.csv",
               "instability.csv", "missing.md",
               "selected_runs.csv", "index.md", "index.html"]


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    for name in ("adala", "adabelief"):
        for seed, best in enumerate([91.0, 92.0]):
            write_run(root, "cifar10_resnet34", name, "t", seed, [
                {"epoch": e, "grad_evals": 100 * (e + 1), "wall_s": 1.0 * (e + 1), "test_acc": acc}
                for e, acc in enumerate([best - 2, best, best - 1])])
    return root


def test_tables_only(runs_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["--runs", str(runs_dir), "--out", str(out), "--what", "tables"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(TABLE_FILES + OTHER_FILES)
    assert capsys.readouterr().out == (f"adala-report: the report is {out / 'index.md'} (and {out / 'index.html'}, "
                                       f"one file); {len(TABLE_FILES + OTHER_FILES)} files in {out}\n")
    table2 = pd.read_csv(out / "table2.csv", keep_default_na=False, na_values=[""]).set_index(["model", "optimizer"])
    assert table2.loc[("ResNet34", "adala"), "mean"] == 91.5 and table2.loc[("ResNet34", "adala"), "n"] == 2
    assert table2.loc[("ResNet34", "adala"), "rule"] == "paper"
    index = (out / "index.md").read_text()
    assert all(f"[{name}]({name})" in index for name in TABLE_FILES + OTHER_FILES if not name.startswith("index."))
    assert index.startswith("# adala-bench report\n") and "## The answer: AdaLA against AdaBelief" in index
    assert table2.loc[("ResNet34", "adala"), "epochs"] == "1;1"  # the best epoch of each seed


def test_clean_rule_and_figures(runs_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["--runs", str(runs_dir), "--out", str(out), "--rule", "clean", "--x", "grad_evals",
                 "--no-published", "--runs-csv"]) == 0
    table2 = pd.read_csv(out / "table2.csv").set_index(["model", "optimizer"])
    assert table2.loc[("ResNet34", "adabelief"), "mean"] == 90.5  # final epochs: 90, 91
    assert (out / "fig1_cifar10_test_acc_resnet34.png").stat().st_size > 0
    assert (out / "fig1_cifar10_test_acc_resnet34.pdf").stat().st_size > 0
    assert len(pd.read_csv(out / "runs.csv")) == 12
    index = (out / "index.md").read_text()
    assert "[fig1_cifar10_test_acc_resnet34.png](fig1_cifar10_test_acc_resnet34.png)" in index
    assert "[runs.csv](runs.csv)" in index
    assert "fig1_cifar10_test_acc_vgg11 not drawn" in capsys.readouterr().err


def test_empty_runs_dir_lists_everything_as_missing(tmp_path):
    (tmp_path / "runs").mkdir()
    out = tmp_path / "report"
    assert main(["--runs", str(tmp_path / "runs"), "--out", str(out), "--what", "tables"]) == 0
    for table, cells in (("table2", 30), ("table3", 30), ("table4", 20)):
        csv = pd.read_csv(out / f"{table}.csv")
        assert len(csv) == cells and (csv["flags"] == "no runs").all() and (csv["n"] == 0).all()
    missing = (out / "missing.md").read_text()
    assert "No run directories were found." in missing and "No runs (30 cells):" in missing


@pytest.mark.parametrize("args, message", [
    (["--runs", "/nonexistent/runs"], "adala-report: error: runs directory '/nonexistent/runs' does not exist"),
    (["--rule", "best"], "adala-report: error: argument --rule: invalid choice: 'best' (choose from 'paper', 'clean')"),
    (["--expected-seeds", "0"], "adala-report: error: argument --expected-seeds: must be at least 1, got 0"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == message + "\n"


def test_missing_reference_is_an_error(runs_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--runs", str(runs_dir), "--out", str(tmp_path / "o"), "--reference", str(tmp_path / "noref")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("adala-report: error: reference file") and "noref" in err


def test_a_search_alone_keeps_the_full_page(runs_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["--runs", str(runs_dir), "--out", str(out), "--what", "tables"]) == 0
    page = (out / "index.md").read_text()
    capsys.readouterr()
    assert main(["--runs", str(runs_dir), "--out", str(out), "--search"]) == 0
    assert capsys.readouterr().out == f"adala-report: wrote {out / 'search.md'}, {out / 'search.csv'}\n"
    assert (out / "index.md").read_text() == page


def test_explain_from_the_command_line(runs_dir, capsys):
    assert main(["--runs", str(runs_dir), "--explain", "table2/ResNet34/adabelief"]) == 0
    out = capsys.readouterr().out
    # Seeds 0 and 1 peak at epoch 1 with 91 and 92 (the second line of each metrics.jsonl).
    assert "  seed 0: epoch 1, test_acc 91\n" in out and "  seed 1: epoch 1, test_acc 92\n" in out
    assert str(runs_dir / "cifar10_resnet34" / "adabelief" / "t" / "seed=1" / "metrics.jsonl") + ":2\n" in out
    assert "mean = (91 + 92) / 2 = 183 / 2 = 91.5\n" in out and "paper: 95.44, from " in out


def test_adala_report_rule_clean_writes_the_clean_compute_matched_view(runs_dir, tmp_path):
    """`adala-report --rule clean` and `--rule paper`: compute_matched.csv of each is compute_matched under that rule
    (tests/unit/report/test_matched.py holds compute_matched to values computed from the curves as written). Here the
    rules differ: the best epoch is not the last."""
    frame = load_runs(runs_dir)
    written = {}
    for rule in ("clean", "paper"):
        out = tmp_path / f"report-{rule}"
        assert main(["--runs", str(runs_dir), "--out", str(out), "--what", "tables", "--rule", rule]) == 0
        written[rule] = pd.read_csv(out / "compute_matched.csv").set_index(["task", "optimizer"])
        view = compute_matched(frame, choose_hparams(run_values(frame, rule)), rule).set_index(["task", "optimizer"])
        for column in ("full_mean", "grad_evals_mean", "wall_s_mean"):
            assert written[rule][column].tolist() == pytest.approx(view[column].tolist()), (rule, column)
    assert not written["clean"]["grad_evals_mean"].equals(written["paper"]["grad_evals_mean"])
