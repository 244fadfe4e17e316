# One virtualenv holds everything: torch (CPU wheel, installed first), the stack, the local model, dev tools.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo bench-full scale test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## The main job: the quick benchmark on the embedded defaults (local Chroma, bundled MiniLM, local model).
demo: install
	$(BIN)/stepcache bench --quick

## The paper-shaped benchmark in full (3 seeds; one to two hours here) and the scale benchmark.
bench-full: install
	$(BIN)/stepcache bench --docs docs

scale: install
	$(BIN)/stepcache scale

## The tests: lint, types, the pytest suite (unit, integration on real parts, notebooks).
test: install lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
