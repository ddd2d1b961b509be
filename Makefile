# adala-bench: `make install` then `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DATA ?= data
RUNS ?= results/runs
REPORT ?= results/report
SEEDS ?= 0,1,2
EXPERIMENT ?= table2
PLAN_ARGS ?=
GPUS ?= all
PER_GPU ?= 1
SWEEP := $(BIN)/adala-sweep --gpus $(GPUS) --per-gpu $(PER_GPU) --

.PHONY: install test demo bench data tables figures report reproduce plan sweep clean-demo

install:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'

test:
	$(PY) -m pytest -q

# CPU demo end to end: a smoke sweep on synthetic CIFAR-format data, then the report on its runs.
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
	$(PY) -c "from adala_bench.metrics.fid import ensure_inception_weights as get; print(get())"

tables:
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT) --what tables

figures:
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT) --what figures

report:
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT)

# The paper's experiments on a GPU box: data, the sweeps (Table 2: CIFAR-10; Table 3: PTB; Table 4: GANs), the report.
# adala-sweep runs $(PER_GPU) worker(s) on each of $(GPUS) GPUs, sharing each sweep through the run store's locks.
# Finished runs are skipped, interrupted ones resume, so this can be re-run at any time.
reproduce: data
	$(SWEEP) --multirun +experiment=table2 seed=$(SEEDS) data.root=$(DATA) results.root=$(RUNS)
	$(SWEEP) --multirun +experiment=table3 seed=$(SEEDS) data.root=$(DATA) results.root=$(RUNS)
	$(SWEEP) --multirun +experiment=table4 seed=$(SEEDS) data.root=$(DATA) results.root=$(RUNS)
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT)

reproduce-table%: data
	$(SWEEP) --multirun +experiment=table$* seed=$(SEEDS) data.root=$(DATA) results.root=$(RUNS)
	$(BIN)/adala-report --runs $(RUNS) --out $(REPORT)

# One experiment on every GPU, no report: make sweep EXPERIMENT=search_cifar10 GPUS=4 PER_GPU=2
sweep:
	$(SWEEP) --multirun +experiment=$(EXPERIMENT) seed=$(SEEDS) data.root=$(DATA) results.root=$(RUNS)

# Where a sweep stands: every run of $(EXPERIMENT) x $(SEEDS) with its state, and the GPU-hours left (reads the run
# store only), e.g. make plan EXPERIMENT=table3 SEEDS=0-9 PLAN_ARGS="--summary profile=fast"
plan:
	$(BIN)/adala-plan $(EXPERIMENT) --seeds $(SEEDS) --runs $(RUNS) $(PLAN_ARGS)
