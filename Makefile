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

## Every committed benchmark figure, re-measured: the committed run's workloads and sizes (seed 42;
## paper whole, hard and structured at the size the model time here allowed), the model's answers
## replayed from the committed memo (only prompts it lacks are computed, and appended to it); writes
## docs/results/*.json, then docs/benchmark.md, docs/img/*.png and README's headline from that JSON.
## BENCH_ARGS replaces the sizes (e.g. BENCH_ARGS="--seeds 42 43 44" for the paper's three seeds).
MEMO ?= bench/memo.jsonl.gz
BENCH_ARGS ?= --seeds 42 --size hard 2 3 --size structured 5 2
bench-full: install
	$(BIN)/stepcache bench --workload all --memo-file $(MEMO) --docs docs --readme README.md $(BENCH_ARGS)

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
