# Set-up is idempotent: the virtual environment is rebuilt only when pyproject.toml or constraints.txt changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KENLM := 0.3.0
LMPLZ := $(BIN)/lmplz

.PHONY: demo test setup browser check-wheel clean

# every package pinned by constraints.txt; the build copies lid.176.ftz into pipeline/resources/
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# KenLM's estimator is not on PyPI as a program: built from the kenlm source archive (about a minute)
$(LMPLZ): $(STAMP) tools/build_kenlm.sh
	sh tools/build_kenlm.sh $(KENLM) $(VENV)

setup: $(STAMP) $(LMPLZ)

demo: setup
	$(BIN)/smallgiant demo --output build/demo

# the report test renders the demo's report.html in Debian's chromium
browser:
	sh tools/install_chromium.sh

test: setup browser
	$(BIN)/python -m pytest -q

# the built wheel in a fresh virtual environment outside the checkout runs the CC job (tools/check_wheel.sh)
check-wheel: $(STAMP)
	sh tools/check_wheel.sh $(BIN)/python

clean:
	rm -rf $(VENV) build .pytest_cache
