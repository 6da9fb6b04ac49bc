"""The contract between the host and an evaluation image: paths, variables and labels."""

from __future__ import annotations

RESULTS_DIR = "/workspace/results"
"""Where the host mounts the output directory inside the container."""

RUN_CONFIG_PATH = "/workspace/run_config.yml"
"""Where the host mounts a --run_config file (read-only): for ``fetch_data``, which resolves in the container."""

RESOLVED_CONFIG_PATH = "/workspace/resolved_config.yml"
"""Where the container finds the run the host resolved (``run_eval --resolved_config``), read-only: the host's
``<output dir>/run_config.yml`` (a Kubernetes Job: a ConfigMap holding the same text)."""

DATA_DIR = "/data"
"""Where the host mounts pre-staged data (--data_dir, read-only): task YAMLs in tasks/, NLTK data, LMUData."""

CACHE_DIR = "/cache"
"""Where the host mounts its data cache (read-write, shared by all images and runs): the Hugging Face cache
(HF_HOME=/cache/huggingface), NLTK data (/cache/nltk_data) and whatever else a harness downloads."""

SECRET_STDIN_VAR = "EVALS_SECRET_STDIN"
"""Comma-separated NAMES of the variables whose values the runtime reads from its stdin, one line each, in that
order (so no value is ever in the container's config)."""

IMAGE_VAR = "EVALS_IMAGE"
"""The image's name (name:tag) as the host started it; the runtime records it in results.yml's provenance."""

IMAGE_DIGEST_VAR = "EVALS_IMAGE_DIGEST"
"""The image's content id (sha256:...), from the engine that starts the container (the container cannot know it)."""

IMAGE_REPO_DIGEST_VAR = "EVALS_IMAGE_REPO_DIGEST"
"""The image's registry digest (REPO@sha256:...), when it has one."""

HOST_VERSION_VAR = "EVALS_HOST_VERSION"
"""The version of the orchestrator on the host that started the container (with ``--resolved_config``, the runtime
refuses to run when it is not its own)."""

DEPLOYMENT_VAR = "EVALS_DEPLOYMENT"
"""The model server the run deployed, as JSON (:class:`orchestrator.schema.deployment.ServedDeployment`: names and
arguments, no secret values), for results.yml's provenance; unset when the run deployed none."""

SERVER_ROLE_LABEL = "evals.run.role"
"""The label that tells a run's model server (``server``) from its evaluation containers."""

HOST_CONTRACT_VAR = "EVALS_HOST_CONTRACT"
"""The contract fingerprint of the host that resolved the run (:func:`orchestrator.schema.contract.fingerprint`);
with ``--resolved_config``, the runtime refuses to run when it is not its own (an image built before a contract
change)."""

HUB_TOKEN_VAR = "HF_TOKEN"
"""The Hugging Face Hub token's variable: forwarded by name (on stdin) when it is set on the host."""

FORWARDED_ENV = ("HF_ENDPOINT", "HF_UPDATE_DOWNLOAD_COUNTS", "EVALS_LMUDATA_MIRROR", "NO_PROXY", "no_proxy")
"""Non-secret variables passed to the container with their values when set on the host: a Hub mirror, the
switch of the download counts ``datasets``/``evaluate`` otherwise report to s3.amazonaws.com on every load, a
mirror of VLMEvalKit's dataset files, and the hosts reached without the proxy."""

PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
"""A corporate proxy, for harnesses that download data: forwarded by name like a secret when set on the host
(a proxy URL may hold a user and password)."""

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Always added to NO_PROXY inside the container when a proxy is set: the adapter proxy listens on loopback."""

LABEL_HARNESS = "evals.harness"
LABEL_HARNESS_VERSION = "evals.harness.version"
LABEL_FRAMEWORK = "evals.framework"
"""The image's framework.yml, base64-encoded, so the host resolves runs without starting a container."""

RUN_LABEL_PREFIX = "evals.run"
"""Container labels set by the host: evals.run.id, evals.run.harness, evals.run.task."""
