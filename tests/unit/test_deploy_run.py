"""`evals run` with a `deployment:` through the CLI built with test doubles: the tasks pointed at the server, the
server started before them and removed after them (a stand-in HTTP server answers its health route), the dry run,
the record and bad input before anything starts."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from orchestrator.host.records import store
from orchestrator.schema.container import DEPLOYMENT_VAR
from orchestrator.schema.deployment import served_from_env
from orchestrator.schema.errors import InputError
from orchestrator.schema.resolve import RunRequest, run_deployment
from tests.doubles.launcher import FakeLauncher
from tests.doubles.servers import FakeServers
from tests.doubles.services import fake_services
from tests.unit.evals_app import Evals
from tests.unit.test_host_cli import IMAGES
from tests.unit.test_run_lifecycle import write_results


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def servers() -> FakeServers:
    return FakeServers()


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher(behaviour=write_results)


@pytest.fixture
def evals(launcher: FakeLauncher, servers: FakeServers) -> Evals:
    return Evals(fake_services(images=IMAGES, launcher=launcher, servers=servers))


def run_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.yml"
    path.write_text(text)
    return str(path)


def test_a_run_starts_its_server_points_the_tasks_at_it_and_removes_it(
        evals: Evals, launcher: FakeLauncher, servers: FakeServers, port: int, tmp_path: Path) -> None:
    config = run_config(tmp_path, f"deployment:\n  type: reference\n  port: {port}\n")
    code, out, err = evals("run", "--eval_type", "gsm8k", "--eval_type", "humaneval", "--run_config", config,
                           "--output_dir", str(tmp_path / "out"))
    assert code == 0, err
    assert len(servers.started) == 1 and servers.removed == ["c1"]
    spec = servers.started[0]
    assert spec.labels == {"evals.run.id": store.run_ids()[0], "evals.run.role": "server"}
    assert spec.args[spec.args.index("--port") + 1] == str(port)
    record = store.load(store.run_ids()[0])
    assert [t.state for t in record.tasks] == ["succeeded", "succeeded"]
    assert record.deployment is not None and record.deployment.image_digest == "sha256:ref"
    for task in record.tasks:
        assert f"url: http://127.0.0.1:{port}/v1/" in (task.resolved_config or "")
        assert "model_id: SmolLM2-135M-Instruct" in (task.resolved_config or "")
    served = served_from_env(launcher.launched[0].environment)
    assert served is not None and served.image_digest == "sha256:ref" and served.deployment.port == port
    assert "the reference server answers" in out
    assert (store.record_dir(record.id) / "logs" / "server.log").read_bytes() == servers.log


def test_the_endpoint_type_picks_the_route(evals: Evals, port: int, tmp_path: Path) -> None:
    config = run_config(tmp_path, f"deployment:\n  type: reference\n  port: {port}\n")
    code, out, _ = evals("run", "--eval_type", "gsm8k", "--run_config", config, "--model_type", "chat", "--dry_run")
    assert code == 0 and f"url: http://127.0.0.1:{port}/v1/chat/completions" in out


def test_dry_run_shows_the_server_container_first(evals: Evals, servers: FakeServers, tmp_path: Path) -> None:
    checkpoint = tmp_path / "llama"
    checkpoint.mkdir()
    config = run_config(tmp_path, f"deployment:\n  type: vllm\n  checkpoint: {checkpoint}\n  gpus: 2\n"
                                  "  tensor_parallel_size: 2\n  env: [HF_TOKEN]\n")
    code, out, err = evals("run", "--eval_type", "gsm8k", "--run_config", config, "--dry_run")
    assert code == 0, err
    server = out[:out.index("Rendered config:")]
    assert "image: vllm/vllm-openai:v0.11.0" in server and "entrypoint: vllm serve" in server
    assert f'"{checkpoint.name}"' in server and "--tensor-parallel-size" in server
    assert f"mounts: {checkpoint}:/checkpoint:ro" in server and "gpus: 2" in server
    assert "secrets by name: HF_TOKEN" in server and "health: GET http://127.0.0.1:8000/health" in server
    assert servers.started == []


@pytest.mark.parametrize(("extra", "message"), [
    (["--model_url", "http://elsewhere:8000/v1/completions"], "also names the endpoint"),
    (["--model_id", "other"], "is not the deployed server's model name"),
    (["--executor", "kubernetes", "--dry_run"], "renders the evaluation Jobs only"),
    (["--overrides", "deployment.type=vllm"], "a vllm deployment needs a checkpoint"),
    (["--overrides", "deployment.type=tgi"], "deployment.type"),
])
def test_conflicting_or_impossible_deployments_are_bad_input(evals: Evals, port: int, tmp_path: Path, *,
                                                             capsys: pytest.CaptureFixture[str], extra: list[str],
                                                             message: str) -> None:
    config = run_config(tmp_path, f"deployment:\n  type: reference\n  port: {port}\n")
    code = evals.main(["run", "--eval_type", "gsm8k", "--run_config", config, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert store.run_ids() == []


def test_tasks_naming_different_deployments_are_bad_input() -> None:
    requests = [RunRequest(eval_type="a", overrides="deployment.type=reference,deployment.port=9000"),
                RunRequest(eval_type="b", overrides="deployment.type=reference,deployment.port=9001")]
    with pytest.raises(InputError, match="different deployments"):
        run_deployment(requests)
    assert run_deployment(requests[:1]) is not None and run_deployment([RunRequest(eval_type="a")]) is None


def test_bad_input_before_anything_starts(evals: Evals, servers: FakeServers, port: int, *, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def refused(deployment: str) -> str:
        config = run_config(tmp_path, "deployment:\n" + deployment)
        code = evals.main(["run", "--eval_type", "gsm8k", "--run_config", config])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert servers.started == [] and store.run_ids() == []
        return err

    assert "does not exist" in refused(f"  type: reference\n  port: {port}\n  checkpoint: ./missing.gguf\n")
    assert "no GPU runtime" in refused(f"  type: reference\n  port: {port}\n  gpus: 1\n")
    assert "docker pull my/server:1" in refused(f"  type: reference\n  port: {port}\n  image: my/server:1\n")
    monkeypatch.delenv("SERVER_TOKEN", raising=False)
    assert "needs SERVER_TOKEN" in refused(f"  type: reference\n  port: {port}\n  env: [SERVER_TOKEN]\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert f"port {port} is already taken" in refused(f"  type: reference\n  port: {port}\n")


def test_a_server_that_never_answers_stops_the_run_and_is_removed(launcher: FakeLauncher, port: int,
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    servers = FakeServers(healthy=False, log=b"loading\nstill loading\n")
    evals = Evals(fake_services(images=IMAGES, launcher=launcher, servers=servers))
    config = run_config(tmp_path, f"deployment:\n  type: reference\n  port: {port}\n"
                                  "  health: {path: /nope, start_timeout: 1, interval: 0.2}\n")
    assert evals.main(["run", "--eval_type", "gsm8k", "--run_config", config]) == 1
    assert launcher.launched == [] and servers.removed == ["c1"]
    captured = capsys.readouterr()
    assert "evals: error: the reference server did not answer /nope within 1 s" in captured.err
    assert "server | still loading" in captured.out and "waiting for the reference server" in captured.out
    record = store.load(store.run_ids()[0])
    assert record.tasks[0].state == "failed" and "still loading" in (record.tasks[0].reason or "")


def test_a_server_that_exits_stops_the_run_with_its_log(launcher: FakeLauncher, port: int, tmp_path: Path) -> None:
    servers = FakeServers(exits_with=2, log=b"usage: server [--port]\nerror: unrecognized arguments: --bad\n")
    evals = Evals(fake_services(images=IMAGES, launcher=launcher, servers=servers))
    config = run_config(tmp_path, f"deployment:\n  type: reference\n  port: {port}\n  extra_args: [--bad]\n")
    assert evals.main(["run", "--eval_type", "gsm8k", "--run_config", config]) == 1
    assert launcher.launched == [] and servers.removed == ["c1"]
    reason = store.load(store.run_ids()[0]).tasks[0].reason or ""
    assert "exited (code 2)" in reason and "unrecognized arguments: --bad" in reason


def test_resume_starts_the_server_again(launcher: FakeLauncher, port: int, tmp_path: Path) -> None:
    servers = FakeServers(exits_with=1)
    config = run_config(tmp_path, f"deployment:\n  type: reference\n  port: {port}\n")
    failing = Evals(fake_services(images=IMAGES, launcher=launcher, servers=servers))
    assert failing.main(["run", "--eval_type", "gsm8k", "--run_config", config]) == 1
    servers.exits_with = None
    code, _, err = failing("resubmit", store.run_ids()[0])
    assert code == 0, err
    assert len(servers.started) == 2 and servers.removed == ["c1", "c2"] and len(launcher.launched) == 1
    assert json.loads(launcher.launched[0].environment[DEPLOYMENT_VAR])["deployment"]["port"] == port
