"""VLMEvalKit's data online by default, offline on purpose: the real vlmevalkit image fetches its dataset TSVs.

VLMEvalKit downloads ``https://opencompass.openxlab.space/utils/VLMEval/<NAME>.tsv``. Here the same paths are
served on loopback (tests/hub/files.py) and reached as a user would reach a mirror or an artifact proxy
(``EVALS_LMUDATA_MIRROR``), or through a corporate forward proxy with a password (``HTTP_PROXY``). The files
are the generated samples of tests/fixtures/lmudata, so the scores are those test_vlmevalkit_image.py derives.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.endpoint.server import EndpointServer
from tests.hub.files import FileRequest, FileServer, serve
from tests.integration.test_evals_cli import evals
from tests.integration.test_vlmevalkit_image import DATA, accuracy, results_of

UPSTREAM_PATH = "/utils/VLMEval"
"""Where VLMEvalKit 26.3's DATASET_URL puts every file of the tasks under test."""
PROXY_USER, PROXY_PASSWORD = "evals-user", "proxy-pass-5150"


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    (root / UPSTREAM_PATH.strip("/")).mkdir(parents=True)
    for name in ("OCRBench", "ChartQA_TEST"):
        shutil.copy(DATA / "LMUData" / f"{name}.tsv", root / UPSTREAM_PATH.strip("/"))
    return root


@pytest.fixture
def mirror(mirror_root: Path) -> Iterator[FileServer]:
    with serve(mirror_root, proxy_credentials=(PROXY_USER, PROXY_PASSWORD)) as server:
        yield server


def run(task: str, endpoint: EndpointServer, out: Path, *extra: str, env: dict[str, str]) -> tuple[int, str]:
    result = evals("run", "--harness", "vlmevalkit", "--eval_type", task, "--model_id", endpoint.model,
                   "--model_url", f"{endpoint.url}/v1/chat/completions", "--model_type", "vlm",
                   "--output_dir", str(out), *extra, env=env)
    return result.returncode, result.stdout + result.stderr


def inference(endpoint: EndpointServer) -> int:
    return len([r for r in endpoint.requests if r.kind == "inference"])


def test_online_fetch_into_the_cache_then_prefetch_carries_it_offline(
        vlmevalkit_image: str, mirror: FileServer, endpoint: EndpointServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {"EVALS_LMUDATA_MIRROR": mirror.url, "EVALS_CACHE_DIR": str(cache)}
    code, output = run("ocrbench", endpoint, tmp_path / "online", env=env)
    assert code == 0, output[-4000:]
    assert accuracy(results_of(tmp_path / "online").results, group="ocrbench") == pytest.approx(0.5)
    assert mirror.requests == [FileRequest(f"{UPSTREAM_PATH}/OCRBench.tsv", False, False, 200)]
    # Into the host cache through the mount, byte for byte, and nothing half-written left beside it.
    assert sorted(p.name for p in (cache / "LMUData").iterdir()) == ["OCRBench.tsv"]
    assert (cache / "LMUData" / "OCRBench.tsv").read_bytes() == (DATA / "LMUData" / "OCRBench.tsv").read_bytes()
    assert f"downloading OCRBench.tsv from {mirror.url}{UPSTREAM_PATH}/OCRBench.tsv" in \
        (tmp_path / "online" / "logs" / "data.log").read_text()

    code, output = run("ocrbench", endpoint, tmp_path / "again", env=env)  # the cache serves the second run
    assert code == 0, output[-4000:]
    assert len(mirror.requests) == 1
    assert accuracy(results_of(tmp_path / "again").results, group="ocrbench") == pytest.approx(0.5)

    carry = tmp_path / "carry"
    result = evals("prefetch", "--eval_type", "vlmevalkit.ocrbench", "--to", str(carry),
                   env={**env, "EVALS_CACHE_DIR": str(tmp_path / "other-cache")})
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    manifest = json.loads((carry / "manifest.json").read_text())
    assert "cache/LMUData/OCRBench.tsv" in manifest["files"]
    assert [t["task"] for t in manifest["tasks"]] == ["ocrbench"]
    mirror.shutdown()  # from here on nothing serves the files

    assert evals("prefetch", "--verify", str(carry)).returncode == 0
    before = inference(endpoint)
    offline_env = {"EVALS_CACHE_DIR": str(tmp_path / "unused-cache")}
    code, output = run("ocrbench", endpoint, tmp_path / "offline", "--offline", "--data", str(carry), env=offline_env)
    assert code == 0, output[-4000:]
    assert accuracy(results_of(tmp_path / "offline").results, group="ocrbench") == pytest.approx(0.5)
    assert inference(endpoint) - before == 10
    assert evals("prefetch", "--verify", str(carry)).returncode == 0  # the run left the data as it was


def test_offline_without_the_file_fails_before_any_request_with_one_line(
        vlmevalkit_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    code, output = run("chartqa", endpoint, tmp_path / "out", "--offline",
                       env={"EVALS_CACHE_DIR": str(tmp_path / "empty")})
    assert code == 2, output[-3000:]
    assert "VLMEvalKit dataset ChartQA_TEST (ChartQA_TEST.tsv) is neither in the cache /cache/LMUData nor " \
           "pre-staged in /data/LMUData, and this run is offline" in output
    assert "evals prefetch --eval_type chartqa --to DIR" in output
    assert "Traceback" not in output
    assert inference(endpoint) == 0
    assert not (tmp_path / "out" / "results.yml").exists()


def test_a_file_the_server_does_not_have_fails_before_any_request(
        vlmevalkit_image: str, mirror: FileServer, endpoint: EndpointServer, tmp_path: Path) -> None:
    code, output = run("ai2d_judge", endpoint, tmp_path / "out", "--run_config", str(judge_config(tmp_path)),
                       env={"EVALS_LMUDATA_MIRROR": mirror.url, "EVALS_CACHE_DIR": str(tmp_path / "cache"),
                            "JUDGE_KEY": "judge-key-1"})
    assert code == 2, output[-3000:]
    assert f"AI2D_TEST.tsv cannot be fetched from {mirror.url}{UPSTREAM_PATH}/AI2D_TEST.tsv: HTTP 404" in output
    assert "Traceback" not in output
    assert inference(endpoint) == 0
    assert list((tmp_path / "cache" / "LMUData").iterdir()) == []  # no partial file left


def judge_config(tmp_path: Path) -> Path:
    path = tmp_path / "judge.yml"
    path.write_text("config:\n  params:\n    extra:\n      judge: {model: j, url: http://127.0.0.1:9/v1/chat/completions,"
                    " api_key: JUDGE_KEY}\n")
    return path


def test_through_a_corporate_proxy_whose_password_stays_secret(
        vlmevalkit_image: str, mirror: FileServer, endpoint: EndpointServer, engine: docker.DockerClient,
        tmp_path: Path) -> None:
    """HTTP_PROXY (with a password) travels by name: the data step's download goes through it; the endpoint,
    on loopback, is still reached directly; the password is in no file, no log and not in `docker inspect`."""
    proxy = mirror.url.replace("http://", f"http://{PROXY_USER}:{PROXY_PASSWORD}@")
    env = {"HTTP_PROXY": proxy, "EVALS_LMUDATA_MIRROR": "http://lmudata-mirror.example.invalid/",
           "EVALS_CACHE_DIR": str(tmp_path / "cache")}
    inspected: list[str] = []
    done = threading.Event()

    def watch() -> None:  # `docker inspect` of the run's container while it exists (others may share the engine)
        while not done.is_set():
            found = (json.dumps(c.attrs) for c in engine.containers.list(filters={"label": "evals.run.id"}))
            inspected.extend(attrs for attrs in found if str(tmp_path / "out") in attrs)
            done.wait(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, output = run("ocrbench", endpoint, tmp_path / "out", env=env)
    finally:
        done.set()
        watcher.join()
    assert code == 0, output[-4000:]
    assert inspected and all("HTTP_PROXY" in attrs and PROXY_PASSWORD not in attrs for attrs in inspected)
    assert mirror.requests == [FileRequest(f"http://lmudata-mirror.example.invalid{UPSTREAM_PATH}/OCRBench.tsv",
                                           True, True, 200)]
    assert inference(endpoint) == 10
    assert accuracy(results_of(tmp_path / "out").results, group="ocrbench") == pytest.approx(0.5)
    assert PROXY_PASSWORD not in output
    for path in [*(tmp_path / "out").rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file() and not path.is_symlink():
            assert PROXY_PASSWORD.encode() not in path.read_bytes(), path
    for path in Path(os.environ["EVALS_STATE_DIR"]).rglob("*"):  # the run's record
        if path.is_file():
            assert PROXY_PASSWORD.encode() not in path.read_bytes(), path
