# The two commands of the README:
#   make reproduce   create .venv, install, run the DAG for Table 1 on the embedded benchmark
#   make test        create .venv, install, run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Runs stay offline and quiet: no analytics, no update checks.
export DVC_NO_ANALYTICS := 1
export DVC_NO_UPDATER := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)
EMPTY_DIR_MD5 := d751713988987e9331980363e24189ce.dir

.PHONY: install reproduce reproduce-all test test-remote test-slurm lint data clean
install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel (a bare `torch` would pull a multi-GB CUDA build)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# data/ is tracked whole by data.dvc. A fresh clone has neither data/ nor its (empty) cache entry:
# pull it from the team remote when one is configured, else record the empty folder locally.
data: $(STAMP)
	@mkdir -p data
	@if $(BIN)/dvc status data.dvc 2>/dev/null | grep -q "not in cache"; then \
	  if [ -n "$$($(BIN)/dvc remote list)" ]; then $(BIN)/dvc pull data.dvc; \
	  elif grep -q "$(EMPTY_DIR_MD5)" data.dvc && [ -z "$$(ls -A data)" ]; then $(BIN)/dvc commit --force --quiet data.dvc; \
	  else echo "data.dvc tracks data that is not in your DVC cache: add the team remote (dvc remote add -d ...) and run dvc pull" >&2; exit 1; fi; \
	fi

# After Snakemake has built the outputs, `dvc commit` records them in dvc.lock (same commands, deps and
# params, see tests/test_pipeline.py), so `dvc status` and `dvc repro` agree that nothing is stale.
reproduce: data
	$(BIN)/snakemake --profile workflow/profiles/local reproduce_table1
	$(BIN)/dvc commit --force --quiet

reproduce-all: data
	$(BIN)/snakemake --profile workflow/profiles/local all
	$(BIN)/dvc commit --force --quiet

test: data
	$(BIN)/ruff check vila tests
	$(BIN)/vila pipeline --check
	$(BIN)/python -m pytest -q

# Opt-in: a DVC push/clone/pull round trip against an S3-compatible server (moto) on loopback.
test-remote: data
	$(BIN)/pip install --quiet -e ".[dev,s3]"
	$(BIN)/python -m pytest -q -m remote tests/test_remote.py

# Opt-in, as root: a one-node SLURM cluster on loopback, then the smoke DAG through workflow/profiles/slurm.
test-slurm: data
	$(BIN)/pip install --quiet -e ".[dev,slurm]"
	tests/slurm/start-cluster.sh
	$(BIN)/python -m pytest -q -m slurm tests/test_slurm.py

lint: $(STAMP)
	$(BIN)/ruff check vila tests

clean:
	rm -rf work models results reports/*.html .snakemake
