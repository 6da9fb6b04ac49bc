"""Integration tests: real images on a real Docker engine, against the deterministic test endpoint.

They fail (never skip) when no engine answers or an image is missing: run `make images` first
(`make test` does).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.endpoint.server import EndpointServer, serve

# testcontainers on these machines: no Ryuk (its image cannot be pulled), and /.dockerenv
# misleads its host detection.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
# Run records of the runs these tests make stay out of the user's ~/.local/state/evals.
os.environ.setdefault("EVALS_STATE_DIR", tempfile.mkdtemp(prefix="evals-state-"))

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "fixtures" / "data"
LM_EVAL_IMAGE = os.environ.get("EVALS_LM_EVAL_IMAGE", "evals/lm-eval:latest")
VLMEVALKIT_IMAGE = os.environ.get("EVALS_VLMEVALKIT_IMAGE", "evals/vlmevalkit:latest")


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """The Docker engine; its absence fails the test with the remedy."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        pytest.fail(f"integration tests need a Docker engine ({err}); start one with `make engine`")
    return client


@pytest.fixture(scope="session")
def lm_eval_image(engine: docker.DockerClient) -> str:
    """The lm-eval image, which must have been built."""
    try:
        engine.images.get(LM_EVAL_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{LM_EVAL_IMAGE} is not built; run `make images`")
    return LM_EVAL_IMAGE


@pytest.fixture(scope="session")
def vlmevalkit_image(engine: docker.DockerClient) -> str:
    """The vlmevalkit image, which must have been built."""
    try:
        engine.images.get(VLMEVALKIT_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{VLMEVALKIT_IMAGE} is not built; run `make images`")
    return VLMEVALKIT_IMAGE


@pytest.fixture
def endpoint() -> Iterator[EndpointServer]:
    """The deterministic OpenAI-compatible test endpoint on 127.0.0.1 (containers use host networking)."""
    with serve() as server:
        yield server
