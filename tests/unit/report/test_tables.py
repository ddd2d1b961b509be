"""report/tables.py: Tables 2-4's cells against values computed by hand, rows and columns in the paper's order, the
clean rule's final epoch, the expected seeds, Markdown, LaTeX and CSV in agreement, the notes naming the flags and
the rule, LaTeX escaping, a flag every cell carries said once."""

from __future__ import annotations

import io
import math
import re
import statistics

import pandas as pd
import pytest

from adala_bench.catalog import OPTIMIZER_LABELS, TABLES
from adala_bench.report.load import load_runs
from adala_bench.report.reference import paper_values
from helpers import REPO, write_run
from adala_bench.report.select import choose_hparams, run_values
from adala_bench.report.tables import (build_cells, latex_escape, render_csv, render_latex, render_markdown,
                                       render_missing)

REFERENCE = REPO / "results" / "reference"


def acc_run(root, optimizer, hparams, seed, best, state="completed", task="cifar10_vgg11"):
    """A CIFAR run whose test accuracy peaks at `best` (epoch 1) and ends 1 point lower."""
    curve = [best - 5.0, best, best - 1.0]
    write_run(root, task, optimizer, hparams, seed, [{"epoch": e, "test_acc": a} for e, a in enumerate(curve)],
              state=state)


@pytest.fixture
def runs_dir(tmp_path):
    for seed, best in enumerate([90.0, 91.0, 92.5]):
        acc_run(tmp_path, "adala", "t", seed, best)
    acc_run(tmp_path, "adala", "t", 3, 99.0, state="diverged")
    acc_run(tmp_path, "adabelief", "t", 0, 91.25)
    acc_run(tmp_path, "adabelief", "t", 1, 91.75)
    acc_run(tmp_path, "adabelief", "t", 2, 95.0, state="running")
    acc_run(tmp_path, "sgd", "default", 0, 89.5)
    acc_run(tmp_path, "adam", "x", 0, 88.0)
    acc_run(tmp_path, "adam", "x", 1, 88.5)
    acc_run(tmp_path, "adam", "y", 0, 93.0)
    acc_run(tmp_path, "rmsprop", "default", 0, 87.0)  # not in the paper: a row after AdaLA
    write_run(tmp_path, "ptb_lstm3", "adala", "t", 0, [{"epoch": 1, "test_ppl": 70.0}, {"epoch": 2, "test_ppl": 60.25}])
    write_run(tmp_path, "ptb_lstm3", "adala", "t", 1, [{"epoch": 1, "test_ppl": 61.75}])
    return tmp_path


def cells_for(runs_dir, rule="paper", expected_seeds=None):
    runs = choose_hparams(run_values(load_runs(runs_dir), rule))
    return build_cells(runs, paper_values(REFERENCE), rule, expected_seeds), runs


def cell(cells, model, optimizer):
    row = cells[(cells["model"] == model) & (cells["optimizer"] == optimizer)]
    assert len(row) == 1
    return row.iloc[0]


def test_cells_equal_hand_computed_values(runs_dir):
    cells, _ = cells_for(runs_dir)
    adala = cell(cells, "VGG11", "adala")
    assert adala["n"] == 3 and adala["seeds"] == 4 and adala["expected"] == 4
    assert adala["mean"] == pytest.approx(statistics.mean([90.0, 91.0, 92.5]), abs=1e-12)  # diverged 99 left out
    assert adala["std"] == pytest.approx(statistics.stdev([90.0, 91.0, 92.5]), abs=1e-12)
    assert adala["paper"] == 91.66
    assert adala["diff"] == pytest.approx(statistics.mean([90.0, 91.0, 92.5]) - 91.66, abs=1e-12)
    assert adala["flags"] == "1 run diverged"

    adabelief = cell(cells, "VGG11", "adabelief")
    assert (adabelief["n"], adabelief["mean"], adabelief["paper"]) == (2, 91.5, 91.41)
    assert adabelief["std"] == pytest.approx(statistics.stdev([91.25, 91.75]), abs=1e-12)
    assert adabelief["flags"] == "1 run interrupted, 1 seed missing"

    sgd = cell(cells, "VGG11", "sgd")
    assert (sgd["n"], sgd["mean"], sgd["flags"]) == (1, 89.5, "3 seeds missing")
    assert math.isnan(sgd["std"])

    adam = cell(cells, "VGG11", "adam")
    assert (adam["hparams"], adam["n"], adam["mean"]) == ("x", 2, 88.25)
    assert adam["other_hparams"] == "y (1 completed)"
    assert adam["flags"] == "2 seeds missing"

    empty = cell(cells, "ResNet34", "adala")
    assert (empty["n"], empty["flags"], empty["paper"]) == (0, "no runs", 95.64)
    assert math.isnan(empty["mean"]) and math.isnan(empty["diff"])

    ptb = cell(cells, "LSTM-3layer", "adala")
    assert (ptb["n"], ptb["mean"], ptb["expected"], ptb["flags"]) == (2, 61.0, 2, "")
    assert ptb["diff"] == pytest.approx(61.0 - 60.33, abs=1e-12)


def test_rows_and_columns_follow_the_paper(runs_dir):
    cells, _ = cells_for(runs_dir)
    table2 = cells[cells["table"] == "Table2"]
    assert list(dict.fromkeys(table2["label"])) == list(OPTIMIZER_LABELS.values()) + ["rmsprop"]
    assert list(dict.fromkeys(table2["model"])) == ["VGG11", "ResNet34", "DenseNet121"]
    assert list(dict.fromkeys(cells.loc[cells["table"] == "Table4", "model"])) == ["WGAN", "WGAN-GP"]
    assert math.isnan(cell(cells, "VGG11", "rmsprop")["paper"])


def test_clean_rule_uses_final_epoch(runs_dir):
    cells, _ = cells_for(runs_dir, rule="clean")
    assert cell(cells, "VGG11", "adala")["mean"] == pytest.approx(statistics.mean([89.0, 90.0, 91.5]), abs=1e-12)
    assert cell(cells, "LSTM-3layer", "adala")["mean"] == pytest.approx((60.25 + 61.75) / 2, abs=1e-12)


def test_expected_seeds_override(runs_dir):
    cells, _ = cells_for(runs_dir, expected_seeds=2)
    assert cell(cells, "VGG11", "adabelief")["flags"] == "1 run interrupted"
    assert cell(cells, "VGG11", "sgd")["flags"] == "1 seed missing"
    assert (cells["expected"] == 2).all()


MD_CELL = re.compile(r"^(?P<mean>-?[\d.]+) ± (?P<std>-?[\d.]+|–) \(n=(?P<n>\d+)\)(?: \[\d+\])?$")
TEX_CELL = re.compile(r"^(?P<mean>-?[\d.]+) \$\\pm\$ (?P<std>-?[\d.]+|--) \((?P<n>\d+)\)(?:\\textsuperscript\{\d+\})?$")


def parse_md(text):
    rows = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if len(parts) > 3 and parts[0] not in ("Optimizer", "---"):
            rows[parts[0]] = [parts[i:i + 3] for i in range(1, len(parts), 3)]
    return rows


def parse_tex(text):
    rows = {}
    for line in text.splitlines():
        if line.endswith(r"\\") and "&" in line and not line.startswith((" &", "Optimizer")):
            parts = [p.strip() for p in line[:-2].split("&")]
            rows[parts[0]] = [[parts[i], parts[i + 1], parts[i + 2].strip("$")] for i in range(1, len(parts), 3)]
    return rows


def triple(mean_std_n, paper, diff, pattern, dash):
    """(mean, std, n, paper, diff) as the rendered text shows them; None for dashes."""
    match = pattern.match(mean_std_n)
    if match is None:
        assert mean_std_n.startswith(dash)
        mean = std = None
        n = 0
    else:
        mean, n = match["mean"], int(match["n"])
        std = None if match["std"] == dash else match["std"]
    return mean, std, n, None if paper == dash else paper, None if diff == dash else diff


def expected_from_csv(csv):
    def text(x, signed=False):
        return None if pd.isna(x) else format(round(float(x), 2) + 0.0, "+.2f" if signed else ".2f")

    return {(r.label, r.model): (text(r.mean), text(r.std), r.n, text(r.paper), text(r.diff, signed=True))
            for r in csv.itertuples()}


def test_markdown_latex_and_csv_agree(runs_dir, tmp_path):
    cells, _ = cells_for(runs_dir)
    checked = 0
    for table in TABLES:
        csv_path = tmp_path / f"{table}.csv"
        cells[cells["table"] == table].to_csv(csv_path, index=False)
        csv = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
        expected = expected_from_csv(csv)
        models = list(dict.fromkeys(csv["model"]))
        md, tex = parse_md(render_markdown(cells, table)), parse_tex(render_latex(cells, table))
        assert set(md) == set(tex) == set(csv["label"])
        for label in md:
            for model, md_cell, tex_cell in zip(models, md[label], tex[label]):
                want = expected[(label, model)]
                assert triple(*md_cell, MD_CELL, "–") == want, (label, model, md_cell)
                assert triple(*tex_cell, TEX_CELL, "--") == want, (label, model, tex_cell)
                checked += 1
    assert checked == len(cells)


def test_rendered_notes_name_the_flags_and_rule(runs_dir):
    cells, runs = cells_for(runs_dir)
    md = render_markdown(cells, "Table2")
    assert "## Table 2. CIFAR-10 test accuracy (%), rule `paper`" in md
    assert "| AdaLA | 91.17 ± 1.26 (n=3) [" in md
    assert "AdaLA / VGG11: 1 run diverged" in md
    assert "Adam / VGG11: used x; not used: y (1 completed)" in md
    assert "No runs (–): Fromage (VGG11, ResNet34, DenseNet121)" in md
    assert "never averaged" in md and "Expected seeds per cell: 4." in md
    tex = render_latex(cells, "Table2")
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex and "\\bottomrule" in tex
    assert "\\cmidrule(lr){2-4} \\cmidrule(lr){5-7} \\cmidrule(lr){8-10}" in tex
    missing = render_missing(cells, runs)
    assert "- AdaLA / VGG11: 1 run diverged (n = 3)" in missing
    assert "- AdaBelief / VGG11: 1 run interrupted, 1 seed missing (n = 2)" in missing
    assert "- Adam / VGG11: used x; not used: y (1 completed)" in missing
    assert "## Table 4" in missing and "- AdaLA / WGAN-GP" in missing


def test_latex_escape():
    assert latex_escape("lr_0.1 & 5% #1 {x} ~ ^") == r"lr\_0.1 \& 5\% \#1 \{x\} \textasciitilde{} \textasciicircum{}"


def test_a_flag_every_cell_with_runs_carries_is_said_once(tmp_path):
    # Smoke runs. Table 2: AdaLA on VGG11 (two seeds), AdaBelief on VGG11 (one: a seed short) and SGD on ResNet34
    # (two). Table 3: one cell, AdaLA on LSTM-1layer.
    smoke = "profile smoke: synthetic data and tiny networks, not comparable with the paper's value"
    for name, task, seeds in (("adala", "cifar10_vgg11", 2), ("adabelief", "cifar10_vgg11", 1),
                              ("sgd", "cifar10_resnet34", 2), ("adala", "ptb_lstm1", 1)):
        metric = "test_ppl" if task == "ptb_lstm1" else "test_acc"
        for seed in range(seeds):
            write_run(tmp_path, task, name, "t", seed, [{"epoch": 1, metric: 90.0 + seed}], profile="smoke")
    cells, runs = cells_for(tmp_path)
    assert cell(cells, "VGG11", "adabelief")["flag_list"] == (smoke, "1 seed missing")
    assert cell(cells, "VGG11", "adala")["flags"] == smoke  # the CSV keeps every cell's own flags
    assert pd.read_csv(io.StringIO(render_csv(cells, "Table2"))).set_index(["model", "optimizer"]).loc[
        ("ResNet34", "sgd"), "flags"] == smoke

    md = render_markdown(cells, "Table2")
    assert md.count("profile smoke") == 1
    assert f"- Every cell with runs: {smoke}\n- [1] AdaBelief / VGG11: 1 seed missing\n" in md
    assert "| AdaLA | 90.50 ± 0.71 (n=2) | 91.66 |" in md and "| AdaBelief | 90.00 ± – (n=1) [1] |" in md
    tex = render_latex(cells, "Table2")
    assert f"Every cell with runs: {latex_escape(smoke)}\\par\n[1] AdaBelief / VGG11: 1 seed missing\\par" in tex
    assert "AdaLA & 90.50 $\\pm$ 0.71 (2) & 91.66" in tex
    missing = render_missing(cells, runs)
    assert f"- Every cell with runs: {smoke}\n- AdaBelief / VGG11: 1 seed missing (n = 1)\n" in missing
    # One cell with runs in Table 3: nothing to say once, the cell keeps its flag.
    assert f"- [1] AdaLA / LSTM-1layer: {smoke}" in render_markdown(cells, "Table3")
