# Two entry points from a fresh clone (see README):
#   make study      -- create .venv, install, run the study (snakemake on config.yaml)
#   make test       -- create .venv, install, lint and run every test (what CI runs)
#   make test-fast  -- the quick tier for the edit-test loop: lint, then the tests not marked `dag` or `slow`
#   make tiny       -- the whole DAG on .test/config.yaml (sizes cut, about 2 min) and its report
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed
CORES ?= 2
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# for the CPU build where plain PyPI would give the (multi-GB) CUDA one.
TORCH_PIP_ARGS ?=

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(INSTALLED)

.PHONY: install study tiny test test-fast lint
install: $(INSTALLED)

study: $(INSTALLED)
	$(VENV)/bin/snakemake --cores $(CORES) --set-threads train=1 --rerun-incomplete
	$(VENV)/bin/snakemake --cores $(CORES) --report results/report.html
	$(VENV)/bin/pgrpo-benchmarks results/benchmarks --out results/tables/benchmarks.md

tiny: $(INSTALLED)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile .test/config.yaml
	$(VENV)/bin/snakemake --configfile .test/config.yaml --report results/report.html

lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(VENV)/bin/snakemake --lint

test: lint
	$(VENV)/bin/pytest -q --durations=15

test-fast: lint
	$(VENV)/bin/pytest -q -m "not dag and not slow"
