# Quick start: `make demo` (the main job) and `make test` (the whole suite). Both install what they need.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install system-deps demo test test-unit bench lint clean screenshots

$(BIN)/.installed: pyproject.toml
	@echo "Creating $(VENV) and installing rtserve with its Python packages (a few minutes the first time)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off -e ".[test]"  # each package as it comes: no minute of silence
	@echo "Installed into $(VENV)."
	touch $@

system-deps:
	.ci/system-deps.sh

install: system-deps $(BIN)/.installed

demo: install
	$(BIN)/rtserve demo

test: install
	$(BIN)/pytest

test-unit: $(BIN)/.installed
	$(BIN)/pytest -m unit

# Rewrites docs/screenshots/ from the browser tests (a plain test run leaves tracked files alone).
screenshots: install
	RTSERVE_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -m browser

bench: install
	$(BIN)/python bench/run.py --ray
	$(BIN)/python bench/instances.py
	$(BIN)/python bench/iac.py
	$(BIN)/python bench/sql.py
	$(BIN)/python bench/inference_tables.py
	$(BIN)/python bench/environments.py

lint: $(BIN)/.installed
	$(BIN)/ruff check rtserve backend provider cdk tests bench main.py
	$(BIN)/ruff format --check rtserve backend provider cdk tests bench main.py
	$(BIN)/python .ci/typecheck.py
	TF_CLI_CONFIG_FILE=/dev/null $(BIN)/python -m rtserve.provider.tfcli fmt -check -recursive modules

clean:
	rm -rf .rtserve .rtserve-demo cdktf.out .bench
