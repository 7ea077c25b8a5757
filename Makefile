# `make run` and `make test` are the whole quickstart: each creates .venv and
# installs the project on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test check collect serve sources clean

# setuptools explains editable installs at length on every install; the explanation is for
# package authors, not for someone running the quickstart.
QUIET_SETUPTOOLS := PYTHONWARNINGS=ignore::UserWarning:setuptools.command.editable_wheel

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(QUIET_SETUPTOOLS) $(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/feedhub run

# Lint (ruff: pyflakes, style, import order, complexity) and type-check (mypy) the code; the
# test command runs it first, so a type error fails `make test` and CI like a failing test.
check: $(STAMP)
	$(VENV)/bin/ruff check aggregator feeds web
	$(VENV)/bin/mypy

test: check
	$(VENV)/bin/python -m pytest -q

collect: $(STAMP)
	$(VENV)/bin/feedhub collect

serve: $(STAMP)
	$(VENV)/bin/feedhub serve

sources: $(STAMP)
	$(VENV)/bin/feedhub sources

clean:
	rm -rf $(VENV) var/ *.egg-info .pytest_cache
