# Every target sets up what it needs. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: help venv engine base demo-images images slurm chromium test unit integration lint typecheck schema docs demo bench clean

help:
	@echo "make demo      a real benchmark run on the embedded default model (reference endpoint + lm-eval)"
	@echo "make test      lint, type-check and run the test suite (what CI runs)"
	@echo "make images    start a Docker engine if none answers, build the base image, every harness image and the reference endpoint"
	@echo "make slurm     install and start a single-node Slurm cluster on this machine (root)"
	@echo "make chromium  install Debian's chromium when missing (the report's browser test; root)"
	@echo "make unit      lint + unit tests (no Docker)"
	@echo "make lint      ruff + mypy --strict"
	@echo "make schema    regenerate the committed JSON Schemas from the models"
	@echo "make docs      regenerate docs/cli.md from the command lines (a test checks it is current)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[host,export,dev]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check orchestrator tests images bench
	$(VENV)/bin/mypy

typecheck: lint

# A Docker engine (started the way these machines need: no bridge, host networking only).
engine:
	bash scripts/engine.sh

base: engine
	bash scripts/base-image.sh

# What `make demo` needs: the lm-eval image and the reference endpoint.
demo-images: venv engine
	bash scripts/build-image.sh lm-eval
	bash scripts/build-image.sh reference-endpoint

# Every harness folder of images/ (its prepare.sh first, if any) and the reference endpoint.
images: venv engine
	bash scripts/build-images.sh

# A single-node Slurm cluster (munged, slurmctld, slurmd; loopback only) for the Slurm executor's tests.
slurm:
	bash scripts/slurm.sh

# Debian's chromium, for the report's browser test and scripts/report-screenshot.sh (never `playwright install`).
chromium:
	bash scripts/chromium.sh

unit: lint
	$(VENV)/bin/pytest tests/unit

integration: venv images slurm chromium
	$(VENV)/bin/pytest tests/integration

test: lint images slurm chromium
	$(VENV)/bin/pytest

# The adapter proxy vs direct vs NeMo Evaluator's proxy (bench/README.md); writes bench/proxy/RESULTS.md.
bench: venv
	bash bench/proxy/run.sh

schema: venv
	$(PY) -m orchestrator.schema.export

docs: venv
	$(PY) -m orchestrator.host.cli_reference

# The embedded default end to end: SmolLM2-135M-Instruct behind the reference endpoint (compose), the demo
# suite (examples/demo-suite.yml): HumanEval and IFBench offline through the lm-eval image, OCRBench's sample
# through the vlmevalkit image where it is built (scripts/demo.sh; DEMO_LIMIT=N).
demo: venv demo-images
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
