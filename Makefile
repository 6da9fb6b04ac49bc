# Every target sets up what it needs. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: help venv engine base images slurm test unit integration lint typecheck schema demo clean

help:
	@echo "make demo      show the embedded example: tasks and a dry run of VLMEvalKit OCRBench"
	@echo "make test      lint, type-check and run the test suite (what CI runs)"
	@echo "make images    start a Docker engine if none answers, build the base and harness images"
	@echo "make slurm     install and start a single-node Slurm cluster on this machine (root)"
	@echo "make unit      lint + unit tests (no Docker)"
	@echo "make lint      ruff + mypy --strict"
	@echo "make schema    regenerate the committed JSON Schemas from the models"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[host,dev]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check orchestrator tests images
	$(VENV)/bin/mypy

typecheck: lint

# A Docker engine (started the way these machines need: no bridge, host networking only).
engine:
	bash scripts/engine.sh

base: engine
	bash scripts/base-image.sh

images: venv engine
	bash scripts/build-image.sh lm-eval
	bash images/vlmevalkit/stage-wheels.sh
	bash scripts/build-image.sh vlmevalkit

# A single-node Slurm cluster (munged, slurmctld, slurmd; loopback only) for the Slurm executor's tests.
slurm:
	bash scripts/slurm.sh

unit: lint
	$(VENV)/bin/pytest tests/unit

integration: venv images slurm
	$(VENV)/bin/pytest tests/integration

test: lint images slurm
	$(VENV)/bin/pytest

schema: venv
	$(PY) -m orchestrator.schema.export

demo: venv
	$(PY) -m orchestrator.runtime --framework images/vlmevalkit/framework.yml ls
	$(PY) -m orchestrator.runtime --framework images/vlmevalkit/framework.yml run_eval \
		--eval_type ocrbench --model_id my_model --model_type vlm \
		--model_url http://localhost:8000/v1/chat/completions \
		--output_dir ./results/ocrbench --dry_run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
