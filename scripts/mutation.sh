#!/usr/bin/env bash
# `make mutation`: mutation testing (mutmut 3) of the code that computes the numbers the report publishes.
#
# A test proves something only if it fails when the code is wrong. mutmut changes one thing at a time in a copy of
# the code (a `<` for a `<=`, a constant, a dropped argument, ...) and runs the tests that reach the changed function;
# a mutant the tests do not notice "survives". This script runs mutmut once per group below, each group over its
# modules with its own fast tests (mutmut then runs, per mutant, only those of them that call the mutated function),
# and writes:
#
#   results/mutation/summary.txt     counts per group and run: mutants, killed, survived, justified, unjustified
#   results/mutation/survivors.txt   every mutant still not killed, with its status and diff (survived, no tests,
#                                    timeout), group by group (each group's own list: results/mutation/<group>.survivors)
#
# A survivor is either killed by a new test or justified by one line in scripts/mutation_justified.txt (the mutant's
# name, then why: an equivalent mutant, a CUDA-only difference, message text). `summary.txt` counts the survivors with
# no line there as "unjustified"; the script exits 1 when a group's latest run has any, 0 otherwise.
#
# Not part of `make test` or CI: it is CPU-heavy (it runs at nice 19) and takes about an hour on 2 cores.
# Work happens in build/mutation/<group>/ (a copy of the package, conf/, tests/, results/reference/ and pyproject.toml,
# with mutmut's own setup.cfg written there), so the working tree is never touched.
#
#   scripts/mutation.sh                   all groups, every mutant of their functions
#   scripts/mutation.sh fid report        only these groups
#   scripts/mutation.sh --recheck [...]   only the mutants each group's last run left alive (after adding tests)
#   MUTATION_JOBS=1 scripts/mutation.sh   one worker (default: 2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${VENV_BIN:-$ROOT/.venv/bin}"
WORK="${MUTATION_WORK:-$ROOT/build/mutation}"
OUT="${MUTATION_OUT:-$ROOT/results/mutation}"
JOBS="${MUTATION_JOBS:-2}"
JUSTIFIED="$ROOT/scripts/mutation_justified.txt"

if ! "$BIN/python" -c "import mutmut" 2>/dev/null; then
    echo "mutation.sh: mutmut is not installed in $BIN; run: $BIN/pip install 'mutmut>=3.8,<4'" >&2
    exit 2
fi

# ---- the groups: name | modules to mutate | functions (mutmut name globs; * = all) | tests ----------------------
# mutmut names a mutant <module>.x_<function>__mutmut_<n> or <module>.xǁ<Class>ǁ<method>__mutmut_<n>.
declare -A MODULES FUNCTIONS TESTS
GROUPS_ALL=(fid tasks optim report)

# fid.py: everything on the way from images to an FID and its label; not the download path, the random-weights
# writer (a test fixture's tool) or message formatting.
MODULES[fid]="adala_bench/metrics/fid.py adala_bench/tasks/gan_fid.py"
FUNCTIONS[fid]="adala_bench.metrics.fid.x_inception_weights_file__mutmut_*
adala_bench.metrics.fid.x_weights_sha256__mutmut_*
adala_bench.metrics.fid.x_weights_are_real__mutmut_*
adala_bench.metrics.fid.x_weights_label__mutmut_*
adala_bench.metrics.fid.xǁInceptionFeaturesǁ*
adala_bench.metrics.fid.x_activation_statistics__mutmut_*
adala_bench.metrics.fid.x_frechet_distance__mutmut_*
adala_bench.metrics.fid.x_fid_from_images__mutmut_*
adala_bench.metrics.fid.x_paper_preprocess__mutmut_*
adala_bench.metrics.fid.xǁRealStatisticsCacheǁ*
adala_bench.metrics.fid.x__check_shapes__mutmut_*
adala_bench.tasks.gan_fid.*"
TESTS[fid]="tests/unit/metrics/test_fid.py tests/unit/metrics/test_fid_inception.py tests/unit/metrics/test_fid_cache.py
tests/unit/tasks/test_gan_fid.py"

# Only the evaluations: the rest of these modules is training, held by the trainer and pinned-behaviour tests.
MODULES[tasks]="adala_bench/tasks/classification.py adala_bench/tasks/language.py"
FUNCTIONS[tasks]="adala_bench.tasks.classification.xǁCifar10Classificationǁevaluate__mutmut_*
adala_bench.tasks.classification.xǁCifar10Classificationǁ_score__mutmut_*
adala_bench.tasks.language.xǁPennTreebankLMǁevaluate__mutmut_*
adala_bench.tasks.language.xǁPennTreebankLMǁ_mean_loss__mutmut_*"
TESTS[tasks]="tests/unit/tasks/test_classification.py tests/unit/tasks/test_language.py"

MODULES[optim]="adala_bench/optim/adala.py adala_bench/optim/msvag.py adala_bench/optim/fromage.py"
FUNCTIONS[optim]="adala_bench.optim.adala.* adala_bench.optim.msvag.* adala_bench.optim.fromage.*"
TESTS[optim]="tests/unit/optim/test_adala.py tests/unit/optim/test_msvag.py tests/unit/optim/test_fromage.py
tests/unit/optim/test_common.py tests/unit/optim/test_registry.py"

# The selection and the statistics; not their prose (rule_description) or the markdown of the comparison table.
MODULES[report]="adala_bench/report/select.py adala_bench/report/stats.py"
FUNCTIONS[report]="adala_bench.report.select.x_check_rule__mutmut_*
adala_bench.report.select.x_run_values__mutmut_*
adala_bench.report.select.x__first_best__mutmut_*
adala_bench.report.select.x_choose_hparams__mutmut_*
adala_bench.report.stats.x_welch__mutmut_*
adala_bench.report.stats.x_adala_vs_adabelief__mutmut_*
adala_bench.report.stats.x__summary__mutmut_*
adala_bench.report.stats.x_verdict_kind__mutmut_*
adala_bench.report.stats.x_verdict__mutmut_*
adala_bench.report.stats.x_tally__mutmut_*"
TESTS[report]="tests/unit/report/test_select.py tests/unit/report/test_stats.py tests/unit/report/test_matched.py"

recheck=0
if [ "${1:-}" = "--recheck" ]; then recheck=1; shift; fi
selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${GROUPS_ALL[@]}")
for group in "${selected[@]}"; do
    [ -n "${MODULES[$group]:-}" ] || { echo "mutation.sh: unknown group '$group' (groups: ${GROUPS_ALL[*]})" >&2; exit 2; }
done

mkdir -p "$OUT" "$WORK"
MUTMUT_VERSION="$("$BIN/python" -c 'from importlib.metadata import version; print(version("mutmut"))')"
COMMIT="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"

for group in "${selected[@]}"; do
    dir="$WORK/$group"
    patterns="${FUNCTIONS[$group]}"
    mode=full
    if [ "$recheck" = 1 ]; then
        mode=recheck
        patterns="$(sed -n 's/^## \(.*__mutmut_[0-9]*\): .*/\1/p' "$OUT/$group.survivors" 2>/dev/null || true)"
        [ -n "$patterns" ] || { echo "== mutation: $group: no survivors of an earlier run to recheck"; continue; }
    fi
    echo "== mutation: $group (${MODULES[$group]//$'\n'/ })"
    rm -rf "$dir"
    mkdir -p "$dir"
    # The tree mutmut works on: the package, the config it reads, the tests and pytest's settings.
    cp -r "$ROOT/adala_bench" "$ROOT/conf" "$ROOT/tests" "$ROOT/pyproject.toml" "$dir/"
    mkdir -p "$dir/results" && cp -r "$ROOT/results/reference" "$dir/results/"  # the paper's values (report tests)
    find "$dir" -name __pycache__ -type d -prune -exec rm -rf {} +
    # mutmut reads [tool.mutmut] from pyproject.toml, else [mutmut] from setup.cfg: the copy's pyproject has none.
    {
        echo "[mutmut]"
        echo "source_paths = adala_bench"
        echo "only_mutate ="
        for module in ${MODULES[$group]}; do echo "    $module"; done
        echo "also_copy ="
        echo "    conf"
        echo "    tests"
        echo "    pyproject.toml"
        echo "    results/reference"
        echo "pytest_add_cli_args_test_selection ="
        for test in ${TESTS[$group]}; do [ -f "$ROOT/$test" ] && echo "    $test"; done
        echo "pytest_add_cli_args ="
        echo "    -p"
        echo "    no:cacheprovider"
        echo "    -W"
        echo "    ignore::pytest.PytestUnraisableExceptionWarning"
        # torch is not fork-safe once its thread pools exist: fork each mutant's worker from a clean server
        # A raise statement is not mutated (its message is text for people); the condition that leads to it is.
        echo "do_not_mutate_patterns ="
        echo "    ^\s*raise\b"
        echo "process_isolation = forkserver"
        echo "use_git_change_detection = false"
        echo "timeout_multiplier = 10.0"
    } > "$dir/setup.cfg"

    # shellcheck disable=SC2086
    (cd "$dir" && OMP_NUM_THREADS=1 nice -n 19 "$BIN/mutmut" run --max-children "$JOBS" $patterns) \
        > "$OUT/$group.log" 2>&1 || { echo "mutation.sh: mutmut failed for $group; see $OUT/$group.log" >&2; tail -30 "$OUT/$group.log" >&2; exit 2; }

    # Every mutant of the group's functions with its status (mutmut's own `results`); the survivors with their diffs.
    (cd "$dir" && "$BIN/mutmut" results --all true) > "$dir/results.txt" 2>/dev/null
    (cd "$dir" && "$BIN/python" - "$group" "$JUSTIFIED" "$OUT" "$BIN/mutmut" "$mode" "$MUTMUT_VERSION $COMMIT" $patterns <<'PY'
import datetime, fnmatch, subprocess, sys
from pathlib import Path

group, justified_file, out, mutmut, mode, version = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:7]
patterns = sys.argv[7:]
justified = {}
for line in justified_file.read_text().splitlines() if justified_file.exists() else []:
    if line.strip() and not line.startswith("#"):
        name, _, why = line.partition(" ")
        justified[name] = why.strip()

counts = {"mutants": 0, "killed": 0, "survived": 0, "justified": 0, "unjustified": 0}
survivors = []
for line in Path("results.txt").read_text().splitlines():
    name, _, status = line.strip().rpartition(": ")
    if "__mutmut_" not in name or not any(fnmatch.fnmatch(name, p) for p in patterns):
        continue
    counts["mutants"] += 1
    if status in ("killed", "caught by type check"):
        counts["killed"] += 1
        continue
    counts["survived"] += 1  # survived, no tests, timeout, suspicious, not checked: anything not killed
    counts["justified" if name in justified else "unjustified"] += 1
    survivors.append((name, status))

with open(out / f"{group}.survivors", "w") as file:
    for name, status in survivors:
        note = f"  [justified: {justified[name]}]" if name in justified else ""
        diff = subprocess.run([mutmut, "show", name], capture_output=True, text=True).stdout
        file.write(f"## {name}: {status}{note}\n{diff.rstrip()}\n\n")
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
with open(out / f"{group}.runs", "a") as file:  # one line per run of this group; summary.txt shows them all
    file.write(f"{group:<8} {mode:<8} {counts['mutants']:8d} {counts['killed']:8d} {counts['survived']:8d} "
               f"{counts['justified']:9d} {counts['unjustified']:11d}  {when} mutmut {version}\n")
print(f"   {group}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
PY
    )
done

# The summary of every group's runs, and the survivors of each group's latest run, in the groups' order.
{
    echo "# make mutation (scripts/mutation.sh): every run of each group; a recheck re-runs only the earlier survivors"
    printf '%-8s %-8s %8s %8s %8s %9s %11s  %s\n' group run mutants killed survived justified unjustified when
    for group in "${GROUPS_ALL[@]}"; do [ -f "$OUT/$group.runs" ] && cat "$OUT/$group.runs"; done
} > "$OUT/summary.txt"
for group in "${GROUPS_ALL[@]}"; do [ -f "$OUT/$group.survivors" ] && cat "$OUT/$group.survivors"; done \
    > "$OUT/survivors.txt"
cat "$OUT/summary.txt"
for group in "${GROUPS_ALL[@]}"; do
    if [ -f "$OUT/$group.runs" ] && [ "$(tail -1 "$OUT/$group.runs" | awk '{ print $7 }')" != 0 ]; then
        echo "mutation.sh: surviving mutants without a justification: see $OUT/survivors.txt" >&2
        exit 1
    fi
done
