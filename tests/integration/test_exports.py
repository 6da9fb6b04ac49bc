"""`evals export` against a real MLflow tracking server (sqlite, loopback) and W&B offline; no Docker needed.

The server is the one `pip install mlflow` brings (`mlflow server`), started here on a free loopback port with its
artifacts proxied (so the client uploads over HTTP as it would to a remote server) and stopped by its PID.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.host.cli import app as cli
from tests.export_runs import METRIC, MODELS, suite_dir

MLFLOW = Path(sys.executable).parent / "mlflow"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server: sqlite backend, artifacts served (proxied) by the server itself."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}", "--artifacts-destination",
         str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and the workers it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def evals(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_mlflow_gets_one_run_per_model_and_task_and_a_second_export_adds_none(
        mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient  # noqa: PLC0415 - the dev extra's

    suite = suite_dir(tmp_path / "suite")
    (suite / "large" / "lm-eval-gsm8k" / "report.html").write_text("<html></html>", encoding="utf-8")
    args = ["export", str(suite), "--to", "mlflow", "--mlflow_uri", mlflow_uri, "--mlflow_experiment", "release",
            "--mlflow_tag", "team=eval"]
    code, _, err = evals(capsys, *args)
    assert code == 0, err
    assert f"exported to mlflow: 2 tasks to experiment 'release' at {mlflow_uri}" in err

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("release")
    assert experiment is not None
    found = {run.data.tags["evals.model"]: run for run in client.search_runs([experiment.experiment_id])}
    assert set(found) == set(MODELS)
    for model, score in MODELS.items():
        run = found[model]
        assert run.info.status == "FINISHED" and run.info.run_name == f"{model}/gsm8k"
        assert run.data.params["model"] == model and run.data.params["task"] == "gsm8k"
        assert run.data.params["image_digest"] == "sha256:" + "ab" * 32
        assert run.data.params["config.params.parallelism"] == "2"
        assert run.data.metrics[f"gsm8k/{METRIC}"] == score
        assert run.data.metrics[f"gsm8k/{METRIC}/ci95_lower"] == pytest.approx(score - 0.2)
        assert run.data.metrics["gsm8k/samples/scored"] == 8 and run.data.metrics["usage/requests"] == 10
        assert run.data.tags["team"] == "eval" and run.data.tags["evals.task"] == "gsm8k"
        artifacts = sorted(item.path for item in client.list_artifacts(run.info.run_id))
        expected = ["results.yml", "run_config.yml", "samples.jsonl"] + (["report.html"] if model == "large" else [])
        assert artifacts == sorted(expected)
    local = Path(client.download_artifacts(found["small"].info.run_id, "results.yml", str(tmp_path)))
    assert local.read_bytes() == (suite / "small" / "lm-eval-gsm8k" / "results.yml").read_bytes()

    code, _, err = evals(capsys, *args)
    assert code == 0 and "0 tasks to experiment 'release'" in err and "(2 already there)" in err
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_a_closed_port_fails_fast_with_the_retry_command_and_the_files_are_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = suite_dir(tmp_path / "suite")
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, _, err = evals(capsys, "export", str(suite), "--to", "mlflow", "--to", "csv", "--mlflow_uri", closed,
                         "--csv_path", str(tmp_path / "s.csv"))
    took = time.monotonic() - started
    assert code == 1
    assert (tmp_path / "s.csv").is_file()
    line = next(line for line in err.splitlines() if "mlflow" in line)
    assert line.startswith(f"evals: error: export to mlflow failed: the MLflow tracking server at {closed}: "
                           "Connection refused; retry: ")
    assert shlex.split(line.partition("; retry: ")[2]) == ["evals", "export", str(suite), "--to", "mlflow",
                                                           "--mlflow_uri", closed]
    assert took < 60, f"took {took:.1f} s"  # 2 retries with backoff; MLflow's own defaults take minutes


class Trap:
    """A loopback listener that counts the connections made to it: W&B's API and the proxies point here."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stopping = True
        self.thread.join()
        self.sock.close()


def wandb_records(path: Path) -> list[object]:
    """The records of a run's .wandb file, read with W&B's own protobuf messages.

    wandb 0.31 has no Python reader left (its store moved into the Go core): the file is a 7-byte header (':W&B',
    magic, version) and then LevelDB's log format, 32 KiB blocks of records (crc32c, length, type, data) that a
    record longer than its block continues in the next (FIRST, MIDDLE, LAST)."""
    from wandb.proto import wandb_internal_pb2  # noqa: PLC0415 - the dev extra's

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, offset, block = [], b"", 7, 32768
    while offset + 7 <= len(data):
        left = block - offset % block
        if left < 7:
            offset += left
            continue
        length, kind = struct.unpack_from("<HB", data, offset + 4)
        chunk = data[offset + 7:offset + 7 + length]
        offset += 7 + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            record.ParseFromString(pending)
            records.append(record)
    return records


def _key(item: object) -> str:
    """A history or summary item's key (W&B keeps one with a ``/`` as its nested key)."""
    return str(item.key) or "/".join(item.nested_key)  # type: ignore[attr-defined]


def test_wandb_offline_writes_one_run_per_model_and_task_and_connects_nowhere(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    suite = suite_dir(tmp_path / "suite")
    trap = Trap()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{trap.port}")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{trap.port}")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        code, _, err = evals(capsys, "export", str(suite), "--to", "wandb", "--wandb_project", "evals",
                             "--wandb_dir", str(tmp_path / "w"))
    finally:
        trap.close()
    assert code == 0, err
    assert f"exported to wandb: 2 tasks to W&B offline, {tmp_path / 'w' / 'wandb'}" in err
    assert trap.connections == 0

    runs = sorted((tmp_path / "w" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    seen = {}
    for directory in runs:
        (store,) = directory.glob("run-*.wandb")
        records = wandb_records(store)
        run = next(r.run for r in records if r.HasField("run"))  # type: ignore[attr-defined]
        config = {item.key: item.value_json for item in run.config.update}
        history = {_key(item): item.value_json for r in records if r.HasField("history")  # type: ignore[attr-defined]
                   for item in r.history.item}  # type: ignore[attr-defined]
        summary = {_key(item): item.value_json for r in records if r.HasField("summary")  # type: ignore[attr-defined]
                   for item in r.summary.update}  # type: ignore[attr-defined]
        model = config["model"].strip('"')
        seen[model] = run.run_id
        assert run.project == "evals" and run.display_name == f"{model}/gsm8k" and run.job_type == "eval"
        assert f"evals.model={model}" in run.tags and "evals.task=gsm8k" in run.tags
        assert json.loads(config["evals.results_sha256"]) == hashlib.sha256(
            (suite / model / "lm-eval-gsm8k" / "results.yml").read_bytes()).hexdigest()
        assert float(history[f"gsm8k/{METRIC}"]) == float(summary[f"gsm8k/{METRIC}"]) == MODELS[model]
        assert float(summary["usage/prompt_tokens"]) == 1000
        assert float(history[f"gsm8k/{METRIC}/ci95_upper"]) == pytest.approx(min(1.0, MODELS[model] + 0.1))
        assert (directory / "files" / "results.yml").read_bytes() == \
            (suite / model / "lm-eval-gsm8k" / "results.yml").read_bytes()
    assert set(seen) == set(MODELS)
    assert len(set(seen.values())) == 2 and all(len(rid) == 24 for rid in seen.values())
