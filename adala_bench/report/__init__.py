"""The report: run directories -> one page (index.md, and index.html with its figures embedded) that answers the
suite's question, plus the paper's claims tested, Tables 2-4, AdaLA-vs-AdaBelief statistics, the cross-task view, the
compute-matched view and the figures as separate files (`adala-report`, see cli.py). Tasks, tables and the paper's
row order come from adala_bench.catalog; the run directory format from adala_bench.store.

    load           run directories -> one long DataFrame (one row per run and epoch)
    select         selection rules (paper, clean) -> one value per run; which runs each cell averages
    tables         cells -> Markdown, LaTeX (booktabs), CSV (with each cell's run directories and epochs); missing.md
    stats          AdaLA − AdaBelief per cell: Welch CI, p-value and the verdict
    crosstask      across the tasks: ranks, performance profile, time to AdaBelief's final value
    claims         the paper's claims tested: better across tasks, instability, speed, cost, the lookahead_weight fix
    matched        the compute-matched view (same gradient evaluations, same wall time)
    results        everything above computed once, for the files, the page and --explain
    figures        curves, GAN sample grids, FID plots, the performance profile and time-to-target figures
    page           a page as blocks, rendered to Markdown and to self-contained HTML from the same blocks
    format         how every view writes numbers and counts
    index          the report page laid out: the answer, what the runs can support, then each view's own blocks
    explain        --explain CELL: one cell back to its runs, metrics lines, arithmetic and the paper's row
    search         an lr search: the chosen setting per cell (clean and paper rules)
    search_output  search.md (as page blocks), search.csv and the --emit-best overrides
    reference      the paper's numbers and the published curves (results/reference)

tables, stats, claims, crosstask and matched each render their own page blocks; index.py puts them in order.
"""
