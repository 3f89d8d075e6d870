# tenancy: `make synth` (render the dev stack offline), `make test` (fast suite) and `make e2e` (real engines).
PYTHON ?= python3
VENV   := venv
BIN    := $(VENV)/bin
STACK  ?= dev
OUT    ?= out/$(STACK)

.PHONY: synth validate test e2e e2e-engine crds engines-cache engines schema bench bench-engine clean clean-engines

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
	$(BIN)/python -m tenancy synth --stack $(STACK) --out $(OUT)

validate: $(VENV)/.runtime
	for stack in dev staging prod; do $(BIN)/python -m tenancy validate --stack $$stack || exit 1; done

# The fast suite validates custom resources against the upstream CRDs, fetched from the projects' Go modules.
test: $(VENV)/.dev crds
	$(BIN)/python -m pytest -q tests --ignore=tests/e2e

crds: engines-cache
	tools/engines/crds.sh

# .engines links to a per-user cache outside the clone (tools/engines/cache.sh), so a fresh clone reuses engines.
engines-cache:
	tools/engines/cache.sh

# Real engines, built from the Go module proxy / Maven Central into the engine cache (keyed by version).
engines: crds
	tools/engines/pulumi.sh
	tools/engines/kubernetes-provider.sh
	tools/engines/etcd.sh
	tools/engines/kube.sh
	tools/engines/eso.sh
	tools/engines/argocd.sh
	if [ -x tools/engines/cassandra.sh ]; then tools/engines/cassandra.sh; fi

e2e: $(VENV)/.dev engines
	$(BIN)/python -m pytest -q tests/e2e

# Only the Pulumi engine's module (`pulumi up`/preview/refresh/destroy of every stack through the real CLI).
e2e-engine: $(VENV)/.dev engines
	$(BIN)/python -m pytest -q -m pulumi_engine tests/e2e

schema: $(VENV)/.runtime
	$(BIN)/python -m tenancy schema

bench: $(VENV)/.dev
	$(BIN)/python bench/targets.py
	$(BIN)/python bench/synth_scale.py

# The real engine's wall time and peak memory for up/preview/destroy (needs the e2e engines).
bench-engine: $(VENV)/.dev engines
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis

clean-engines:
	rm -rf "$$(readlink .engines)" .engines
