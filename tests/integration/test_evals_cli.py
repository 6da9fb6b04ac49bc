"""The host CLI `evals` driving the real image on the real engine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from orchestrator.host.backends.container import LaunchSpec, Mount
from orchestrator.host.backends.local.docker import DockerLauncher
from orchestrator.schema.container import RESULTS_DIR
from tests.endpoint.server import EndpointServer
from tests.integration.conftest import DATA
from tests.integration.expected import gsm8k_flexible

EVALS = [sys.executable, "-m", "orchestrator.host.cli"]


def evals(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVALS, *args], capture_output=True, text=True, check=False, timeout=900,
                          env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_evals_ls_reads_image_labels(lm_eval_image: str) -> None:
    result = evals("ls", "--json")
    assert result.returncode == 0, result.stderr
    tasks = {(entry["harness"], entry["task"]) for entry in json.loads(result.stdout)}
    assert ("lm-eval", "gsm8k") in tasks and ("lm-eval", "humaneval_offline") in tasks


def test_evals_run_end_to_end(lm_eval_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = evals(
        "run", "--harness", "lm-eval", "--eval_type", "lm-eval.gsm8k_sample", "--model_id", endpoint.model,
        "--model_url", f"{endpoint.url}/v1/chat/completions", "--model_type", "chat", "--api_key_name", "HOST_KEY",
        "--output_dir", str(out), "--data_dir", str(DATA), "--overrides", "config.params.limit_samples=3",
        env={"HOST_KEY": "sk-host-cli-456"},
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "exact_match" in result.stdout and str(out / "results.yml") in result.stdout
    assert f"{gsm8k_flexible(3):.4f}" in result.stdout
    assert {r.header("Authorization") for r in endpoint.requests if r.kind == "inference"} == {"Bearer sk-host-cli-456"}
    assert (out / "results.yml").stat().st_uid == os.getuid()


def test_secret_is_not_in_docker_inspect_and_container_is_removed(lm_eval_image: str, engine: docker.DockerClient,
                                                                 endpoint: EndpointServer, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-inspect-me-789"
    monkeypatch.setenv("INSPECT_KEY", secret)
    seen: list[str] = []

    def output(chunk: bytes) -> None:
        if not seen:
            for container in engine.containers.list(filters={"label": "evals.run.id=inspect-test"}):
                seen.append(json.dumps(container.attrs))

    tmp_path.mkdir(exist_ok=True)
    spec = LaunchSpec(
        image=lm_eval_image, name="evals-inspect-test", user=f"{os.getuid()}:{os.getgid()}", network_host=True,
        args=["run_eval", "--eval_type", "lm-eval.gsm8k_sample", "--model_id", endpoint.model, "--model_url",
              f"{endpoint.url}/v1/chat/completions", "--model_type", "chat", "--api_key_name", "INSPECT_KEY",
              "--output_dir", RESULTS_DIR, "--overrides", "config.params.limit_samples=1"],
        mounts=[Mount(source=tmp_path, target=RESULTS_DIR), Mount(source=DATA, target="/data", read_only=True)],
        secret_envs=["INSPECT_KEY"], labels={"evals.run.id": "inspect-test"},
    )
    assert DockerLauncher(engine).run(spec, output=output) == 0
    assert seen and "INSPECT_KEY" in seen[0] and secret not in seen[0]
    assert {r.header("Authorization") for r in endpoint.requests if r.kind == "inference"} == {f"Bearer {secret}"}
    assert engine.containers.list(all=True, filters={"label": "evals.run.id=inspect-test"}) == []


def test_interrupt_removes_the_container(lm_eval_image: str, engine: docker.DockerClient, tmp_path: Path) -> None:
    def output(chunk: bytes) -> None:
        raise KeyboardInterrupt

    spec = LaunchSpec(image=lm_eval_image, name="evals-interrupt-test", args=["ls"],
                      labels={"evals.run.id": "interrupt-test"}, mounts=[Mount(source=tmp_path, target=RESULTS_DIR)])
    with pytest.raises(KeyboardInterrupt):
        DockerLauncher(engine).run(spec, output=output)
    assert engine.containers.list(all=True, filters={"label": "evals.run.id=interrupt-test"}) == []


def test_refusals(lm_eval_image: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    base = ["run", "--eval_type", "gsm8k", "--model_id", "m", "--model_url", url, "--model_type", "chat",
            "--output_dir", str(tmp_path / "o")]
    unreachable = evals(*base)
    assert unreachable.returncode == 2 and "unreachable" in unreachable.stderr
    missing = evals(*base, "--image", "evals/not-built:latest")
    assert missing.returncode == 2 and "not built" in missing.stderr and "make images" in missing.stderr
    unset = evals(*base, "--api_key_name", "SURELY_NOT_SET_VAR")
    assert unset.returncode == 2 and "SURELY_NOT_SET_VAR" in unset.stderr
    no_engine = evals(*base, env={"DOCKER_HOST": f"tcp://127.0.0.1:{free_port()}"})
    assert no_engine.returncode != 0 and "no Docker engine reachable" in no_engine.stderr
    assert not (tmp_path / "o").exists()
