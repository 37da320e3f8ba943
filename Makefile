# ttfb-lab: `make demo` runs the lab, `make test` passes the tests. Both install first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the decision folds compiled by mypyc (ttfb/native.py), again whenever one of
# their sources changes; where they cannot be, the manifest says why and the
# folds run as Python
NATIVE := build/native/manifest.json
NATIVE_SRC := $(shell test -x $(PY) && $(PY) -m ttfb.native sources 2>/dev/null)

.PHONY: install native demo up test test-fast lint bench clean

install: $(STAMP) $(NATIVE)

$(NATIVE): $(STAMP) $(NATIVE_SRC)
	$(PY) -m ttfb.native build

native: $(STAMP)
	$(PY) -m ttfb.native build

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch from local disk, before the project, so torch>= is already met
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/ttfb up --demo

up: demo

lint: install
	$(VENV)/bin/ruff check ttfb producers agents streams dashboard tests bench
	$(VENV)/bin/mypy ttfb producers agents streams dashboard
	$(VENV)/bin/mypy --strict ttfb

test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

test-fast: install
	$(PY) -m pytest -q tests/unit

bench: install
	$(PY) bench/sdk.py

clean:
	rm -rf $(VENV) build/native .ttfb .mypy_cache .ruff_cache .pytest_cache
