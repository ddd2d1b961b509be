"""adala-report --explain: one cell back to its runs, their metrics lines, the arithmetic and the paper's row; and
the run directories and epochs each table CSV row names."""
import math
import os

import pandas as pd
import pytest

from adala_bench.report.cli import main
from adala_bench.store import METRICS_FILE
from helpers import write_run

PAPER = """\
table,task,model,optimizer,metric,value,higher_is_better
Table3,ptb_language_model,LSTM-1layer,AdaLA,best_test_perplexity,83.24,false
Table3,ptb_language_model,LSTM-2layer,AdaBelief,best_test_perplexity,66.29,false
Table3,ptb_language_model,LSTM-2layer,AdaLA,best_test_perplexity,65.36,false
"""


@pytest.fixture
def store(tmp_path):
    """LSTM-2layer / AdaLA: tag t with seeds 0, 1 completed and seed 2 diverged; tag u with one completed seed."""
    runs, reference = tmp_path / "runs", tmp_path / "reference"
    reference.mkdir()
    (reference / "paper_tables.csv").write_text(PAPER)
    ppl = lambda epoch, value: {"epoch": epoch, "grad_evals": 10 * epoch, "test_ppl": value}  # noqa: E731
    dirs = {
        0: write_run(runs, "ptb_lstm2", "adala", "t", 0, [ppl(1, 70.0), ppl(2, 60.25), ppl(3, 61.0)]),
        # Resumed: epoch 2 logged twice; the report keeps the later record (line 3), whose 61.75 is the best.
        1: write_run(runs, "ptb_lstm2", "adala", "t", 1, [ppl(1, 65.0), ppl(2, 59.0), ppl(2, 61.75), ppl(3, 62.0)]),
        2: write_run(runs, "ptb_lstm2", "adala", "t", 2, [ppl(1, 50.0)], state="diverged", reason="loss is nan"),
    }
    write_run(runs, "ptb_lstm2", "adala", "u", 0, [ppl(1, 40.0)])
    write_run(runs, "ptb_lstm2", "sgd", "t", 0, [ppl(1, 90.0)])
    return runs, reference, dirs


def test_explain_prints_the_runs_lines_arithmetic_and_paper_row(store, capsys):
    runs, reference, dirs = store
    assert main(["--runs", str(runs), "--reference", str(reference), "--explain", "table3/LSTM-2layer/adala"]) == 0
    out = capsys.readouterr().out
    # By hand: seed 0's best perplexity is 60.25 at epoch 2 (line 2 of its metrics.jsonl); seed 1's is 61.75 at
    # epoch 2 (line 3: the record that replaced line 2's 59.0). Mean (60.25 + 61.75) / 2 = 122 / 2 = 61; sample
    # std sqrt(((60.25 - 61)^2 + (61.75 - 61)^2) / (2 - 1)) = sqrt(0.5625 + 0.5625) = sqrt(1.125) = 1.0606601717798212.
    expected = f"""\
table3/LSTM-2layer/adala: Table 3 (Penn TreeBank test perplexity), column LSTM-2layer (task ptb_lstm2), row AdaLA \
(optimizer adala)
runs: {runs}, profile paper

Selection rule `paper`: per run, lowest test perplexity over epochs (selected on the test set).
The cell averages the completed runs of one hparams tag, the one with the most completed seeds (ties: the \
lexicographically first): t.
Other tags, not averaged: u (1 completed).

Runs averaged (2), in seed order: test_ppl at the chosen epoch, and its line:
  seed 0: epoch 2, test_ppl 60.25
    {os.path.join(dirs[0], METRICS_FILE)}:2
  seed 1: epoch 2, test_ppl 61.75
    {os.path.join(dirs[1], METRICS_FILE)}:3

Runs of this tag not averaged:
  seed 2: diverged (loss is nan): {dirs[2]}

mean = (60.25 + 61.75) / 2 = 122 / 2 = 61
sample std (ddof=1) = sqrt(((60.25 − 61)² + (61.75 − 61)²) / (2 − 1)) = sqrt(1.125 / 1) = 1.0606601717798212
table cell: 61.00 ± 1.06 (n=2); flags: 1 run diverged

paper: 65.36, from {reference / "paper_tables.csv"} line 4:
  Table3,ptb_language_model,LSTM-2layer,AdaLA,best_test_perplexity,65.36,false
diff = mean − paper = 61 − 65.36 = -4.36
"""
    assert out == expected
    assert math.isclose(1.0606601717798212, math.sqrt(1.125))


def test_the_table_csv_names_the_runs_and_epochs_behind_each_row(store, tmp_path):
    runs, reference, dirs = store
    out = tmp_path / "report"
    assert main(["--runs", str(runs), "--reference", str(reference), "--out", str(out), "--what", "tables"]) == 0
    table3 = pd.read_csv(out / "table3.csv", keep_default_na=False).set_index(["model", "optimizer"])
    cell = table3.loc[("LSTM-2layer", "adala")]
    assert cell["run_dirs"] == f"{dirs[0]};{dirs[1]}" and cell["epochs"] == "2;2" and cell["values"] == "60.25;61.75"
    assert (float(cell["mean"]), cell["n"]) == (61.0, 2)
    assert table3.loc[("LSTM-2layer", "sgd"), "epochs"] == "1"
    assert table3.loc[("LSTM-1layer", "adala"), "run_dirs"] == ""  # no runs
    # The existing columns keep their order; the new ones come last.
    assert list(table3.reset_index().columns[-4:]) == ["run_dirs", "epochs", "values", "profile"]
    assert table3.loc[("LSTM-2layer", "adala"), "profile"] == "paper"


@pytest.mark.parametrize("cell, message", [
    ("table5/VGG11/adala", "--explain: unknown table 'table5'; allowed: table2, table3, table4"),
    ("table3/LSTM/adala", "--explain: table3 has no model 'LSTM'; allowed: LSTM-1layer, LSTM-2layer, LSTM-3layer"),
    ("table3/LSTM-2layer/lion", "--explain: unknown optimizer 'lion'; allowed: fromage, adamw, radam, msvag, adam, "
                                "yogi, adabound, sgd, adabelief, adala"),
    ("table3/LSTM-2layer", "--explain wants TABLE/MODEL/OPTIMIZER, e.g. table3/LSTM-2layer/adala; got "
                           "'table3/LSTM-2layer'"),
])
def test_explain_errors_are_one_line_listing_what_is_allowed(store, cell, message, capsys):
    runs, reference, _ = store
    with pytest.raises(SystemExit) as exit_info:
        main(["--runs", str(runs), "--reference", str(reference), "--explain", cell])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"adala-report: error: {message}\n"


def test_explain_a_cell_without_runs_names_those_with_runs(store, capsys):
    runs, reference, _ = store
    with pytest.raises(SystemExit) as exit_info:
        main(["--runs", str(runs), "--reference", str(reference), "--explain", "table3/lstm-2layer/adabelief"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (f"adala-report: error: --explain: table3/LSTM-2layer/adabelief has no runs in "
                                       f"{runs} (profile paper); optimizers with runs there: sgd, adala\n")


def test_explain_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--explain CELL" in text and "table3/LSTM-2layer/adala" in text and "ddof=1" in text
