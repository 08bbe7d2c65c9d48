# Every target sets itself up: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install lint test test-pg policy-test run worker emulator clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the service with dev tools

lint: $(STAMP) ## ruff and mypy (strict) over the service
	$(BIN)/ruff check .
	$(BIN)/ruff format --check service genauth_emulator
	$(BIN)/mypy

test: $(STAMP) ## the whole suite (PostgreSQL tests run when TEST_DATABASE_URL is set)
	$(BIN)/pytest $(PYTEST_ARGS)

policy-test: $(STAMP) ## the shipped policy against its test suite
	$(BIN)/mfa-enforcer policy test config/policies.test.yaml

test-pg: $(STAMP) ## the suite with PostgreSQL on this machine
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} $(BIN)/pytest $(PYTEST_ARGS)

run: $(STAMP) ## the service on $$PORT; with no GENAUTH_ACCESS_KEY_ID, the sandbox
	$(BIN)/mfa-enforcer serve

worker: $(STAMP) ## the worker alone (needs the production settings)
	$(BIN)/mfa-enforcer worker

emulator: $(STAMP) ## the GenAuth emulator alone, with the sample users, on $$EMULATOR_PORT (8081)
	$(BIN)/python -m genauth_emulator --port $${EMULATOR_PORT:-8081}

clean: ## remove .venv and var/
	rm -rf $(VENV) var
