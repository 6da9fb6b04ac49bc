"""`evals run --executor slurm` against a real single-node Slurm (scripts/slurm.sh), the real image and endpoint.

They fail (never skip) when no Slurm controller answers: run `make slurm` (`make test` does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from orchestrator import __version__
from orchestrator.host.records.results import read_results
from tests.endpoint.server import EndpointServer
from tests.hub.server import HubServer
from tests.integration.conftest import DATA
from tests.integration.expected import arc_scores, gsm8k_flexible
from tests.integration.gate import Gate
from tests.integration.test_online_data import hub, hub_root

EVALS = [sys.executable, "-m", "orchestrator.host.cli"]
KEY_NAME, KEY = "SLURM_TEST_KEY", "sk-slurm-secret-4242"
REMOTE_TOKENIZER = "config.params.extra.tokenizer_backend=remote,config.params.extra.tokenized_requests=true"
__all__ = ["hub", "hub_root"]  # fixtures shared with test_online_data.py


@pytest.fixture(scope="session")
def slurm() -> None:
    """A Slurm controller with an idle node; its absence fails the test with the remedy."""
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20, check=False)
    except FileNotFoundError:
        pytest.fail("Slurm is not installed: run `make slurm` (scripts/slurm.sh) first")
    if "is UP" not in ping.stdout:
        pytest.fail(f"no Slurm controller answers ({ping.stdout.strip()} {ping.stderr.strip()}): run `make slurm`")


@pytest.fixture(scope="session")
def cluster(slurm: None, lm_eval_image: str) -> str:
    """Slurm is up and the lm-eval image is built (its name)."""
    return lm_eval_image


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private state dir and the API key in the submitting environment."""
    return {**os.environ, "EVALS_STATE_DIR": str(tmp_path / "state"), KEY_NAME: KEY}


def evals(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVALS, *args], capture_output=True, text=True, check=False, timeout=timeout, env=env)


def run_args(url: str, tasks: list[str], root: Path, *, model_type: str = "chat", overrides: str = "",
             data: bool = True) -> list[str]:
    route = "chat/completions" if model_type == "chat" else "completions"
    args = ["run", "--executor", "slurm", "--model_id", "test-model", "--model_url", f"{url}/v1/{route}",
            "--model_type", model_type, "--api_key_name", KEY_NAME, "--output_root", str(root)]
    for task in tasks:
        args += ["--eval_type", task]
    if data:
        args += ["--data_dir", str(DATA)]
    return [*args, "--overrides", overrides] if overrides else args


def record(env: dict[str, str], run_id: str) -> dict[str, Any]:
    result = evals(env, "status", run_id, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(1)


def containers(engine: docker.DockerClient, run_id: str) -> list[str]:
    return [str(c.name) for c in engine.containers.list(all=True, filters={"label": f"evals.run.id={run_id}"})]


def answered(endpoint: EndpointServer) -> list[str]:
    """The user message of every model call the endpoint answered, in order."""
    bodies = [r.body for r in endpoint.requests if r.kind == "inference" and isinstance(r.body, dict)]
    return [json.dumps(body["messages"][-1]) for body in bodies]


def test_single_task_job_scores_exactly(cluster: str, engine: docker.DockerClient,
                                        endpoint: EndpointServer, env: dict[str, str], tmp_path: Path) -> None:
    result = evals(env, *run_args(endpoint.url, ["lm-eval.gsm8k_sample"], tmp_path / "shared",
                                  overrides="config.params.limit_samples=3"), "--wait")
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"{gsm8k_flexible(3):.4f}" in result.stdout and "succeeded" in result.stdout
    run = json.loads(evals(env, "status", "--json").stdout)  # the latest run, from a new process
    task = run["tasks"][0]
    assert run["executor"] == "slurm" and task["state"] == "succeeded" and task["job_id"].isdigit()
    results = read_results(Path(task["output_dir"]) / "results.yml")
    flexible = results.results.tasks["gsm8k_sample"].metrics["exact_match__flexible-extract"]
    assert flexible.scores["exact_match__flexible-extract"].value == pytest.approx(gsm8k_flexible(3))
    # the job ran the resolved config the host wrote, and told the container its image, as a local run does
    assert task["container"]["args"] == ["run_eval", "--resolved_config", "/workspace/resolved_config.yml"]
    assert Path(task["output_dir"], "run_config.yml").read_text() == task["resolved_config"]
    provenance = results.provenance
    assert (provenance.image, provenance.image_digest, provenance.host_version) == (
        cluster, engine.images.get(cluster).id, __version__)
    assert {r.header("Authorization") for r in endpoint.requests if r.kind == "inference"} == {f"Bearer {KEY}"}
    assert len(answered(endpoint)) == 3
    # The key is in no file evals wrote: script, record, logs, results.
    script = Path(run["slurm"]["script"]).read_text()
    assert f"--export=PATH,HOME,USER,LANG,TZ,DOCKER_HOST,{KEY_NAME}" in script and KEY not in script
    for path in [*(tmp_path / "state").rglob("*"), *(tmp_path / "shared").rglob("*")]:
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    assert Path(task["output_dir"], "results.yml").stat().st_uid == os.getuid()
    logs = evals(env, "logs", run["id"])
    assert f"job {task['job_id']} on" in logs.stdout and "exited with code 0" in logs.stdout
    assert containers(engine, run["id"]) == []


def test_two_tasks_run_as_one_job_array(cluster: str, endpoint: EndpointServer,
                                        env: dict[str, str], tmp_path: Path) -> None:
    result = evals(env, *run_args(endpoint.url, ["lm-eval.gsm8k_sample", "lm-eval.arc_challenge_sample"],
                                  tmp_path / "shared", model_type="completions",
                                  overrides=f"config.params.limit_samples=2,{REMOTE_TOKENIZER}"), "--wait")
    assert result.returncode == 0, result.stderr + result.stdout
    run = json.loads(evals(env, "status", "--json").stdout)
    jobs = [task["job_id"] for task in run["tasks"]]
    array = jobs[0].split("_")[0]
    assert jobs == [f"{array}_0", f"{array}_1"] and len(run["slurm"]["submissions"]) == 1
    assert "#SBATCH --array=0-1" in Path(run["slurm"]["script"]).read_text()
    gsm8k = read_results(Path(run["tasks"][0]["output_dir"]) / "results.yml").results.tasks["gsm8k_sample"]
    arc = read_results(Path(run["tasks"][1]["output_dir"]) / "results.yml").results.tasks["arc_challenge_sample"]
    assert gsm8k.metrics["exact_match__flexible-extract"].scores["exact_match__flexible-extract"].value == \
        pytest.approx(gsm8k_flexible(2))
    assert (arc.metrics["acc"].scores["acc"].value, arc.metrics["acc_norm"].scores["acc_norm"].value) == \
        pytest.approx(arc_scores(2))
    assert "gsm8k_sample" in result.stdout and "arc_challenge_sample" in result.stdout


def test_cancel_stops_the_job_and_leaves_no_container(cluster: str, engine: docker.DockerClient,
                                                      endpoint: EndpointServer, env: dict[str, str],
                                                      tmp_path: Path) -> None:
    with Gate(endpoint.url, answer_first=0) as gate:
        started = evals(env, *run_args(gate.url, ["lm-eval.gsm8k_sample"], tmp_path / "shared",
                                       overrides="config.params.limit_samples=2,config.params.request_timeout=600"))
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.strip().splitlines()[-1]
        wait_until(lambda: gate.held > 0, timeout=240, what="the job's first model call")
        running = engine.containers.list(filters={"label": f"evals.run.id={run_id}"})
        assert running, "the job's container should be running"
        inspected = json.dumps(running[0].attrs)
        assert f"EVALS_SECRET_STDIN={KEY_NAME}" in inspected and KEY not in inspected
        assert running[0].labels["evals.slurm.job"].isdigit()
        cancelled = evals(env, "cancel", run_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert containers(engine, run_id) == []
        run = record(env, run_id)
        assert run["tasks"][0]["state"] == "cancelled"
        job = subprocess.run(["scontrol", "show", "job", "-o", run["tasks"][0]["job_id"]], capture_output=True,
                             text=True, check=False).stdout
        wait_until(lambda: "JobState=CANCELLED" in subprocess.run(
            ["scontrol", "show", "job", "-o", run["tasks"][0]["job_id"]], capture_output=True, text=True,
            check=False).stdout, timeout=30, what=f"Slurm to record the cancel ({job.strip()[:200]})")
        time.sleep(2)
        assert containers(engine, run_id) == []
    assert answered(endpoint) == []


def test_failing_task_reports_the_log_tail(cluster: str, endpoint: EndpointServer,
                                           env: dict[str, str], tmp_path: Path) -> None:
    # gsm8k_sample's task YAML is in the data dir, which this run does not mount: the image's data step finds
    # that lm-eval has no such task before any request (bad input, exit 2) and says so in one line.
    result = evals(env, *run_args(endpoint.url, ["lm-eval.gsm8k_sample"], tmp_path / "shared", data=False,
                                  overrides="config.params.limit_samples=2"), "--wait")
    assert result.returncode == 2, result.stderr
    assert "lm-eval has no task gsm8k_sample" in result.stderr
    assert "task 0 (lm-eval.gsm8k_sample) failed" in result.stderr
    assert "lines of" in result.stderr and "  | " in result.stderr
    assert "gsm8k_sample" in result.stderr.split("lines of", 1)[1]
    assert "evals resubmit" in result.stderr
    run = json.loads(evals(env, "status", "--json").stdout)
    assert run["tasks"][0]["state"] == "failed" and run["tasks"][0]["exit_code"] == result.returncode
    status = evals(env, "status", run["id"])
    assert "failed" in status.stdout and "  | " in status.stderr
    assert answered(endpoint) == []


def test_time_limit_kill_then_resume_asks_only_unanswered(cluster: str, engine: docker.DockerClient,
                                                          endpoint: EndpointServer, env: dict[str, str],
                                                          tmp_path: Path) -> None:
    limit = 5
    with Gate(endpoint.url, answer_first=2) as gate:
        started = evals(env, *run_args(
            gate.url, ["lm-eval.gsm8k_sample"], tmp_path / "shared",
            overrides=f"config.params.limit_samples={limit},config.params.parallelism=1,"
                      "config.params.request_timeout=600"), "--time", "1")
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.strip().splitlines()[-1]
        wait_until(lambda: record(env, run_id)["tasks"][0]["state"] == "timeout", timeout=240,
                   what="the job to reach its 1-minute time limit")
        first = answered(endpoint)
        assert len(first) == 2 and gate.held == 1
        wait_until(lambda: containers(engine, run_id) == [], timeout=20, what="the container to be removed")
        gate.open(drop_held=True)
        resumed = evals(env, "resubmit", run_id, "--wait")
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    second = answered(endpoint)[len(first):]
    assert len(second) == limit - len(first)
    assert not set(first) & set(second), "a request answered before the kill was asked again"
    run = record(env, run_id)
    task = run["tasks"][0]
    assert task["state"] == "succeeded" and task["attempts"] == 2 and len(run["slurm"]["submissions"]) == 2
    assert f"{gsm8k_flexible(limit):.4f}" in resumed.stdout
    log = Path(task["log"]).read_text()
    assert log.count("evals: run") == 2 and "exited with code 0" in log


def test_epilog_removes_containers_a_job_left_behind(cluster: str, engine: docker.DockerClient,
                                                     tmp_path: Path) -> None:
    # A job that starts a labelled container and ends at once: only the Epilog can remove it.
    script = tmp_path / "leave.sh"
    script.write_text(f"#!/bin/bash\ndocker run -d --rm --network host --label evals.slurm.job=$SLURM_JOB_ID "
                      f"--label evals.test=epilog --entrypoint sleep {cluster} 300\n")
    submitted = subprocess.run(["sbatch", "--parsable", "--wait", f"--output={tmp_path}/leave.log", str(script)],
                               capture_output=True, text=True, check=False, timeout=120)
    assert submitted.returncode == 0, submitted.stderr + (tmp_path / "leave.log").read_text()
    job = submitted.stdout.strip()
    wait_until(lambda: engine.containers.list(all=True, filters={"label": f"evals.slurm.job={job}"}) == [],
               timeout=30, what=f"the Epilog to remove job {job}'s container")


def test_a_prefetched_directory_runs_offline_on_slurm(cluster: str, hub: HubServer, endpoint: EndpointServer,
                                                      env: dict[str, str], tmp_path: Path) -> None:
    """Prefetched on a "connected" machine (the stand-in Hub), then the Hub is gone: the Slurm job runs gsm8k
    from the directory alone (`--data DIR`, offline) and scores exactly."""
    online = {**env, "HF_ENDPOINT": hub.url, "HF_UPDATE_DOWNLOAD_COUNTS": "0", "HF_TOKEN": "",
              "EVALS_CACHE_DIR": str(tmp_path / "cache")}
    carry = tmp_path / "shared" / "evals-data"
    result = evals(online, "prefetch", "--eval_type", "gsm8k", "--to", str(carry))
    assert result.returncode == 0, result.stderr + result.stdout
    hub.shutdown()
    offline = {k: v for k, v in env.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
    result = evals(offline, *run_args(endpoint.url, ["lm-eval.gsm8k"], tmp_path / "shared", data=False,
                                      overrides="config.params.limit_samples=3"), "--data", str(carry), "--wait")
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"{gsm8k_flexible(3):.4f}" in result.stdout and "succeeded" in result.stdout
    run = json.loads(evals(offline, "status", "--json").stdout)
    assert yaml.safe_load(run["tasks"][0]["resolved_config"])["config"]["offline"] is True  # what the job ran
    assert len(answered(endpoint)) == 3
    assert evals(offline, "prefetch", "--verify", str(carry)).returncode == 0


def test_max_parallel_throttles_the_job_array(cluster: str, endpoint: EndpointServer, env: dict[str, str],
                                              tmp_path: Path) -> None:
    """--max_parallel 1: sbatch --array=0-1%1; Slurm holds the second element (JobArrayTaskLimit) while one runs."""
    with Gate(endpoint.url, answer_first=0) as gate:
        result = evals(env, *run_args(gate.url, ["lm-eval.gsm8k_sample", "lm-eval.arc_challenge_sample"],
                                      tmp_path / "shared", model_type="completions",
                                      overrides=f"config.params.limit_samples=2,{REMOTE_TOKENIZER}"),
                       "--image", cluster, "--max_parallel", "1")
        assert result.returncode == 0, result.stderr
        run_id = result.stdout.strip().splitlines()[-1]
        assert "(array 0-1%1)" in result.stderr + result.stdout
        run = record(env, run_id)
        assert "#SBATCH --array=0-1%1" in Path(run["slurm"]["script"]).read_text() and run["max_parallel"] == 1
        array = run["tasks"][0]["job_id"].split("_")[0]
        deadline, held = time.monotonic() + 120, False
        while not held and time.monotonic() < deadline:
            shown = subprocess.run(["scontrol", "show", "job", "-o", array], capture_output=True, text=True,
                                   check=False).stdout
            assert "ArrayTaskThrottle=1" in shown, shown
            assert shown.count("JobState=RUNNING") <= 1, shown
            held = "JobState=RUNNING" in shown and "JobArrayTaskLimit" in shown
            time.sleep(1)
        assert held, "Slurm never ran one element while holding the other by the throttle"
        assert evals(env, "cancel", run_id).returncode == 0
