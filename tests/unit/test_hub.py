"""The stand-in Hub (tests/hub): its API answers, downloads, errors, gating, recording, repositories and CLI.

Plain HTTP (http.client) against the server, as huggingface_hub would ask; the real client libraries
are exercised by the integration tests and in tests/hub/README.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPMessage
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq  # type: ignore[import-not-found, import-untyped, unused-ignore]
import pytest
import yaml

from tests.conftest import FIXTURES, REPO
from tests.hub.layout import git_blob_id, scan_repository
from tests.hub.repos import build
from tests.hub.samples import GPQA_COLUMNS, HUMANEVAL_PROBLEMS, MMLU_SUBJECTS
from tests.hub.server import HubServer, serve

TOKEN = "hf_unit_test_token_0001"
GATED = "Idavidrein/gpqa"
GSM8K = "/datasets/openai/gsm8k/resolve"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hub")
    build(path)
    return path


@pytest.fixture
def hub(root: Path) -> Iterator[HubServer]:
    with serve(root, gated={GATED}, token=TOKEN) as server:
        yield server


def call(
    hub: HubServer, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, HTTPMessage, bytes]:
    """One request on a fresh connection: status, headers, body."""
    connection = HTTPConnection("127.0.0.1", hub.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def get_json(hub: HubServer, path: str) -> Any:
    status, _, body = call(hub, "GET", path)
    assert status == 200, body
    return json.loads(body)


def error_code(hub: HubServer, method: str, path: str, **kwargs: Any) -> tuple[int, str | None]:
    status, headers, _ = call(hub, method, path, **kwargs)
    return status, headers.get("X-Error-Code")


def test_info_names_the_commit_the_files_and_the_configs(hub: HubServer, root: Path) -> None:
    info = get_json(hub, "/api/datasets/openai/gsm8k")
    assert info["id"] == "openai/gsm8k" and info["gated"] is False
    assert info["sha"] == hub.sha("openai/gsm8k") and len(info["sha"]) == 40
    files = {sibling["rfilename"] for sibling in info["siblings"]}
    assert {"README.md", "main/train-00000-of-00001.parquet", "main/test-00000-of-00001.parquet"} <= files
    assert [config["config_name"] for config in info["cardData"]["configs"]] == ["main", "socratic"]
    assert get_json(hub, f"/api/datasets/openai/gsm8k/revision/{info['sha']}")["sha"] == info["sha"]
    assert get_json(hub, "/api/datasets/openai/gsm8k/revision/main")["sha"] == info["sha"]
    blobs = get_json(hub, "/api/datasets/openai/gsm8k?blobs=true")["siblings"]
    parquet = next(s for s in blobs if s["rfilename"] == "main/test-00000-of-00001.parquet")
    data = (root / "datasets/openai/gsm8k/main/test-00000-of-00001.parquet").read_bytes()
    assert parquet["lfs"]["sha256"] == hashlib.sha256(data).hexdigest() and parquet["size"] == len(data)


def test_the_commit_sha_is_a_hash_of_the_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("one\n")
    first = scan_repository(tmp_path, repo_type="dataset", repo_id="org/name")
    assert scan_repository(tmp_path, repo_type="dataset", repo_id="org/name").sha == first.sha
    (tmp_path / "README.md").write_text("two\n")
    assert scan_repository(tmp_path, repo_type="dataset", repo_id="org/name").sha != first.sha


def test_unknown_revisions_and_repositories_get_the_hub_error_codes(hub: HubServer) -> None:
    assert error_code(hub, "GET", "/api/datasets/openai/gsm8k/revision/v1.0") == (404, "RevisionNotFound")
    assert error_code(hub, "GET", "/api/datasets/openai/gsm8k/revision/refs%2Fconvert%2Fparquet") == (
        404,
        "RevisionNotFound",
    )
    assert error_code(hub, "HEAD", f"{GSM8K}/0123abc/README.md") == (404, "RevisionNotFound")
    assert error_code(hub, "GET", "/api/datasets/openai/nope") == (404, "RepoNotFound")
    assert error_code(hub, "HEAD", "/datasets/openai/nope/resolve/main/README.md") == (404, "RepoNotFound")
    assert error_code(hub, "HEAD", "/datasets/gsm8k/resolve/main/README.md") == (404, "RepoNotFound")  # legacy id
    assert error_code(hub, "GET", "/api/models/openai/gsm8k") == (404, "RepoNotFound")  # a dataset, not a model
    assert error_code(hub, "HEAD", f"{GSM8K}/main/gsm8k.py") == (404, "EntryNotFound")
    assert error_code(hub, "GET", "/api/whatever") == (404, None)


def test_tree_lists_a_directory_or_everything_below_it(hub: HubServer, root: Path) -> None:
    sha = hub.sha("openai/gsm8k")
    top = get_json(hub, f"/api/datasets/openai/gsm8k/tree/{sha}?recursive=false&expand=false")
    assert [(e["type"], e["path"]) for e in top] == [
        ("directory", "main"),
        ("directory", "socratic"),
        ("file", ".gitattributes"),
        ("file", "README.md"),
    ]
    readme = (root / "datasets/openai/gsm8k/README.md").read_bytes()
    assert top[3]["oid"] == git_blob_id(readme) and "lfs" not in top[3]
    main = get_json(hub, "/api/datasets/openai/gsm8k/tree/main/main?recursive=false&expand=true")
    assert [e["path"] for e in main] == ["main/test-00000-of-00001.parquet", "main/train-00000-of-00001.parquet"]
    assert main[0]["lfs"]["pointerSize"] > 0 and main[0]["lastCommit"]["id"] == sha
    everything = get_json(hub, "/api/datasets/cais/mmlu/tree/main?recursive=true")
    assert len([e for e in everything if e["type"] == "file"]) == 2 + 3 * len(MMLU_SUBJECTS)
    assert error_code(hub, "GET", "/api/datasets/openai/gsm8k/tree/main/nope") == (404, "EntryNotFound")


def test_paths_info_answers_the_paths_that_exist(hub: HubServer) -> None:
    form = b"paths=README.md&paths=main&paths=nope.txt&expand=false"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = call(hub, "POST", "/api/datasets/openai/gsm8k/paths-info/main", body=form, headers=headers)
    assert status == 200
    assert [(e["type"], e["path"]) for e in json.loads(body)] == [("file", "README.md"), ("directory", "main")]


def test_resolve_sends_the_file_with_the_hub_headers(hub: HubServer, root: Path) -> None:
    sha = hub.sha("openai/gsm8k")
    readme = (root / "datasets/openai/gsm8k/README.md").read_bytes()
    status, headers, body = call(hub, "HEAD", f"{GSM8K}/main/README.md")
    assert (status, body) == (200, b"")
    assert headers["X-Repo-Commit"] == sha
    assert headers["ETag"] == f'"{git_blob_id(readme)}"'
    assert headers["Content-Length"] == str(len(readme))
    assert call(hub, "GET", f"{GSM8K}/{sha}/README.md")[2] == readme

    parquet = (root / "datasets/openai/gsm8k/main/test-00000-of-00001.parquet").read_bytes()
    status, headers, body = call(hub, "GET", f"{GSM8K}/main/main/test-00000-of-00001.parquet")
    assert (status, body) == (200, parquet)
    assert headers["ETag"] == headers["X-Linked-Etag"] == f'"{hashlib.sha256(parquet).hexdigest()}"'
    assert headers["X-Linked-Size"] == str(len(parquet))
    size, tail = len(parquet), {"Range": "bytes=-4"}
    status, headers, body = call(hub, "GET", f"{GSM8K}/main/main/test-00000-of-00001.parquet", headers=tail)
    assert (status, body, headers["Content-Range"]) == (206, b"PAR1", f"bytes {size - 4}-{size - 1}/{size}")
    assert call(hub, "GET", f"{GSM8K}/main/README.md", headers={"Range": "bytes=0-2"})[2] == readme[:3]
    assert call(hub, "GET", f"{GSM8K}/main/README.md", headers={"Range": "bytes=99999-"})[0] == 416


def test_a_gated_repository_opens_only_with_the_token(hub: HubServer, root: Path) -> None:
    path = f"/datasets/{GATED}/resolve/main/gpqa_diamond.csv"
    assert error_code(hub, "GET", path) == (401, "GatedRepo")
    assert error_code(hub, "GET", path, headers={"Authorization": "Bearer hf_wrong"}) == (403, "GatedRepo")
    status, _, body = call(hub, "GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, body) == (200, (root / "datasets/Idavidrein/gpqa/gpqa_diamond.csv").read_bytes())
    assert get_json(hub, f"/api/datasets/{GATED}")["gated"] == "auto"  # its card and file list are public
    gated = [(r.method, r.authorized, r.status) for r in hub.requests if GATED in r.path]
    assert gated == [("GET", False, 401), ("GET", True, 403), ("GET", True, 200), ("GET", False, 200)]
    assert TOKEN not in repr(hub.requests)


def test_requests_are_recorded_in_order_without_header_values(hub: HubServer) -> None:
    assert hub.requests == []
    call(hub, "GET", "/api/datasets/openai/gsm8k/tree/main?recursive=true")
    call(hub, "HEAD", f"{GSM8K}/main/README.md", headers={"Authorization": "Bearer anything"})
    first, second = hub.requests
    assert (first.seq, first.method, first.path, first.query, first.authorized, first.status) == (
        0, "GET", "/api/datasets/openai/gsm8k/tree/main", "recursive=true", False, 200,
    )
    assert (second.seq, second.method, second.authorized) == (1, "HEAD", True)


def test_serve_refuses_a_gated_repository_it_does_not_hold_or_cannot_open(root: Path) -> None:
    with pytest.raises(ValueError, match=r"not under .*\['nobody/nothing'\].*openai/gsm8k"):
        serve(root, gated={"nobody/nothing"}, token=TOKEN)
    with pytest.raises(ValueError, match="need a token"):
        serve(root, gated={GATED})


def test_build_writes_the_real_layouts_from_the_fixture_rows(root: Path) -> None:
    gsm8k = root / "datasets/openai/gsm8k"
    rows = pq.read_table(gsm8k / "main/test-00000-of-00001.parquet").to_pylist()
    fixture = [json.loads(line) for line in (FIXTURES / "data/gsm8k_sample.jsonl").read_text().splitlines()]
    assert rows == fixture
    mmlu = root / "datasets/cais/mmlu"
    card = yaml.safe_load((mmlu / "README.md").read_text().split("---\n")[1])
    assert [config["config_name"] for config in card["configs"]] == list(MMLU_SUBJECTS)
    for config in card["configs"]:
        for entry in config["data_files"]:
            assert len(list(mmlu.glob(entry["path"]))) == 1, entry
    anatomy = pq.read_table(mmlu / "anatomy/dev-00000-of-00001.parquet")
    assert anatomy.column_names == ["question", "subject", "choices", "answer"]
    assert set(anatomy.column("subject").to_pylist()) == {"anatomy"}
    gpqa = root / "datasets/Idavidrein/gpqa"
    with (gpqa / "gpqa_diamond.csv").open(newline="") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ()) == GPQA_COLUMNS
        assert all(row["Question"] and row["Correct Answer"] and row["Incorrect Answer 3"] for row in reader)
    assert (root / "spaces/evaluate-metric/code_eval/code_eval.py").is_file()


@pytest.mark.parametrize("problem", HUMANEVAL_PROBLEMS, ids=lambda p: p["task_id"])
def test_each_humaneval_problem_passes_its_own_test_with_its_solution(problem: dict[str, str]) -> None:
    check = f"\ncheck({problem['entry_point']})\n"
    program = problem["prompt"] + problem["canonical_solution"] + problem["test"] + check
    exec(compile(program, problem["task_id"], "exec"), {})  # raises AssertionError if the problem is wrong
    broken = problem["prompt"] + "    return None\n" + problem["test"] + check
    with pytest.raises(AssertionError):
        exec(compile(broken, problem["task_id"], "exec"), {})


def test_cli_serves_until_sigterm_and_exits_0(root: Path) -> None:
    env = {**os.environ, "HUB_TEST_TOKEN": TOKEN}
    args = [sys.executable, "-m", "tests.hub", "--root", str(root), "--port", "0", "--quiet"]
    process = subprocess.Popen(
        [*args, "--gated", GATED, "--token-env", "HUB_TEST_TOKEN"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        connection = HTTPConnection("127.0.0.1", port, timeout=10)
        authorization = {"Authorization": f"Bearer {TOKEN}"}
        connection.request("GET", f"/datasets/{GATED}/resolve/main/README.md", headers=authorization)
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    refused = subprocess.run(
        [*args, "--gated", GATED], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
    assert refused.returncode == 2 and "--token-env" in refused.stderr
