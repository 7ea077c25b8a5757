# `make run` and `make test` are the whole quickstart: each creates .venv and
# installs the project on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test check browser collect serve sources clean bench-tools

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

# The console's browser tests drive Debian's chromium with Playwright and check each page with
# axe-core from npm: both are installed here (chromium with apt-get, when running as root).
BROWSER_STAMP := tests/browser/node_modules/.installed-stamp

$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	touch $(BROWSER_STAMP)

browser: $(BROWSER_STAMP)
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else echo "make: the console's browser tests need Debian's chromium: sudo apt-get install chromium"; fi; }

test: check browser
	$(VENV)/bin/python -m pytest -q

# What the benchmarks drive and compare against: wrk (the HTTP load generator of bench/serve) and
# nginx (its static-file baseline), from Debian's packages.
bench-tools: $(STAMP)
	@command -v wrk >/dev/null && command -v nginx >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk nginx-light >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk nginx-light >/dev/null; }; \
	  else echo "make: the benchmarks need wrk and nginx: sudo apt-get install wrk nginx-light"; exit 1; fi; }

collect: $(STAMP)
	$(VENV)/bin/feedhub collect

serve: $(STAMP)
	$(VENV)/bin/feedhub serve

sources: $(STAMP)
	$(VENV)/bin/feedhub sources

clean:
	rm -rf $(VENV) var/ *.egg-info .pytest_cache tests/browser/node_modules
