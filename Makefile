# DBMigrate: `make run` starts the stack, `make test` runs the suite, `make bench` measures.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/dbmigrate/v1/*.proto)
GEN_STAMP := gen/.generated

.PHONY: setup venv proto tools browsers services run test bench demo clean

setup: venv proto tools

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	# Generated code lives in gen/ (one place); put it on the venv's path.
	echo "$(CURDIR)/gen" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/dbmigrate-gen.pth"
	touch $(STAMP)

# Python code from protos/dbmigrate/v1/*.proto into gen/dbmigrate/v1 (never edited by hand).
proto: $(GEN_STAMP)
$(GEN_STAMP): $(PROTOS) $(STAMP)
	rm -rf gen && mkdir -p gen
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=gen --grpc_python_out=gen --pyi_out=gen $(PROTOS)
	touch $(GEN_STAMP)

# System tools: pg_dump (postgresql-client) and, for browser tests, Chromium.
tools:
	bash scripts/install-tools.sh

browsers:
	bash scripts/install-tools.sh --browser

services:
	bash scripts/ensure-services.sh

run: setup
	$(BIN)/python -m scripts.run_stack

test: setup browsers services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: setup services
	bash scripts/install-tools.sh --bench
	$(BIN)/python -m bench $(BENCH_ARGS)

demo: setup services
	$(BIN)/python -m scripts.demo

clean:
	rm -rf gen $(VENV) var test-output bench-output
