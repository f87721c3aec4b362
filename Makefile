# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast coverage lint format bench audit sbom tools clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,embedded]'
	@touch $(STAMP)

install: $(STAMP)

## Start MongoDB stand-in (unless MONGO_URI is set), moderation and auth; Ctrl-C stops all.
run: install
	AUTHGATE_ENV=development $(BIN)/python scripts/devrun.py

## Tools the tests need outside the venv (redis-server, nginx, caddy, chromium, kubectl, checkov venv).
tools:
	@bash scripts/install_tools.sh

## Lint, then the whole suite against real servers started on free ports.
test: install tools lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

## The inner loop: everything except the multi-process scenarios marked `e2e`.
test-fast: install tools lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not e2e"

## The whole suite under coverage (services run as subprocesses are followed); fails under the floor.
# Services run in scratch directories: an absolute data file keeps their measurements.
coverage: export COVERAGE_FILE = $(CURDIR)/.coverage-data/coverage
coverage: install tools
	rm -rf .coverage-data && mkdir -p .coverage-data
	$(BIN)/coverage run -m pytest -q -p no:cacheprovider
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Throughput and latency against baselines measured in the same run (loopback only); report and charts in docs/bench/.
bench: install
	$(BIN)/python -m bench

## Known vulnerabilities in the locked runtime dependencies (needs PyPI's advisory data).
audit: install
	$(BIN)/python -m pip install -q pip-audit
	$(BIN)/pip-audit --strict --requirement requirements.lock --no-deps --disable-pip

## A CycloneDX SBOM of the locked runtime dependencies (offline), for a registry or a scanner.
sbom: install
	@mkdir -p dist
	$(BIN)/cyclonedx-py requirements requirements.lock --pyproject pyproject.toml --of JSON \
		--output-reproducible -o dist/sbom.cdx.json
	@echo "wrote dist/sbom.cdx.json"

clean:
	rm -rf $(VENV) .tools-venv .mypy_cache .ruff_cache .pytest_cache .coverage-data artifacts
