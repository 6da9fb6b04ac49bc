"""`deployment:` on the real engine: the run starts its model server, scores it and leaves no container.

The reference endpoint is the deployment (`type: reference`); vLLM, SGLang and TensorRT-LLM are run as their
rendered command lines against a stand-in image (tests/fixtures/deployment-standin: each server's documented flags
parsed strictly, then the reference endpoint served), since there is no GPU here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import docker
import pytest
import yaml

from orchestrator.host.backends.local.docker import DockerServers
from orchestrator.host.backends.local.server import serving
from orchestrator.host.deploy.commands import render_server
from orchestrator.schema.config import DeploymentLayer
from orchestrator.schema.deployment import ServedDeployment, resolve_deployment
from tests.integration.conftest import DATA, REPO

EVALS = [sys.executable, "-m", "orchestrator.host.cli"]
STANDIN = "wtdeploy/standin:test" if os.environ.get("EVALS_REGISTRY") == "wtdeploy" else "evals-test/standin:test"
TASK = ["--eval_type", "lm-eval.gsm8k_sample", "--data_dir", str(DATA), "--overrides",
        "config.params.limit_samples=2,config.params.max_new_tokens=16,config.params.request_timeout=600"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def standin(engine: docker.DockerClient) -> str:
    """The stand-in server image, built on the reference endpoint's (seconds: one small layer)."""
    engine.images.get("evals/reference-endpoint:latest")
    engine.images.build(path=str(REPO / "tests" / "fixtures" / "deployment-standin"), tag=STANDIN,
                        network_mode="host", rm=True)
    return STANDIN


def evals_run(tmp_path: Path, image: str, deployment: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """`evals run` of the small task with ``deployment`` (YAML lines under ``deployment:``); its run id."""
    config = tmp_path / "run.yml"
    config.write_text("deployment:\n" + deployment)
    env = {**os.environ, "EVALS_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([*EVALS, "run", *TASK, "--image", image, "--run_config", str(config), "--output_dir",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True, check=False, timeout=900)
    status = subprocess.run([*EVALS, "status", "--json"], env=env, capture_output=True, text=True, check=False)
    return done, json.loads(status.stdout)["id"]


def left(engine: docker.DockerClient, run_id: str) -> list[str]:
    return [str(c.name) for c in engine.containers.list(all=True, filters={"label": f"evals.run.id={run_id}"})]


def test_a_reference_deployment_is_started_scored_and_removed(lm_eval_image: str, engine: docker.DockerClient,
                                                              tmp_path: Path) -> None:
    port = free_port()
    done, run_id = evals_run(tmp_path, lm_eval_image, f"  type: reference\n  port: {port}\n")
    assert done.returncode == 0, done.stderr
    assert "the reference server answers" in done.stdout and "stopped the reference server" in done.stdout
    results = yaml.safe_load((tmp_path / "out" / "results.yml").read_text())
    served = results["provenance"]["deployment"]
    assert served["deployment"]["type"] == "reference" and served["deployment"]["port"] == port
    assert served["image_digest"] == engine.images.get("evals/reference-endpoint:latest").id
    assert results["target"]["api_endpoint"]["url"] == f"http://127.0.0.1:{port}/v1/completions"
    assert "exact_match__strict-match" in json.dumps(results["results"])
    assert left(engine, run_id) == []


def test_a_server_that_never_answers_stops_the_run(lm_eval_image: str, engine: docker.DockerClient,
                                                   tmp_path: Path) -> None:
    done, run_id = evals_run(tmp_path, lm_eval_image, f"  type: reference\n  port: {free_port()}\n"
                                                      "  health: {path: /no-such-route, start_timeout: 20}\n")
    assert done.returncode == 1
    assert "did not answer /no-such-route within 20 s; its last log lines:" in done.stderr
    assert "server | INFO:" in done.stdout and left(engine, run_id) == []


def test_a_server_that_dies_stops_the_run_with_its_log(lm_eval_image: str, engine: docker.DockerClient,
                                                       tmp_path: Path) -> None:
    done, run_id = evals_run(tmp_path, lm_eval_image, f"  type: reference\n  port: {free_port()}\n"
                                                      "  extra_args: [--no-such-flag]\n")
    assert done.returncode == 1
    assert "exited (code 2)" in done.stderr and "unrecognized arguments: --no-such-flag" in done.stderr
    assert left(engine, run_id) == []


def test_the_rendered_vllm_command_serves_a_run(lm_eval_image: str, standin: str, engine: docker.DockerClient,
                                                tmp_path: Path) -> None:
    checkpoint = tmp_path / "my-model"
    checkpoint.mkdir()
    port = free_port()
    done, run_id = evals_run(tmp_path, lm_eval_image, f"  type: vllm\n  image: {standin}\n  port: {port}\n"
                                                      f"  checkpoint: {checkpoint}\n  tensor_parallel_size: 2\n")
    assert done.returncode == 0, done.stderr
    results = yaml.safe_load((tmp_path / "out" / "results.yml").read_text())
    assert results["target"]["api_endpoint"]["model_id"] == "my-model"
    assert results["provenance"]["deployment"]["command"][:3] == ["vllm", "serve", "/checkpoint"]
    assert left(engine, run_id) == []


@pytest.mark.parametrize("kind", ["sglang", "trtllm"])
def test_the_rendered_sglang_and_trtllm_commands_answer_health(kind: str, standin: str, engine: docker.DockerClient,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("STANDIN_TOKEN", "not-a-real-token")
    (tmp_path / "ckpt").mkdir()
    deployment = resolve_deployment(DeploymentLayer(type=kind, image=standin, port=free_port(),
                                                    checkpoint=str(tmp_path / "ckpt"), env=["STANDIN_TOKEN"]))
    assert deployment is not None
    command = render_server(deployment)
    served = ServedDeployment(deployment=deployment, command=[*(command.entrypoint or []), *command.args])
    said: list[bytes] = []
    servers = DockerServers(engine)
    with serving("standin-test", served, servers, output=said.append, on_digest=lambda digest: None):
        (container,) = engine.containers.list(filters={"label": "evals.run.id=standin-test"})
        # the trade-off docs/deployments.md states: a server reads no stdin, its variables are in its config
        assert "STANDIN_TOKEN=not-a-real-token" in container.attrs["Config"]["Env"]
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert any(m["Destination"] == "/checkpoint" and not m["RW"] for m in container.attrs["Mounts"])
    assert b"answers at" in b"".join(said) and left(engine, "standin-test") == []
    assert "not-a-real-token" not in served.model_dump_json()
