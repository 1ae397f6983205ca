# The two commands a newcomer needs: `make run` and `make test`.
# Everything else a fresh machine needs is installed by these targets and by `telemetry stack up`.

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

HELM := $(HOME)/.cache/helm/bin/helm

.PHONY: run test fuzz lint stack-up stack-down clean-venv

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## make run: start the local stack, the pipeline and simulated devices, with a live view
run: $(BIN)/.installed
	$(BIN)/telemetry run $(ARGS)

# helm (for the chart tests) built from its Go module, cached outside the checkout
$(HELM):
	bash helm/install-helm.sh

## make test: install, bring the stack up, ruff + mypy + pytest, bring the stack down
test: $(BIN)/.installed $(HELM)
	@set -e; \
	$(BIN)/telemetry stack up; \
	trap '$(BIN)/telemetry stack down' EXIT; \
	$(BIN)/ruff check .; \
	$(BIN)/mypy; \
	$(BIN)/pytest $(PYTEST_ARGS)

## make fuzz: a million hostile MQTT messages through ingest, the processors and the line
## encoder, checked against InfluxDB's parser (no stack needed); FUZZ_ARGS="--inputs N ..."
fuzz: $(BIN)/.installed
	$(BIN)/python -m tests.fuzz.run $(FUZZ_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

stack-up: $(BIN)/.installed
	$(BIN)/telemetry stack up

stack-down: $(BIN)/.installed
	$(BIN)/telemetry stack down

clean-venv:
	rm -rf $(VENV)
