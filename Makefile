# audiocil: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test test-slow test-all lint format bench-data bench-train bench-scale clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install audiocil (editable) with its test tools

run: $(STAMP) ## the default experiment: standard CIL on the embedded gm100 (ARGS="key=value ..." to override)
	$(PY) -m audiocil experiment=quickstart $(ARGS)

test: $(STAMP) ## the default test suite (fast tier), on 2 processes (pytest-xdist)
	$(PY) -m pytest -n 2 $(ARGS)

test-slow: $(STAMP) ## the slow tier: DDP, end-to-end checks
	$(PY) -m pytest -m slow $(ARGS)

test-all: $(STAMP) ## both tiers
	$(PY) -m pytest -m "slow or not slow" $(ARGS)

lint: $(STAMP) ## ruff on src/ and tests/
	$(PY) -m ruff check src tests benchmarks

format: $(STAMP) ## ruff format
	$(PY) -m ruff format src tests benchmarks

bench-data: $(STAMP) ## data-pipeline benchmark: extraction, cache, model-only vs end-to-end samples/s
	$(PY) benchmarks/bench_data.py $(ARGS)

bench-train: $(STAMP) ## training benchmark: model-only vs end-to-end samples/s of every standard method (ARGS="--methods lwf,icarl")
	$(PY) benchmarks/bench_train.py $(ARGS)

bench-scale: $(STAMP) ## scale benchmark: peak RSS/PSS of a 50 000-clip run (read from the file vs copied, 2 DDP ranks), embedded build times
	$(PY) benchmarks/bench_scale.py $(ARGS)

clean: ## remove outputs/ (runs, embedded datasets, feature cache)
	rm -rf outputs
