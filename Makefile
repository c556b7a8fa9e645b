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

# torch first, pinned: the CPU wheel (a bare `torch` would pull a multi-GB CUDA build).
TORCH := torch==2.13.0
UV := uv==0.13.9
LOCK := requirements.lock
# vega for `dvc plots show/diff` offline: the versions DVC's own page asks a CDN for, from the npm registry.
VEGA := vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
PLOTS_TEMPLATE := .dvc/plots-offline.html

.PHONY: install lock plots-template reproduce reproduce-seeds reproduce-selection identity readme report pipeline-svg reproduce-all test test-fast test-remote test-slurm lint data clean
# (the variables above are defined before this line: make expands a rule's prerequisites where it reads them)
install: $(STAMP) $(PLOTS_TEMPLATE)

# Exactly the versions the figures come from: everything from the lock and the project itself with --no-deps
# (the lock is complete: nothing to resolve), so nothing is installed that the lock does not pin; pip check proves
# the lock is consistent. torch by pip (uv does not look for the local CPU wheel), the lock's other ~180 packages by
# uv (parallel downloads and byte-compiling: 44 s against pip's 113 here), by pip where uv cannot reach an index
# (uv reads no pip.conf).
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	{ $(BIN)/pip install --quiet $(UV) \
	  && $(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --compile-bytecode -r $(LOCK); } \
	  || $(BIN)/pip install --quiet --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	@touch $(STAMP)

# Refresh the lock: resolve the project and its dev extra in a throwaway venv (torch first, as above) and
# freeze it. The project goes in editable (a plain install would leave build/ in the tree) and is left out;
# so are pip/setuptools/wheel, and torch's +cpu label (==2.13.0 matches 2.13.0+cpu). Written atomically.
lock:
	@set -euo pipefail; tmp=$$(mktemp -d); out=$$(mktemp $(LOCK).XXXXXX); trap 'rm -rf "$$tmp" "$$out"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --quiet --upgrade pip; \
	"$$tmp/venv/bin/pip" install --quiet $(TORCH); \
	"$$tmp/venv/bin/pip" install --quiet -e ".[dev]"; \
	"$$tmp/venv/bin/pip" check; \
	{ echo "# Exact versions of vila-repro's dependencies and its dev extra: Python $$("$$tmp/venv/bin/python" -c 'import sys; print(*sys.version_info[:2], sep=".")'), CPU torch."; \
	  echo "# Made by \`make lock\`: in a fresh venv, pip install $(TORCH), then pip install -e \".[dev]\", then pip freeze."; \
	  echo "# Installed by \`make install\` and environment.yml; tests/test_environment.py checks the .venv against it."; \
	  echo "# Refresh: make lock"; \
	  "$$tmp/venv/bin/pip" freeze --exclude-editable | "$$tmp/venv/bin/python" -c "$$FREEZE_TO_LOCK"; } > "$$out"; \
	chmod 644 "$$out"; mv "$$out" $(LOCK); echo "$(LOCK): $$(grep -vc '^#' $(LOCK)) pins"

# DVC's plots page with the vega scripts inlined (.dvc/config: plots.html_template); fetched pinned, never committed.
plots-template: $(PLOTS_TEMPLATE)
$(PLOTS_TEMPLATE): workflow/scripts/offline_plots_template.py
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for spec in $(VEGA); do name=$${spec%@*}; mkdir -p "$$tmp/$$name"; \
	  (cd "$$tmp/$$name" && npm pack --silent "$$spec" >/dev/null && tar -xzf *.tgz); done; \
	$(PYTHON) workflow/scripts/offline_plots_template.py "$$tmp" $@

# pip freeze -> lock lines: PEP 503 names, sorted, no local label, without the project and pip/setuptools/wheel.
define FREEZE_TO_LOCK
import re, sys
pins = set()
for line in sys.stdin.read().splitlines():
    m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^+ ]+)(\+\S+)?", line)
    if not m:
        sys.exit(f"make lock: not a name==version pin: {line!r}")
    name = re.sub(r"[-_.]+", "-", m[1]).lower()
    if name not in {"vila-repro", "pip", "setuptools", "wheel"}:
        pins.add(f"{name}=={m[2]}")
print(*sorted(pins), sep="\n")
endef
export FREEZE_TO_LOCK

# data/ is tracked whole by data.dvc. A fresh clone has neither data/ nor its (empty) cache entry:
# pull it from the team remote when one is configured, else record the empty folder locally.
data: $(STAMP) $(PLOTS_TEMPLATE)
	@mkdir -p data
	@if $(BIN)/dvc status data.dvc 2>/dev/null | grep -q "not in cache"; then \
	  if [ -n "$$($(BIN)/dvc remote list)" ]; then $(BIN)/dvc pull data.dvc; \
	  elif grep -q "$(EMPTY_DIR_MD5)" data.dvc && [ -z "$$(ls -A data)" ]; then $(BIN)/dvc commit --force --quiet data.dvc; \
	  else echo "data.dvc tracks data that is not in your DVC cache: add the team remote (dvc remote add -d ...) and run dvc pull" >&2; exit 1; fi; \
	fi

# After Snakemake has built the outputs, `dvc commit` records them in dvc.lock (same commands, deps and
# params, see tests/test_pipeline.py), so `dvc status` and `dvc repro` agree that nothing is stale. The order in
# which jobs start comes from the stage list (each stage's `priority`: the heads of the long chains first).
reproduce: data
	$(BIN)/snakemake --profile workflow/profiles/local reproduce_table1
	$(BIN)/dvc commit --force --quiet dvc.yaml

# The seed study (study/dvc.yaml's stages; Snakemake's reproduce_seeds): every model again at each of seeds_study.
reproduce-seeds: data
	$(BIN)/snakemake --profile workflow/profiles/local reproduce_table1 reproduce_seeds
	$(BIN)/dvc commit --force --quiet dvc.yaml study/dvc.yaml

# The selection study (selection/dvc.yaml's stages; Snakemake's reproduce_selection): every selector of
# selection.selectors read by one reader per k; it reuses Table 1's models and adds the readers, the frame scores
# and the select jobs.
reproduce-selection: data
	$(BIN)/snakemake --profile workflow/profiles/local reproduce_table1 reproduce_selection
	$(BIN)/dvc commit --force --quiet dvc.yaml selection/dvc.yaml

# The README's picture of the DAG: Snakemake's rule graph of Table 1's target, drawn by Graphviz's dot
# (apt-get install graphviz); tests/test_pipeline.py checks it names every rule.
pipeline-svg: $(STAMP)
	$(BIN)/snakemake --rulegraph dot -- reproduce_table1 | dot -Tsvg > docs/pipeline.svg

# Snakemake's self-contained report of what ran (the rule graph, every job's runtime, command and provenance, and
# the key outputs with their captions: workflow/report/). After make reproduce; REPORT_TARGETS=all to include the
# studies that ran.
REPORT_TARGETS ?= reproduce_table1
report: $(STAMP)
	$(BIN)/snakemake --report reports/snakemake.html $(REPORT_TARGETS)

# The README's "Results at a glance", regenerated from results/ (and study/results/ where the seed study ran).
readme: $(STAMP)
	$(BIN)/vila readme

# After `make reproduce`: are the eval JSONs byte-identical to those REV's dvc.lock recorded? (make identity REV=c02ba5e)
identity:
	$(BIN)/python workflow/scripts/eval_identity.py $(REV)

reproduce-all: data
	$(BIN)/snakemake --profile workflow/profiles/local all
	$(BIN)/dvc commit --force --quiet dvc.yaml

# The fast tier on every core (pytest-xdist, one worker per core), then the DAG runs, which spread over the cores
# themselves, one at a time.
test: data
	$(BIN)/ruff check vila tests
	$(BIN)/vila pipeline --check
	$(BIN)/python -m pytest -q -n auto -m "not slow and not remote and not slurm" --durations=10
	$(BIN)/python -m pytest -q -m "slow and not remote and not slurm" --durations=15

# The tier a contributor runs on every change: unit and contract tests, no DAG run (tests marked `slow` left out).
test-fast: $(STAMP)
	$(BIN)/ruff check vila tests
	$(BIN)/vila pipeline --check
	$(BIN)/python -m pytest -q -n auto -m "not slow and not remote and not slurm" --durations=10

# Opt-in: a DVC push/clone/pull round trip against an S3-compatible server (moto) on loopback.
test-remote: data
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[dev,s3]"
	$(BIN)/python -m pytest -q -m remote tests/test_remote.py

# Opt-in, as root: a one-node SLURM cluster on loopback, then the smoke DAG through workflow/profiles/slurm.
test-slurm: data
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[dev,slurm]"
	tests/slurm/start-cluster.sh
	$(BIN)/python -m pytest -q -m slurm tests/test_slurm.py

lint: $(STAMP)
	$(BIN)/ruff check vila tests

clean:
	rm -rf work models results reports/*.html .snakemake study/seeds study/results
