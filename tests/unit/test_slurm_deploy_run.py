"""The deployment batch scripts EXECUTED against stand-ins (tests/fixtures/slurm/standins): no container, GPU or Slurm.

The stand-in runtime starts the server image's command as a process that answers the health route (or never does,
or dies); a task's stand-in container asks that route. What runs for real is the script's own logic: starting the
server on every node, waiting for it, running the tasks, recording their exit codes and stopping the server on every
way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from orchestrator.host.backends.slurm.script import render_batch_script
from orchestrator.schema.slurm import SlurmConfig
from tests.unit.deploy_cases import deployment
from tests.unit.records import RUN_ID, task

STANDINS = Path(__file__).resolve().parents[1] / "fixtures" / "slurm" / "standins"


class Job:
    """One rendered job started as Slurm would start it, with the stand-ins first on PATH."""

    started: ClassVar[list[Job]] = []
    """Every job of the running test, killed with what it left when the test ends."""

    def __init__(self, tmp_path: Path, layer: dict[str, Any], config: SlurmConfig, *, env: dict[str, str],
                 nodes: str = "node1") -> None:
        self.calls_dir, self.run_dir = tmp_path / "calls", tmp_path / "run"
        bin_dir = tmp_path / "bin"
        for directory in (self.calls_dir, bin_dir):
            directory.mkdir()
        for name, target in {"docker": "runtime", "apptainer": "runtime", "srun": "srun", "scontrol": "scontrol",
                             "vllm": "vllm", "ray": "ray-cli"}.items():
            (bin_dir / name).symlink_to(STANDINS / target)
        for name in ("python", "python3"):
            (bin_dir / name).symlink_to(sys.executable)
        self.deployment = deployment(**layer)
        records = [task(0, "gsm8k_sample", output_root=str(self.run_dir)),
                   task(1, "arc_challenge_sample", output_root=str(self.run_dir))]
        script = tmp_path / "job.sh"
        script.write_text(render_batch_script(run_id=RUN_ID, run_dir=str(self.run_dir), tasks=records,
                                              config=config, deployment=self.deployment))
        health = f"http://127.0.0.1:{self.deployment.port}{self.deployment.health.path}"
        self.process = subprocess.Popen(
            ["bash", str(script)], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(STANDINS), "SLURM_JOB_ID": "4343",
                 "SLURM_JOB_NODELIST": "node[1-2]", "FAKE_NODES": nodes, "FAKE_LOG": str(self.calls_dir),
                 "FAKE_SERVER_IMAGE": self.deployment.image, "FAKE_PROBE": health, "MY_KEY": "sk-task",
                 "FAKE_RAY_NODES": str(self.deployment.nodes), "FAKE_ENTRYPOINT": "python -m reference_endpoint",
                 **env})
        self.output = ""
        Job.started.append(self)

    def wait(self, timeout: float = 60) -> int:
        self.output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode

    def calls(self, kind: str | None = None, tool: str | None = None) -> list[dict[str, Any]]:
        lines = (self.calls_dir / "calls.jsonl").read_text().splitlines()
        found = [json.loads(line) for line in lines]
        return [c for c in found if (kind is None or c.get("kind") == kind) and (tool is None or c["tool"] == tool)]

    def alive(self) -> list[int]:
        """Stand-in server processes still running, a few seconds after the job ended."""
        pids = [int(p.read_text()) for p in self.calls_dir.glob("*.pid")]
        deadline = time.monotonic() + 5
        while True:
            left = [pid for pid in pids if _running(pid)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def kill_all(self) -> None:
        for pid in [int(p.read_text()) for p in self.calls_dir.glob("*.pid")] + [self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def code(self, index: int) -> str:
        return (self.run_dir / "exit" / f"task-{index}.code").read_text().strip()

    def task_log(self, index: int) -> str:
        return (self.run_dir / "logs" / f"task-{index}.log").read_text()


@pytest.fixture(autouse=True)
def _kill_leftovers() -> Iterator[None]:
    yield
    for job in Job.started:
        job.kill_all()
    Job.started.clear()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ", 1)[1].startswith("Z"))


REFERENCE = {"type": "reference", "port": 18931, "health": {"interval": 0.2}}


def test_reference_server_is_started_waited_for_used_and_stopped(tmp_path: Path) -> None:
    job = Job(tmp_path, REFERENCE, SlurmConfig(), env={})
    assert job.wait() == 0, job.output
    [started] = job.calls("server")
    assert started["command"][:3] == ["python", "-m", "reference_endpoint"] and "18931" in started["command"]
    assert [(c["image"], c["reached"], c["stdin"]) for c in job.calls("task")] == [
        ("evals/lm-eval:latest", 200, True), ("evals/lm-eval:latest", 200, True)]
    assert (job.code(0), job.code(1)) == ("0", "0")
    assert "evals: the server answered after" in job.output and "evals: stopping the server" in job.output
    assert [c["argv"] for c in job.calls("rm")][-1] == ["rm", "-f", f"evals-{RUN_ID}-server-4343-0"]
    assert job.alive() == []
    assert "stand-in task: the server answered 200" in job.task_log(1)


def test_a_server_that_never_answers_fails_every_task_with_its_log_and_is_stopped(tmp_path: Path) -> None:
    layer = {**REFERENCE, "health": {"start_timeout": 3, "interval": 0.2}}
    job = Job(tmp_path, layer, SlurmConfig(), env={"FAKE_SERVER_MODE": "unhealthy"})
    assert job.wait() == 3, job.output
    assert job.calls("task") == [] and (job.code(0), job.code(1)) == ("3", "3")
    for index in (0, 1):
        log = job.task_log(index)
        assert "did not answer http://127.0.0.1:18931/health within 3 s" in log
        assert '"GET /health HTTP/1.1" 503' in log  # the server's own last lines
    assert job.alive() == []


def test_a_server_that_dies_fails_the_job_at_once_with_its_last_lines(tmp_path: Path) -> None:
    job = Job(tmp_path, REFERENCE, SlurmConfig(), env={"FAKE_SERVER_MODE": "die"})
    started = time.monotonic()
    assert job.wait() == 3, job.output
    assert time.monotonic() - started < 30  # not the whole start timeout (300 s)
    assert "the server exited before it answered" in job.output and "CUDA out of memory" in job.output
    assert "CUDA out of memory" in job.task_log(0) and job.code(1) == "3"


def test_scancel_during_a_task_stops_the_task_and_the_server(tmp_path: Path) -> None:
    job = Job(tmp_path, {**REFERENCE, "port": 18932}, SlurmConfig(), env={"FAKE_SLEEP": "30"})
    deadline = time.monotonic() + 30
    while not (job.calls_dir / "calls.jsonl").exists() or not job.calls("task"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    job.process.send_signal(signal.SIGTERM)  # scancel and the time limit send TERM first
    assert job.wait() == 143, job.output
    assert job.alive() == []
    removed = [c["argv"] for c in job.calls("rm")]
    assert ["rm", "-f", f"evals-{RUN_ID}-0-4343"] in removed  # the task's container
    assert ["rm", "-f", f"evals-{RUN_ID}-server-4343-0"] in removed
    assert not (job.run_dir / "exit" / "task-0.code").exists() and "job 4343 stopped" in job.task_log(0)


def test_a_resubmitted_job_skips_the_tasks_that_succeeded(tmp_path: Path) -> None:
    (tmp_path / "run" / "exit").mkdir(parents=True)
    (tmp_path / "run" / "exit" / "task-0.code").write_text("0\n")
    job = Job(tmp_path, REFERENCE, SlurmConfig(), env={"FAKE_EXIT": "5"})
    assert job.wait() == 1
    assert len(job.calls("task")) == 1 and (job.code(0), job.code(1)) == ("0", "5")
    assert "task 0 succeeded before: skipped" in job.output and job.alive() == []


def test_vllm_on_one_node_with_apptainer_gets_gpus_and_its_token_by_name(tmp_path: Path) -> None:
    layer = {"type": "vllm", "checkpoint": "org/model", "gpus": 1, "port": 18933, "env": ["HF_TOKEN"],
             "health": {"interval": 0.2}}
    job = Job(tmp_path, layer, SlurmConfig(container_runtime="apptainer", images={"deployment": "vllm.sif"}),
              env={"HF_TOKEN": "hf-secret", "FAKE_ENTRYPOINT": "vllm serve", "FAKE_SERVER_IMAGE": "vllm.sif"})
    assert job.wait() == 0, job.output
    [server] = job.calls("server")
    assert server["argv"][:2] == ["exec", "--cleanenv"] and "--nv" in server["argv"]
    assert server["secrets"] == ["APPTAINERENV_HF_TOKEN"] and "hf-secret" not in json.dumps(server["argv"])
    [served] = [c for c in job.calls(tool="vllm")]
    assert served["argv"][:2] == ["serve", "org/model"] and "18933" in served["argv"]
    assert [c["reached"] for c in job.calls("task")] == [200, 200] and job.alive() == []


def test_sglang_over_two_nodes_runs_one_server_per_node_with_its_rank(tmp_path: Path) -> None:
    layer = {"type": "sglang", "checkpoint": "org/model", "nodes": 2, "tensor_parallel_size": 16, "port": 18934,
             "health": {"interval": 0.2}}
    job = Job(tmp_path, layer, SlurmConfig(), env={}, nodes="nodeA nodeB")
    assert job.wait() == 0, job.output
    ranks = sorted((c["node"], c["argv"]) for c in job.calls(tool="sglang.launch_server"))
    assert [node for node, _ in ranks] == ["0", "1"]
    for node, argv in ranks:
        assert argv[argv.index("--node-rank") + 1] == node and argv[argv.index("--nnodes") + 1] == "2"
        assert argv[argv.index("--dist-init-addr") + 1] == "nodeA:5757" and argv[argv.index("--tp-size") + 1] == "16"
    assert [c["reached"] for c in job.calls("task")] == [200, 200]
    assert job.alive() == []  # the head's and the worker's server
    assert {tuple(c["argv"]) for c in job.calls("rm")} >= {("rm", "-f", f"evals-{RUN_ID}-server-4343-0"),
                                                           ("rm", "-f", f"evals-{RUN_ID}-server-4343-1")}


def test_vllm_over_two_nodes_forms_a_ray_cluster_then_serves_from_the_head(tmp_path: Path) -> None:
    layer = {"type": "vllm", "checkpoint": "org/model", "nodes": 2, "tensor_parallel_size": 16, "port": 18935,
             "health": {"interval": 0.2}}
    job = Job(tmp_path, layer, SlurmConfig(), env={}, nodes="nodeA nodeB")
    assert job.wait() == 0, job.output
    ray = sorted((c["node"], c["argv"]) for c in job.calls(tool="ray"))
    assert ray[0][0] == "0" and ray[0][1].startswith("start --head --port=6379")
    assert ray[1] == ("1", "start --block --address=nodeA:6379 --disable-usage-stats")
    [served] = job.calls(tool="vllm")
    assert served["node"] == "0" and served["argv"][-2:] == ["--distributed-executor-backend", "ray"]
    assert [c["reached"] for c in job.calls("task")] == [200, 200] and job.alive() == []
