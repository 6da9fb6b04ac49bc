"""The conformance suite: what every harness image must do, checked on every harness folder of images/
(orchestrator/runtime/harnesses.py) against its image and its conformance.yml (docs/adding-a-harness.md).

The image of harness H is ``evals/H:latest`` under ``$EVALS_REGISTRY`` when set (as `evals` picks it); one that is
not built is skipped, naming the command that builds it (`make images` builds them all; `make test` runs it).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.host.catalog import image_for
from orchestrator.runtime.harnesses import entry_point, harness_dirs
from orchestrator.schema.conformance import ConformanceSpec, load_conformance
from orchestrator.schema.container import DATA_DIR, LABEL_FRAMEWORK, LABEL_HARNESS, RESULTS_DIR
from orchestrator.schema.contract import SCHEMA_DIR
from orchestrator.schema.export import render_schema
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.requests import REQUESTS_FILE, read_request_records
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
HARNESSES = harness_dirs()
IDS = [folder.name for folder in HARNESSES]
KEY_VAR = "EVALS_CONFORMANCE_KEY"
"""The API key's variable: every run names it (--api_key_name); a judge a conformance.yml configures may too."""
ENDPOINT_PORT = 8000
"""The test endpoint's port on the container's own loopback (--network none: no other network, no clash)."""
ENDPOINT_HOME = "/opt/conformance"
HEALTH_CHECK = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{ENDPOINT_PORT}/health')"
LABEL_TASKS = "evals.tasks"


@dataclass(frozen=True)
class Harness:
    """One harness folder, its definition and conformance.yml, and its built image."""

    folder: Path
    framework: FrameworkDefinition
    spec: ConformanceSpec
    image: str
    attrs: dict[str, Any]

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def program(self) -> str:
        return entry_point(self.name)


@functools.cache
def _inspect(image: str) -> dict[str, Any] | None:
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        if "No such image" not in found.stderr and "No such object" not in found.stderr:
            pytest.fail(f"docker image inspect {image}: {found.stderr.strip()} (is the engine up? `make engine`)")
        return None
    attrs: dict[str, Any] = json.loads(found.stdout)[0]
    return attrs


@pytest.fixture(params=HARNESSES, ids=IDS)
def harness(request: pytest.FixtureRequest) -> Harness:
    """The harness folder's built image; not built: skipped with the command that builds it."""
    folder: Path = request.param
    image = image_for(folder.name)
    attrs = _inspect(image)
    if attrs is None:
        registry = f"EVALS_REGISTRY={os.environ['EVALS_REGISTRY']} " if os.environ.get("EVALS_REGISTRY") else ""
        prepare = f"bash images/{folder.name}/prepare.sh && " if (folder / "prepare.sh").is_file() else ""
        pytest.skip(f"{image} is not built: {prepare}{registry}bash scripts/build-image.sh {folder.name}")
    return Harness(folder, load_model(FrameworkDefinition, folder / "framework.yml"), load_conformance(folder),
                   image, attrs)


def docker(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)


def listed_tasks(output: str, harness: str) -> list[str]:
    """The tasks of ``core_evals_<h> ls``: ``* <task> (in <harness>)`` lines after ``Available tasks:``."""
    lines = output.splitlines()
    assert lines and lines[0] == "Available tasks:", output[-2000:]
    suffix = f" (in {harness})"
    assert all(line.startswith("* ") and line.endswith(suffix) for line in lines[1:]), output[-2000:]
    return [line[2:-len(suffix)] for line in lines[1:]]


def test_ls_both_forms_list_exactly_the_tasks(harness: Harness) -> None:
    for args in (["ls"], [harness.program, "ls"]):  # the entry point's own form, and the documented one
        done = docker("run", "--rm", "--network", "none", harness.image, *args)
        assert done.returncode == 0, done.stderr[-2000:]
        assert listed_tasks(done.stdout, harness.name) == harness.framework.task_names, args


def test_labels_carry_this_folders_framework_and_its_tasks(harness: Harness) -> None:
    labels = harness.attrs["Config"]["Labels"] or {}
    assert labels[LABEL_HARNESS] == harness.name
    assert json.loads(labels[LABEL_TASKS]) == harness.framework.task_names
    assert base64.b64decode(labels[LABEL_FRAMEWORK]) == (harness.folder / "framework.yml").read_bytes(), (
        f"{harness.image} was built from another framework.yml: rebuild it")


def test_runs_as_non_root_within_its_size_budget(harness: Harness) -> None:
    user = harness.attrs["Config"]["User"]
    assert user and user.split(":")[0] not in ("0", "root"), f"Config.User is {user!r}"
    done = docker("run", "--rm", "--network", "none", "--entrypoint", "id", harness.image, "-u")
    assert done.returncode == 0 and done.stdout.strip() != "0", done.stdout + done.stderr
    size_mb = harness.attrs["Size"] / 1e6
    assert size_mb <= harness.spec.max_image_mb, f"{size_mb:.0f} MB > the budget of {harness.spec.max_image_mb} MB"


def test_every_task_dry_runs(harness: Harness, tmp_path: Path) -> None:
    """One container for all tasks: each task's --dry_run, with conformance.yml's overrides, exits 0."""
    run_config = write_run_config(harness.spec, tmp_path)
    triples = " ".join(shlex.quote(f"{task.type}={kind}={route(kind)}") for task in harness.framework.evaluations
                       for kind in [model_type(harness, task.endpoint_types)])
    script = f"""
for triple in {triples}; do
    task=${{triple%%=*}}; rest=${{triple#*=}}; type=${{rest%%=*}}; path=${{rest#*=}}
    if ! {harness.program} run_eval --eval_type "$task" --model_type "$type" --model_id m \\
            --model_url "http://127.0.0.1:9/v1/$path" --output_dir "/tmp/dry/$task" \\
            --api_key_name {KEY_VAR} --run_config /opt/conformance/run.yml --dry_run > /tmp/out 2> /tmp/err; then
        echo "FAILED $task ($type): $(tail -3 /tmp/err)"
    fi
done
echo done
"""
    done = docker("run", "--rm", "--network", "none", "-e", f"{KEY_VAR}=not-a-secret",
                  "-v", f"{run_config}:/opt/conformance/run.yml:ro", "--entrypoint", "/bin/sh", harness.image,
                  "-c", script)
    assert done.returncode == 0 and done.stdout.strip().endswith("done"), done.stdout + done.stderr[-2000:]
    assert "FAILED" not in done.stdout, done.stdout


def route(model_type: str) -> str:
    """The endpoint path a model type calls."""
    return "completions" if model_type == "completions" else "chat/completions"


def model_type(harness: Harness, supported: Sequence[str]) -> str:
    """conformance.yml's model type when the task takes it, else the task's first."""
    return harness.spec.model_type if harness.spec.model_type in supported or not supported else supported[0]


def write_run_config(spec: ConformanceSpec, where: Path) -> Path:
    """conformance.yml's dotted overrides as a run-config layer (values may be mappings)."""
    doc: dict[str, Any] = {}
    for dotted, value in spec.overrides.items():
        *parents, last = dotted.split(".")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = where / "run.yml"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o644)
    return path


@dataclass(frozen=True)
class OfflineRun:
    code: int
    logs: str
    inspect: str
    output_dir: Path
    requests: list[dict[str, Any]]
    key: str


@pytest.fixture
def offline_run(harness: Harness, tmp_path: Path) -> Iterator[OfflineRun]:
    """conformance.yml's task, run with --network none against the test endpoint started inside the container by
    the base image's Python (/usr/local/bin/python3 of python:3.11-slim, /usr/bin/python3 of the Debian base
    scripts/base-image.sh builds where that cannot be pulled); the API key handed over stdin by name (as the host
    does), never in the container's environment."""
    spec, key = harness.spec, f"sk-conformance-{secrets.token_hex(12)}"
    output_dir, record_dir = tmp_path / "out", tmp_path / "record"
    output_dir.mkdir()
    record_dir.mkdir()
    run_config = write_run_config(spec, tmp_path)
    mounts = ["-v", f"{output_dir}:{RESULTS_DIR}", "-v", f"{record_dir}:/record",
              "-v", f"{run_config}:{ENDPOINT_HOME}/run.yml:ro",
              "-v", f"{REPO / 'tests' / '__init__.py'}:{ENDPOINT_HOME}/tests/__init__.py:ro",
              "-v", f"{REPO / 'tests' / 'endpoint'}:{ENDPOINT_HOME}/tests/endpoint:ro"]
    files = spec.files(harness.folder)
    if "data_dir" in files:
        mounts += ["-v", f"{files['data_dir'].resolve()}:{DATA_DIR}:ro"]
    script_flag = ""
    if "script" in files:
        mounts += ["-v", f"{files['script'].resolve()}:{ENDPOINT_HOME}/script.json:ro"]
        script_flag = f"--script {ENDPOINT_HOME}/script.json"
    url = f"http://127.0.0.1:{ENDPOINT_PORT}/v1/{route(spec.model_type)}"
    script = f"""
cd {ENDPOINT_HOME}
for py in /usr/local/bin/python3 /usr/bin/python3; do [ -x "$py" ] && break; done  # the base image's Python
"$py" -m tests.endpoint --port {ENDPOINT_PORT} --quiet --record /record/requests.jsonl \
    {script_flag} < /dev/null > /record/endpoint.log 2>&1 &
for _ in $(seq 100); do
    "$py" -c {shlex.quote(HEALTH_CHECK)} < /dev/null 2> /dev/null && break
    sleep 0.1
done
cd /workspace
{harness.program} run_eval --eval_type {spec.task} --model_id test-model --model_url {url} \
    --model_type {spec.model_type} --api_key_name {KEY_VAR} --output_dir {RESULTS_DIR} --offline \
    --run_config {ENDPOINT_HOME}/run.yml --overrides config.params.limit_samples={spec.limit_samples}
"""
    name = f"conformance-{harness.name}-{secrets.token_hex(4)}"
    try:
        done = docker("run", "-i", "--name", name, "--network", "none", "-u", f"{os.getuid()}:{os.getgid()}",
                      "-e", f"EVALS_SECRET_STDIN={KEY_VAR}", *mounts, "--entrypoint", "/bin/sh", harness.image,
                      "-c", script, stdin=key + "\n", timeout=600)
        inspect = docker("inspect", name).stdout
        requests = [json.loads(line) for line in (record_dir / "requests.jsonl").read_text().splitlines()
                    ] if (record_dir / "requests.jsonl").exists() else []
        yield OfflineRun(done.returncode, done.stdout + done.stderr, inspect, output_dir, requests, key)
    finally:
        docker("rm", "-f", name)


def test_offline_run_validates_and_leaks_no_key(harness: Harness, offline_run: OfflineRun) -> None:
    run = offline_run
    assert run.code == 0, run.logs[-4000:]
    inference = [r for r in run.requests if r["kind"] == "inference"]
    assert inference, "the harness sent no request to the endpoint"
    assert {_header(r, "authorization") for r in inference} == {f"Bearer {run.key}"}
    results = ResultsFile.model_validate(yaml.safe_load((run.output_dir / "results.yml").read_text()))
    assert results.config.type == harness.spec.task and results.results.tasks
    assert results.provenance.exit_code == 0 and results.provenance.harness == harness.name
    if harness.spec.samples:
        lines = (run.output_dir / SAMPLES_FILE).read_text().splitlines()
        records = [SampleRecord.model_validate_json(line) for line in lines]
        assert records and {r.task for r in records} <= set(results.results.tasks) | set(results.results.groups)
    else:  # a profiler: per-request records instead of samples
        assert not (run.output_dir / SAMPLES_FILE).exists()
        request_records = read_request_records(run.output_dir / "logs" / REQUESTS_FILE)
        assert sum(len(records) for records in request_records.values()) >= len(inference)
    for model, schema in ((ResultsFile, "results.schema.json"), (SampleRecord, "samples.schema.json")):
        assert render_schema(model) == (SCHEMA_DIR / schema).read_text()  # the committed schemas are the models'
    leaks = [str(path.relative_to(run.output_dir)) for path in run.output_dir.rglob("*")
             if path.is_file() and run.key.encode() in path.read_bytes()]
    assert leaks == [], f"the API key is in {leaks}"
    assert run.key not in run.logs, "the API key is in the container's output"
    assert run.key not in run.inspect, "the API key is in `docker inspect`"


def _header(record: dict[str, Any], name: str) -> str | None:
    return next((value for key, value in record["headers"].items() if key.lower() == name), None)
