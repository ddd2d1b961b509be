"""The report: run directories -> the paper's Tables 2-4, AdaLA-vs-AdaBelief statistics, the compute-matched
view and the figures (`adala-report`, see cli.py). Tasks, tables and the paper's row order come from
adala_bench.catalog; the run directory format from adala_bench.store.

    load       run directories -> one long DataFrame (one row per run and epoch)
    select     selection rules (paper, clean) -> one value per run; which runs each cell averages
    tables     cells -> Markdown, LaTeX (booktabs), CSV; missing.md
    stats      AdaLA − AdaBelief per cell: Welch CI and p-value
    matched    the compute-matched view (same gradient evaluations, same wall time)
    figures    curves, GAN sample grids, FID plots
    search     an lr search: the chosen setting per cell (clean and paper rules), --emit-best overrides
    reference  the paper's numbers and the published curves (results/reference)
"""
