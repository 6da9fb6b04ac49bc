"""The contract between the host and an evaluation image: paths, variables and labels."""

from __future__ import annotations

RESULTS_DIR = "/workspace/results"
"""Where the host mounts the output directory inside the container."""

RUN_CONFIG_PATH = "/workspace/run_config.yml"
"""Where the host mounts a --run_config file (read-only)."""

DATA_DIR = "/data"
"""Where the host mounts pre-staged data (--data_dir, read-only): task YAMLs in tasks/, NLTK data, LMUData."""

SECRET_STDIN_VAR = "EVALS_SECRET_STDIN"
"""Names the variable whose value the runtime reads from its stdin (so the value is never in the container's config)."""

LABEL_HARNESS = "evals.harness"
LABEL_HARNESS_VERSION = "evals.harness.version"
LABEL_TASKS = "evals.tasks"
LABEL_FRAMEWORK = "evals.framework"
"""The image's framework.yml, base64-encoded, so the host resolves runs without starting a container."""

RUN_LABEL_PREFIX = "evals.run"
"""Container labels set by the host: evals.run.id, evals.run.harness, evals.run.task."""
