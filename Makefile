# Every target sets itself up: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install lint test test-pg policy-test configuration run worker emulator image image-test clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

# The emulator is a separate distribution (genauth_emulator/pyproject.toml): the service's own package, and so
# the production image, leaves it out; the tests and the sandbox get it from here.
$(STAMP): pyproject.toml genauth_emulator/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./genauth_emulator
	touch $(STAMP)

install: $(STAMP) ## create .venv: the service, the GenAuth emulator and the dev tools

lint: $(STAMP) ## ruff, mypy (strict) and the import contracts of the layers over the service
	$(BIN)/ruff check .
	$(BIN)/ruff format --check service genauth_emulator
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) ## the whole suite (PostgreSQL tests run when TEST_DATABASE_URL is set)
	$(BIN)/pytest $(PYTEST_ARGS)

policy-test: $(STAMP) ## the shipped policy against its test suite
	$(BIN)/mfa-enforcer policy test config/policies.test.yaml

configuration: $(STAMP) ## regenerate docs/configuration.md from the docstrings in service/settings.py
	$(BIN)/python -m tools.configuration

test-pg: $(STAMP) ## the suite with PostgreSQL on this machine
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} $(BIN)/pytest $(PYTEST_ARGS)

run: $(STAMP) ## the service on $$PORT; with no GENAUTH_ACCESS_KEY_ID, the sandbox (mfa-enforcer sandbox)
	@if [ -z "$${GENAUTH_ACCESS_KEY_ID}" ]; then \
		exec $(BIN)/mfa-enforcer sandbox start; \
	else \
		ENFORCER_MIGRATE_ON_START=$${ENFORCER_MIGRATE_ON_START:-true} exec $(BIN)/mfa-enforcer serve; \
	fi

worker: $(STAMP) ## the worker alone (needs the production settings)
	$(BIN)/mfa-enforcer worker

emulator: $(STAMP) ## the GenAuth emulator alone, with the sample users, on $$EMULATOR_PORT (8081)
	$(BIN)/python -m genauth_emulator --port $${EMULATOR_PORT:-8081}

# The image: deploy/build-image.sh picks podman, buildah or docker and the base (deploy/README.md, "The image").
IMAGE ?= localhost/mfa-enforcer:dev
image: ## build deploy/Dockerfile into $$IMAGE (localhost/mfa-enforcer:dev) with podman, buildah or docker
	IMAGE=$(IMAGE) deploy/build-image.sh

image-test: image $(STAMP) ## build the image, then run its commands against the emulator (needs buildah)
	@# its own temporary folder: other pytest runs starting meanwhile delete old ones under /tmp/pytest-of-$$USER
	TEST_IMAGE=$(IMAGE) $(BIN)/pytest -p no:cacheprovider --basetemp=$(CURDIR)/var/pytest-image tests/deploy/test_image.py $(PYTEST_ARGS)

clean: ## remove .venv and var/
	rm -rf $(VENV) var
