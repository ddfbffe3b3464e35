# Two entry points from a fresh clone (see README):
#   make study      -- create .venv, install, run the study (snakemake on config.yaml)
#   make test       -- create .venv, install, lint and run every test (what CI runs)
#   make test-fast  -- the quick tier for the edit-test loop: lint, then the tests not marked `dag` or `slow`
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed
CORES ?= 2

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(INSTALLED)

.PHONY: study test test-fast lint
study: $(INSTALLED)
	$(VENV)/bin/snakemake --cores $(CORES) --set-threads train=1 --rerun-incomplete
	$(VENV)/bin/snakemake --cores $(CORES) --report results/report.html
	$(VENV)/bin/pgrpo-benchmarks results/benchmarks --out results/tables/benchmarks.md

lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(VENV)/bin/snakemake --lint

test: lint
	$(VENV)/bin/pytest -q --durations=15

test-fast: lint
	$(VENV)/bin/pytest -q -m "not dag and not slow"
