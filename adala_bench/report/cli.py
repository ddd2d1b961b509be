"""adala-report: the report page (index.md and a self-contained index.html): AdaLA against AdaBelief in every
cell, the cross-task view, the paper's Tables 2-4, the figures and the compute-matched view, built only from run
directories; each part also as its own file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adala_bench.cli import OneLineParser
from adala_bench.catalog import TABLES, default_reference_dir
from adala_bench.config import options
from .crosstask import rank_table
from .explain import SPELLING, ExplainError, explain
from .figures import X_AXES, write_claims_figures, write_crosstask_figures, write_figures
from .index import page_blocks, write_page
from .load import load_runs
from .matched import render_matched_markdown
from .reference import paper_values, published_curves
from .results import Results, compute
from .search import search_table
from .search_output import emit_best, write_search
from .select import RULES
from .stats import render_comparison_markdown
from .tables import render_csv, render_latex, render_markdown, render_missing
from .tuning import tuning_view
from .tuning_output import write_tuning

EPILOG = """\
The page, results/report/index.md (and index.html, the same page with its figures embedded: one file that opens
in any browser, offline): AdaLA against AdaBelief in every cell (difference, 95% CI, n, verdict) and what the runs
can and cannot support; the cross-task view (ranks, performance profile, time to AdaBelief's final value); Tables
2-4 beside the paper with their figures; the compute-matched view; what is missing or flagged.

A table cell is (table, model column, optimizer). When a cell has runs of several hparams tags, it uses the runs
of ONE tag: the tag with the most completed seeds (ties: the lexicographically first); the others are listed in
missing.md and under the table. Mean ± sample std (ddof=1) are over that tag's completed runs only; a cell with
diverged, running, interrupted, not started or unreadable runs, or with fewer seeds than --expected-seeds, is
flagged, never silently averaged. Selection rules: 'paper' = best test value over epochs for CIFAR-10 and PTB
(selected on the test set, as the reference did) and final-epoch FID; 'clean' = final-epoch value, or the test
value at the best validation epoch where the runs logged val_acc / val_ppl. Each row of table2.csv, table3.csv
and table4.csv names its run directories (run_dirs), the epoch chosen in each (epochs) and the values averaged
(values), in seed order; --explain prints one cell's arithmetic:

  adala-report --explain table3/LSTM-2layer/adala

An lr search (conf/experiment/search_*.yaml, runs in results/search): --search writes search.md and search.csv, per
(task, optimizer) the lr (and eps, where the search varied it) with the best mean best-validation value (clean)
and the one with the best mean best-test value (the paper's rule), and whether they agree; --emit-best FILE writes
the chosen setting of each cell as one line of adala-train overrides (the clean choice; --rule paper for the
test-set one). With either, tables and figures are written only if --what asks for them.

A tuning budget (conf/experiment/tune_*.yaml and defaults_*.yaml, runs in results/tuning): --tuning writes
tuning.md, tuning.csv (per task, optimizer and budget k: the expected best validation value of k trials with its
bootstrap band, and the test value of the trial it chooses), tuning_trials.csv, tuning_adala_vs_adabelief.csv and
the figures, and nothing else unless --what asks; a full report whose runs hold tuning runs has the same view on its
page (those runs are never in Tables 2-4).
"""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="adala-report", description=__doc__, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("results/runs"),
                        help="run directories root (default: results/runs)")
    parser.add_argument("--out", type=Path, default=Path("results/report"),
                        help="output folder (default: results/report)")
    parser.add_argument("--rule", choices=RULES, default=None,
                        help="selection rule (default: paper for the tables and figures, clean for --emit-best and "
                             "the override lines of search.csv)")
    parser.add_argument("--x", choices=list(X_AXES), default="epoch",
                        help="x axis of the curve figures (default: epoch)")
    parser.add_argument("--published", action=argparse.BooleanOptionalAction, default=True,
                        help="overlay the published AdaBelief-repo curves, dashed (default: on)")
    parser.add_argument("--what", choices=("tables", "figures", "all"), default=None,
                        help="what to write besides the page (default: all; with --search or --emit-best: only "
                             "those)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="folder with paper_tables.csv and the published curves (default: results/reference "
                             "of the checkout)")
    parser.add_argument("--expected-seeds", type=_positive, default=None,
                        help="seeds a cell should have (default: the most any cell of the table has)")
    parser.add_argument("--runs-csv", action="store_true", help="also write runs.csv, the long frame")
    parser.add_argument("--profile", choices=options("profile"), default="paper",
                        help="which runs to tabulate: paper (the fp32 protocol, default), fast (profile=fast runs and "
                             "any run with a speed switch on) or smoke (profile=smoke: synthetic data, tiny networks); "
                             "runs of different profiles are never averaged together")
    parser.add_argument("--explain", default=None, metavar="CELL",
                        help=f"print how one table cell is made and write nothing: CELL is {SPELLING} (tableN, the "
                             "model column as the table shows it, the optimizer as runs name it). Prints the "
                             "selection rule, each run directory with its chosen epoch, value and metrics.jsonl "
                             "line, the mean and sample-std (ddof=1) arithmetic, and the paper's value with its line "
                             "in paper_tables.csv; --rule, --profile, --runs and --expected-seeds apply")
    parser.add_argument("--search", action="store_true",
                        help="write search.md and search.csv: the lr each rule picks per (task, optimizer) in an lr "
                             "search (conf/experiment/search_*.yaml)")
    parser.add_argument("--tuning", action="store_true",
                        help="write the tuning view (tuning.md, tuning*.csv, figures): each optimizer's expected best "
                             "validation value against the trial budget, beside its package defaults "
                             "(conf/experiment/tune_*.yaml, defaults_*.yaml)")
    parser.add_argument("--emit-best", type=Path, default=None, metavar="FILE",
                        help="write the lr search's choice per (task, optimizer) to FILE, one line of adala-train "
                             "overrides each (the clean rule's unless --rule paper)")
    return parser


def write_tables(results: Results, out: Path, runs_csv: bool = False) -> list[Path]:
    """Tables 2-4 (md, tex, csv), adala_vs_adabelief, compute_matched, the cross-task CSVs, claims.csv and
    instability.csv, missing.md,
    selected_runs.csv (and runs.csv, the long frame, when asked)."""
    out.mkdir(parents=True, exist_ok=True)
    cells, rule = results.cells, results.rule
    texts: dict[str, str] = {}
    for table in TABLES:
        name = table.lower()
        texts[f"{name}.md"] = render_markdown(cells, table)
        texts[f"{name}.tex"] = render_latex(cells, table)
        texts[f"{name}.csv"] = render_csv(cells, table)
    texts["adala_vs_adabelief.md"] = render_comparison_markdown(results.comparison, cells, rule)
    texts["adala_vs_adabelief.csv"] = results.comparison.to_csv(index=False)
    texts["compute_matched.md"] = render_matched_markdown(results.matched, rule)
    texts["compute_matched.csv"] = results.matched.to_csv(index=False)
    texts["ranks.csv"] = rank_table(results.cross.ranks).to_csv(index=False)
    texts["performance_profile.csv"] = results.cross.performance.to_csv(index=False)
    texts["performance_ratios.csv"] = results.cross.ratios.to_csv(index=False)
    texts["time_to_target.csv"] = results.cross.time_to_target.to_csv(index=False)
    texts["claims.csv"] = results.claims.rows.to_csv(index=False)
    texts["instability.csv"] = results.claims.instability.to_csv(index=False)
    texts["missing.md"] = render_missing(cells, results.runs)
    texts["selected_runs.csv"] = results.runs.assign(rule=rule).to_csv(index=False)
    if runs_csv:
        texts["runs.csv"] = results.frame.to_csv(index=False)
    written = []
    for name, text in texts.items():
        (out / name).write_text(text)
        written.append(out / name)
    return written


def report_files(out: Path) -> list[str]:
    """The files in `out` the page's file list links to (the page itself left out)."""
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("index."))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    reference = args.reference or default_reference_dir()
    if not args.runs.is_dir():
        parser.error(f"runs directory '{args.runs}' does not exist")
    searching = (args.search or args.emit_best is not None or args.tuning) and args.explain is None
    what = args.what or ("none" if searching else "all")
    if what != "none" or args.explain is not None:
        try:
            paper = paper_values(reference)
        except FileNotFoundError as error:
            parser.error(str(error))
    frame = load_runs(args.runs)
    other = frame.loc[frame["profile"] != args.profile].drop_duplicates("run")["profile"].astype(object)
    for profile, count in other.value_counts().sort_index().items():  # kept apart, never averaged in: say so
        print(f"adala-report: note: {count} run(s) of profile {profile} are not in this report "
              f"(adala-report --profile {profile} tabulates them)", file=sys.stderr)
    frame = frame[frame["profile"] == args.profile]
    rule = args.rule or "paper"
    results = (compute(frame, paper, rule, args.profile, args.runs, args.expected_seeds)
               if args.explain is not None or what != "none" else None)
    if args.explain is not None:
        try:
            sys.stdout.write(explain(results, args.explain, reference))
        except ExplainError as error:
            parser.error(str(error))
        return 0
    written: list[Path] = []
    if searching:
        search_rule = args.rule or "clean"
        cells, tags = search_table(frame, search_rule)
        if args.search:
            written += write_search(cells, tags, args.out, args.profile)
        if args.emit_best is not None:
            try:
                args.emit_best.parent.mkdir(parents=True, exist_ok=True)
                args.emit_best.write_text(emit_best(cells, search_rule, args.runs, args.profile, args.emit_best))
            except OSError as error:
                parser.error(f"cannot write --emit-best file '{args.emit_best}' ({error.strerror})")
            written.append(args.emit_best)
    tuning_figures: set[str] = set()
    if args.explain is None and (args.tuning or (results is not None and results.tuning is not None)):
        view = results.tuning if results is not None else tuning_view(frame)
        files, tuning_figures, tuning_notes = write_tuning(view, args.out, draw=args.tuning or what != "tables")
        written += files
        for note in tuning_notes:
            print(f"adala-report: note: {note}", file=sys.stderr)
    if results is not None:
        figures: set[str] | None = None
        notes: list[str] = []
        if what in ("tables", "all"):
            written += write_tables(results, args.out, args.runs_csv)
        if what in ("figures", "all"):
            published = published_curves(reference) if args.published else None
            drawn, notes = write_figures(frame, results.runs, paper, args.out, args.x, published)
            cross, cross_notes = write_crosstask_figures(results.cross, args.out)
            mix, mix_notes = write_claims_figures(results.claims, results.rule, args.out)
            drawn, notes = drawn + cross + mix, notes + cross_notes + mix_notes
            written += drawn
            figures = {p.name for p in drawn} | tuning_figures
            for note in notes:
                print(f"adala-report: note: {note}", file=sys.stderr)
        written += write_page(page_blocks(results, figures, notes, report_files(args.out), args.x), args.out)
    elif (args.search or args.tuning) and not (args.out / "index.md").exists():
        # Only the lr search or the tuning view: a page listing its files, unless a full report's page is there
        # already (kept).
        written += write_page(page_blocks(None, None, [], report_files(args.out)), args.out)
    print(where(written, args.out))
    return 0


def where(written: list[Path], out: Path) -> str:
    """One line: where the report is, and how many files were written."""
    page = out / "index.md"
    if page in written:
        return f"adala-report: the report is {page} (and {out / 'index.html'}, one file); {len(written)} files in {out}"
    return f"adala-report: wrote {', '.join(str(p) for p in written)}"


if __name__ == "__main__":
    sys.exit(main())
