# toolforge — set-up, tests, checks and benchmarks. Every target works on a fresh Debian machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup venv host docker images model test test-unit check lint typecheck bench clean

setup: venv host docker images model ## everything: venv, Docker engine, base images, embedded model
	@$(BIN)/toolforge doctor || true
	@echo "setup done: try  $(BIN)/toolforge generate \"a tool that converts Celsius to Fahrenheit\""

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,local]'
	@touch $@

host: ## debootstrap, esbuild, bubblewrap from Debian's packages when missing (root only)
	@scripts/host-packages.sh

docker: ## install (root only) and start the Docker engine when none answers
	@scripts/ensure-docker.sh

images: venv host docker ## bootstrap the base images offline (debootstrap → docker import); no-op when present
	$(BIN)/toolforge images build

model: venv ## assemble and verify the embedded local model (Qwen2.5-Coder-1.5B GGUF)
	$(BIN)/toolforge model install

test: venv docker ## the whole suite: unit + Docker integration + embedded-model end-to-end
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: venv ## the tests that need neither Docker nor the model
	$(BIN)/pytest -m "not docker and not model" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check toolforge tests
	$(BIN)/ruff format --check toolforge tests

typecheck: venv
	$(BIN)/mypy toolforge

check: lint typecheck test ## ruff + mypy + tests

bench: venv docker images ## measured figures, each beside a baseline from the same run
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
