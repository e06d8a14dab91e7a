# The two commands: `make devnet` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: devnet test lint typecheck unit browser screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

devnet: $(STAMP)
	$(BIN)/carbonchain devnet --genesis genesis.json --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/check_structure.py

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite in three workers on two cores (pytest-xdist; a module's tests stay on one worker, so its fixtures
# start once): the multi-process tests spend much of their time waiting on view timeouts and the tutorial's
# deadlines, and a third worker fills that time (424 s with -n 2, 363 s with -n 3, 370 s with -n 4 on a
# quiet 2-core machine). Then the tests that assert a wall-clock bound, alone, so no other load breaks them.
unit: $(STAMP) browser
	$(BIN)/pytest -q -n 3 --dist loadscope -m "not serial"
	$(BIN)/pytest -q -m serial

# The dashboard's tests (tests/web) drive Debian's Chromium over the DevTools protocol: installed here once,
# only when missing, so CI has it. Without apt-get the browser tests skip, or fail when CI is set.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "no chromium and no apt-get: tests/web will skip (fail under CI)"; exit 0; }; \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The dashboard screenshots docs/DASHBOARD.md shows, taken by the browser tests.
screenshots: $(STAMP) browser
	CARBONCHAIN_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/web -q

# The virtualenv and the browser install at once (both wait mostly on the package registries), then the
# checks in order.
test:
	@$(MAKE) --no-print-directory -j2 $(STAMP) browser
	@$(MAKE) --no-print-directory lint typecheck unit

clean:
	rm -rf $(VENV) .devnet .mypy_cache .pytest_cache .ruff_cache .hypothesis
