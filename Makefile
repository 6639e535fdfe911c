# Flowdesk: `make demo` sets up and runs the demo; `make test` sets up and runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test lint format bench-engine clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

demo: install
	FLOWDESK_SIMULATORS=1 $(BIN)/python manage.py demo --serve

test: install
	@bash scripts/test.sh $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-engine: install
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) var tests/artifacts .pytest_cache
