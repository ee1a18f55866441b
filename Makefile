# Inwire developer commands: `make up` runs the platform, `make test` is what CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv must use the machine's Python, never download one (pyproject says so too).
export UV_PYTHON_DOWNLOADS := never

# uv from PATH, else where `pip install --user` puts it, else as a module of python3.
UV = $(shell command -v uv 2>/dev/null || { test -x "$(HOME)/.local/bin/uv" && echo "$(HOME)/.local/bin/uv"; } || echo "python3 -m uv")
RUN = $(UV) run --frozen
PYTEST_ARGS ?=

# mypy --strict (configured in pyproject) on these, the rest with the services' rules; a
# package joins once it exists (has an __init__.py).
packages = $(patsubst %/__init__.py,%,$(wildcard $(foreach p,$(1),src/inwire/$(p)/__init__.py)))
STRICT_PACKAGES = $(call packages,kit contracts sdk cli)
OTHER_PACKAGES = $(call packages,services allinone gateway ai)
CHECKS = check-ruff check-format check-mypy check-imports

.PHONY: help uv sync torch up test lint fmt bench pytest $(CHECKS)

help:
	@echo "make up     start every Inwire service (installs uv and the environment first)"
	@echo "make test   lint, type-check, import rules and tests (PYTEST_ARGS=... for pytest)"
	@echo "make lint   only the checks"
	@echo "make fmt    format and auto-fix"
	@echo "make bench  run every bench/bench_*.py"

uv:
	@command -v uv >/dev/null 2>&1 || test -x "$(HOME)/.local/bin/uv" \
	  || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --user --quiet uv \
	  || python3 -m pip install --quiet uv \
	  || python3 -m pip install --user --quiet --break-system-packages uv

# --inexact keeps what `make torch` put into the environment beside the locked packages.
sync: uv
	$(UV) sync --frozen --inexact

# PyTorch (the `torch` extra: CTGAN and TVAE in Synthex) is installed with pip, which takes
# the CPU build from this machine kind's disk; uv would download a CUDA build of several GB.
# Best effort: without it those tests are skipped outside CI and fail in CI.
torch: sync
	@.venv/bin/python -c "import torch" 2>/dev/null \
	  || python3 -m pip --python .venv/bin/python install --quiet torch==2.13.0 \
	  || echo "warning: torch is not installed; CTGAN and TVAE are unavailable"

up: sync
	$(RUN) inwire up

# Every check runs even when an earlier one fails (--keep-going), so one CI run reports all
# of them; the target fails if any did.
test: sync torch
	@$(MAKE) --no-print-directory --keep-going $(CHECKS) pytest

lint: sync
	@$(MAKE) --no-print-directory --keep-going $(CHECKS)

check-ruff:
	$(RUN) ruff check .

check-format:
	$(RUN) ruff format --check .

check-mypy:
	$(RUN) mypy $(STRICT_PACKAGES)
	$(if $(OTHER_PACKAGES),$(RUN) mypy $(OTHER_PACKAGES))

check-imports:
	$(RUN) lint-imports

# One pytest worker per core (pytest-xdist): the suite runs on SQLite and on PostgreSQL, and
# most of its time is spent waiting on worker processes and servers, not on this CPU.
PYTEST_WORKERS ?= auto
pytest:
	$(RUN) pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

fmt: sync
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: sync
	@set -e; for script in bench/bench_*.py; do \
	  [ -e "$$script" ] || continue; \
	  echo "== $$script"; \
	  $(RUN) python "$$script"; \
	done
