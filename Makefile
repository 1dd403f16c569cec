# tuneforge — two commands: `make run` (install + serve) and `make test` (install + test).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: install browser run test test-fast lint format dashboard docs docs-build screenshots clean

install: $(STAMP)

# uv installs (pip would take minutes): torch first, from the wheel folder pip is configured with
# where there is one (a CPU build here), so the project's range never pulls the CUDA build
# (several GB); then the project with every other package pinned by constraints.txt.
UV := $(BIN)/uv
FIND_LINKS := $(or $(PIP_FIND_LINKS),$(shell pip config get global.find-links 2>/dev/null))
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==0.13.8
	$(UV) pip install -q --python $(BIN)/python $(if $(FIND_LINKS),--find-links $(FIND_LINKS)) $(TORCH)
	$(UV) pip install -q --python $(BIN)/python -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The browser tests drive Debian's Chromium through its ChromeDriver (no browser download).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

run: install
	$(BIN)/tuneforge serve

# The whole suite (what .ci/run calls): the fast tier on both cores (as test-fast), then every
# test that needs Ray, a server or PostgreSQL, one at a time (each trains on both cores
# itself), the slowest 25 named at the end.
test: install browser
	$(MAKE) test-fast
	$(BIN)/python -m pytest --durations=25 -m "slow or postgres or gpu"

# No Ray, no server, no PostgreSQL (tests/conftest.py makes any of them fail the test here):
# small in-process tests, on both cores (one torch thread each).
test-fast: install
	OMP_NUM_THREADS=1 TUNEFORGE_TEST_TIER=fast $(BIN)/python -m pytest -n 2 \
	  -m "not slow and not postgres and not gpu"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dashboard: install
	$(BIN)/tuneforge dashboard

# The reference documentation (mkdocs.yml, docs/): served on loopback, or built into site/.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:8001

docs-build: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build

# The docs' images (docs/img/*.png): the browser tests that open the report and a trial in
# optuna-dashboard also save what they see.
screenshots: install browser
	TUNEFORGE_SCREENSHOTS=docs/img $(BIN)/python -m pytest -q -p no:randomly \
	  tests/e2e/test_browser.py::test_dashboard_and_report_in_a_real_browser \
	  tests/e2e/test_dashboard.py

clean:
	rm -rf $(VENV) .tuneforge site .pytest_cache .mypy_cache .ruff_cache
