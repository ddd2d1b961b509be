# adala-bench: `make install` then `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DATA ?= data
RUNS ?= results/runs
REPORT ?= results/report
# Hydra's sweep syntax, as adala-train, adala-plan and adala-sweep all take it: 0,1,2 or range(0,10)
SEEDS ?= 0,1,2
PROFILE ?= paper
EXPERIMENT ?= table2
PLAN_ARGS ?=
GPUS ?= all
PER_GPU ?= 1
SWEEP := $(BIN)/adala-sweep --gpus $(GPUS) --per-gpu $(PER_GPU) --
# The overrides every sweep of the paper's tables takes (quoted: range(...) is not shell syntax).
RUN_ARGS = 'seed=$(SEEDS)' profile=$(PROFILE) data.root=$(DATA) results.root=$(RUNS)

.PHONY: install test test-quick test-demo test-slurm mutation demo bench data tables figures report reproduce plan sweep clean-demo

install:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'

# pytest-xdist: one worker per core, up to 4 (each worker computes with one torch thread: tests/conftest.py); worksteal
# hands a long test's neighbours to an idle worker, so a few long end-to-end tests do not leave one worker waiting.
TEST_JOBS ?= $(shell $(PYTHON) -c 'import os; print(min(4, len(os.sched_getaffinity(0))))')
# '=', not ':=': TEST_JOBS's python is asked only when a test target runs, not on every make.
PYTEST = $(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal

# Everything: unit tests and the end-to-end ones (console scripts, sweeps, whole runs, the pinned behaviour); about
# 4 minutes on 2 cores.
test:
	$(PYTEST)

# The inner loop: the unit tests alone (functions and modules, and each reported number against an independent
# computation; under a minute on 2 cores).
test-quick:
	$(PYTEST) tests/unit

# The README's demo section as written, on a fresh copy of the checkout (minutes: CI runs it after `make test`).
test-demo:
	$(PY) -m pytest -q -s tests/demo

# adala-train's SLURM launcher end to end on a one-node cluster on this machine, as root: the tests start it with
# scripts/slurm_local.sh (installing slurm-wlm and munge with apt-get if missing) and stop it after (minutes).
test-slurm:
	ADALA_SLURM_REQUIRE=1 $(PY) -m pytest -q -s tests/slurm

# Mutation testing (mutmut) of the code behind the reported numbers: FID, the tasks' evaluations, the optimizers'
# step, report selection and statistics. Writes results/mutation/{summary,survivors}.txt; not part of `make test` or
# CI (tens of minutes on 2 cores). Fails while a survivor is neither killed nor justified in
# scripts/mutation_justified.txt. MUTATION_GROUPS="fid report" runs only those groups (fid, tasks, optim, report).
mutation:
	$(PY) -m pip install --quiet -e '.[mutation]'
	VENV_BIN=$(BIN) bash scripts/mutation.sh $(MUTATION_GROUPS)

# CPU demo end to end: a smoke sweep of every task on synthetic data, then the report on its runs.
demo:
	bash scripts/demo.sh

# The demo skips runs it already finished (the run store's resume); this starts it from nothing.
clean-demo:
	rm -rf results/demo

bench:
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

data:
	$(BIN)/adala-data cifar10 --root $(DATA)
	$(BIN)/adala-data ptb --root $(DATA)
	$(BIN)/adala-data inception

tables:
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT) --profile $(PROFILE) --what tables

figures:
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT) --profile $(PROFILE) --what figures

report:
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT) --profile $(PROFILE)

# The paper's experiments on a GPU box: data, the sweeps (Table 2: CIFAR-10; Table 3: PTB; Table 4: GANs), the report.
# adala-sweep runs $(PER_GPU) worker(s) on each of $(GPUS) GPUs, sharing each sweep through the run store's locks.
# Finished runs are skipped, interrupted ones resume, so this can be re-run at any time.
reproduce: data
	$(SWEEP) --multirun +experiment=table2 $(RUN_ARGS)
	$(SWEEP) --multirun +experiment=table3 $(RUN_ARGS)
	$(SWEEP) --multirun +experiment=table4 $(RUN_ARGS)
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT) --profile $(PROFILE)

reproduce-table%: data
	$(SWEEP) --multirun +experiment=table$* $(RUN_ARGS)
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT) --profile $(PROFILE)

# One experiment on every GPU, no report: make sweep EXPERIMENT=search_cifar10 GPUS=4 PER_GPU=2
sweep:
	$(SWEEP) --multirun +experiment=$(EXPERIMENT) $(RUN_ARGS)

# Where a sweep stands: every run of $(EXPERIMENT) with its state, and the GPU-hours left (reads the run store only),
# with the same overrides the sweep takes, e.g. make plan EXPERIMENT=table3 'SEEDS=range(0,10)' PLAN_ARGS=--summary
plan:
	$(BIN)/adala-plan +experiment=$(EXPERIMENT) $(RUN_ARGS) $(PLAN_ARGS)
