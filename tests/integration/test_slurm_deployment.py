"""A Slurm run with a deployment on the real single-node Slurm: one job starts the reference endpoint image as the
model server (`deployment:` in the run config), scores it, stops it.

It fails (never skips) when no Slurm controller answers: run `make slurm`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from orchestrator.host import api
from orchestrator.host.cli.services import default_services
from orchestrator.host.records.results import read_results
from tests.integration.test_slurm import slurm

__all__ = ["slurm"]
EVALS = [sys.executable, "-m", "orchestrator.host.cli"]
REFERENCE_IMAGE = os.environ.get("EVALS_REFERENCE_ENDPOINT_IMAGE", "evals/reference-endpoint:latest")
MODEL = "SmolLM2-135M-Instruct"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_run(tmp_path: Path, *, port: int, lm_eval_image: str, **deployment: Any) -> str:
    """Plan an offline humaneval run (2 samples) whose run config deploys the reference server on ``port``, submit
    it."""
    run_config = tmp_path / "run_config.yml"
    run_config.write_text(yaml.safe_dump({"deployment": {"type": "reference", "image": REFERENCE_IMAGE, "port": port,
                                                         **deployment}}))
    planned = api.plan(
        eval_type=["lm-eval.humaneval_offline"], model_id=None, model_url=None,
        model_type="completions", api_key_name=None, output_dir=None, run_config=run_config, data_dir=None,
        offline=True,
        overrides="config.params.limit_samples=2,config.params.max_new_tokens=16,config.params.request_timeout=900",
        cache_dir=None, data=None, network="auto", executor="slurm", slurm_config=None, partition=None,
        account=None, time_limit="30", gres=None, gpus=None, container_runtime="docker",
        output_root=tmp_path / "shared", sbatch=None,
        choose=api.image_chooser(default_services().catalog, harness=None, image=lm_eval_image, replay=None))
    assert planned.record.deployment is not None and planned.record.deployment.deployment.port == port
    record = api.start(planned, executor_for=default_services().executor_for, check_endpoint=None,
                       announce=lambda: None, output=lambda _: None)
    return record.id


def status(env: dict[str, str], run_id: str) -> dict[str, Any]:
    result = subprocess.run([*EVALS, "status", run_id, "--json"], capture_output=True, text=True, env=env,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def wait_done(env: dict[str, str], run_id: str, timeout: float = 1500) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = status(env, run_id)
        if all(t["state"] not in ("pending", "running") for t in run["tasks"]):
            return run
        assert time.monotonic() < deadline, f"run {run_id} did not end in {timeout:.0f}s: {run['tasks']}"
        time.sleep(3)


def left(engine: docker.DockerClient, job: str) -> list[str]:
    return [str(c.name) for c in engine.containers.list(all=True, filters={"label": f"evals.slurm.job={job}"})]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("EVALS_STATE_DIR", str(tmp_path / "state"))
    return {**os.environ, "EVALS_STATE_DIR": str(tmp_path / "state")}


def test_the_job_serves_scores_and_stops_the_reference_server(slurm: None, lm_eval_image: str,
                                                              engine: docker.DockerClient, env: dict[str, str],
                                                              tmp_path: Path) -> None:
    engine.images.get(REFERENCE_IMAGE)
    port = free_port()
    run_id = start_run(tmp_path, port=port, lm_eval_image=lm_eval_image)
    run = wait_done(env, run_id)
    task = run["tasks"][0]
    assert task["state"] == "succeeded", (task, Path(task["log"]).read_text(errors="replace")[-3000:])
    score = read_results(Path(task["output_dir"]) / "results.yml").results.tasks["humaneval_offline"]
    assert score.metrics["pass@1__create_test"].scores["pass@1__create_test"].stats.count == 2
    script = Path(run["slurm"]["script"]).read_text()
    assert "--array" not in script and "#SBATCH --nodes=1" in script
    assert run["deployment"]["deployment"]["type"] == "reference"
    job_log = (tmp_path / "shared" / run_id / "logs" / "job.log").read_text()
    assert "evals: the server answered after" in job_log and "evals: stopping the server" in job_log, job_log
    assert "evals: task 0 exited with code 0" in job_log
    assert left(engine, task["job_id"]) == []  # neither the server's nor the task's container is left
    assert "succeeded" in subprocess.run([*EVALS, "status", run_id], capture_output=True, text=True, env=env,
                                         check=False).stdout
    with socket.socket() as sock:  # nothing listens on the server's port any more
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_server_that_never_answers_fails_the_tasks_with_its_log(slurm: None, lm_eval_image: str,
                                                                  engine: docker.DockerClient, env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    engine.images.get(REFERENCE_IMAGE)
    port = free_port()  # the health route does not exist: the server runs, but never answers it
    run_id = start_run(tmp_path, port=port, lm_eval_image=lm_eval_image,
                       health={"path": "/no-such-route", "start_timeout": 25})
    run = wait_done(env, run_id)
    task = run["tasks"][0]
    assert task["state"] == "failed" and task["exit_code"] == 3, task
    logs = subprocess.run([*EVALS, "logs", run_id], capture_output=True, text=True, env=env, check=False).stdout
    assert "did not answer http://127.0.0.1:" in logs and "/no-such-route within 25 s" in logs, logs
    assert "GET /no-such-route" in logs or "404" in logs, logs  # the server's own lines, its log tail
    assert left(engine, task["job_id"]) == []
    assert not Path(task["output_dir"], "results.yml").exists()
