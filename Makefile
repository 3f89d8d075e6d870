# tenancy: the two set-up commands are `make synth` (render the dev stack offline) and `make test`.
PYTHON ?= python3
VENV   := venv
BIN    := $(VENV)/bin
STACK  ?= dev
OUT    ?= out/$(STACK)

.PHONY: synth validate test schema bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps record what was installed, so repeated runs skip pip until a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt generator/requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

synth: $(VENV)/.runtime
	$(BIN)/python -m components synth --stack $(STACK) --out $(OUT)

validate: $(VENV)/.runtime
	for stack in dev staging prod; do $(BIN)/python -m components validate --stack $$stack || exit 1; done

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

schema: $(VENV)/.runtime
	$(BIN)/python -m components schema

bench: $(VENV)/.dev
	$(BIN)/python bench/targets.py
	$(BIN)/python bench/synth_scale.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
