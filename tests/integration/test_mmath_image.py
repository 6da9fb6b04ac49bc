"""The mmath image, run as a user would: `docker run IMAGE ls|run_eval ...` against the test endpoint's scripted
replies (images/mmath/fixtures/script.json) on the first real problems of the package's English and Chinese data.

Expected scores, from the script and the problems (AIME 2024 answers 204, 113, 371, 385; AIME 2025's first, 70):
- mmath_en, limit 31 (AIME 2024's 30 problems, then AIME 2025's first): problem 0 answers \\dfrac{408}{2}, which
  only math-verify's normalisation makes equal to 204 (right); 1 answers 113 (right); 2 answers 370 (wrong); 3 and
  the 26 problems no rule matches get text with no number and no box (unscored, counted wrong); AIME 2025's first
  answers 70 (right). So AIME2024 2/30, AIME2025 1/1, mmath's average of the two (2/30 + 1) / 2, 3/31 overall.
- mmath_zh, limit 3: problem 0 in Chinese (right), 1 in English (right), 2 English thinking then a Chinese answer
  (wrong): accuracy 2/3; answers in Chinese 2/3 (0 and 2), thinking in Chinese 1/3 (0 only; a reply without
  </think> is its own thinking, as mmath's calculate_lcr.py counts it).
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from orchestrator.runtime.intervals import clopper_pearson
from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord
from tests.endpoint.script import parse_script
from tests.endpoint.server import EndpointServer, serve
from tests.integration.harness import run_image

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("EVALS_MMATH_IMAGE", "evals/mmath:latest")
SCRIPT = Path(__file__).resolve().parents[2] / "images" / "mmath" / "fixtures" / "script.json"
TASKS = [f"mmath_{lang}" for lang in ("en", "zh", "ar", "es", "fr", "ja", "ko", "pt", "th", "vi")]
KEY = "sk-mmath-integration-7"


@pytest.fixture(scope="module")
def image() -> str:
    try:
        docker.from_env().images.get(IMAGE)
    except docker.errors.DockerException as err:
        pytest.fail(f"{IMAGE} is not available ({err}); run `scripts/build-image.sh mmath`")
    return IMAGE


@pytest.fixture
def scripted() -> Iterator[EndpointServer]:
    with serve(script=parse_script(json.loads(SCRIPT.read_text(encoding="utf-8")))) as server:
        yield server


class Prefixed:
    """A loopback server at ``/proxy/...`` that records each request's path, query and Authorization header and
    forwards it, without the prefix and the query, to the test endpoint (which serves no path prefix)."""

    def __init__(self, upstream: str) -> None:
        self.seen: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.seen.append((self.path, self.headers.get("Authorization")))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0].removeprefix("/proxy")
                request = urllib.request.Request(upstream + path, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, data = answer.status, answer.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_eval(task: str, url: str, overrides: str, *extra: str) -> list[str]:
    return ["run_eval", "--eval_type", task, "--model_id", "test-model", "--model_url", url, "--model_type", "chat",
            "--output_dir", RESULTS_DIR, "--overrides", overrides, *extra]


def results_of(output_dir: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((output_dir / "results.yml").read_text()))


def samples_of(output_dir: Path) -> list[SampleRecord]:
    return [SampleRecord.model_validate_json(line) for line in (output_dir / SAMPLES_FILE).read_text().splitlines()]


def value(results: ResultsFile, task: str, metric: str, score: str) -> float:
    return results.results.tasks[task].metrics[metric].scores[score].value


def test_labels_and_both_ls_forms(image: str, tmp_path: Path) -> None:
    labels = docker.from_env().images.get(image).labels
    assert (labels["evals.harness"], labels["evals.harness.version"]) == ("mmath", "26.3")
    assert json.loads(labels["evals.tasks"]) == TASKS
    for args in (["ls"], ["core_evals_mmath", "ls"]):
        finished = run_image(image, args, output_dir=tmp_path)
        assert finished.exit_code == 0, finished.logs
        assert [line for line in finished.logs.splitlines() if line.startswith("* ")] == [
            f"* {task} (in mmath)" for task in TASKS]


def test_english_scores_through_the_proxy_with_a_trailing_slash_and_a_query(
        image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    url = f"{scripted.url}/v1/chat/completions/?tenant=a"
    finished = run_image(image, run_eval("mmath_en", url, "config.params.limit_samples=31,"
                                         "config.params.max_new_tokens=512,config.params.parallelism=4",
                                         "--api_key_name", "MMATH_TEST_KEY", "--offline"),
                         output_dir=tmp_path, env={"MMATH_TEST_KEY": KEY})
    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    assert value(results, "AIME2024", "accuracy", "accuracy") == pytest.approx(2 / 30)
    assert value(results, "AIME2025", "accuracy", "accuracy") == 1.0
    group = results.results.groups["MMATH"].metrics
    assert group["accuracy"].scores["accuracy"].value == pytest.approx((2 / 30 + 1) / 2)
    assert group["accuracy"].scores["micro_accuracy"].value == pytest.approx(3 / 31)
    assert group["language_consistency"].scores["answering_lcr"].value == 1.0
    aime = results.results.tasks["AIME2024"]
    assert aime.samples is not None and aime.samples.model_dump() == {"scored": 3, "unscored": 27, "error": 0}
    ci = aime.metrics["accuracy"].scores["accuracy"].stats.ci95
    assert ci is not None and (ci.lower, ci.upper) == pytest.approx(clopper_pearson(2, 30))
    records = samples_of(tmp_path)
    assert len(records) == 31
    first = next(r for r in records if r.sample_id.startswith("0#"))
    assert (first.target, first.scores["accuracy"], first.status) == ("204", 1.0, "scored")
    assert first.prediction is not None and "\\dfrac{408}{2}" in first.prediction
    # Every request reached the proxy's endpoint path exactly (trailing slash and query kept): each record is
    # joined to the proxy's record of its request, and the proxy forwarded all 31 with the key.
    assert all(len(r.request_ids) == 1 for r in records)
    assert results.usage is not None and results.usage.requests == 31
    assert {r.header("Authorization") for r in scripted.requests if r.kind == "inference"} == {f"Bearer {KEY}"}
    bodies = [r.body for r in scripted.requests if r.kind == "inference"]
    assert all(b["max_tokens"] == 512 and b["temperature"] == 0.6 and b["top_p"] == 0.95 for b in bodies)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


def test_chinese_scores_direct_to_a_path_prefix_with_a_query_and_no_key(
        image: str, scripted: EndpointServer, tmp_path: Path) -> None:
    prefixed = Prefixed(scripted.url)
    try:
        url = f"{prefixed.url}/proxy/v1/chat/completions?deployment=a%20b"
        finished = run_image(image, run_eval("mmath_zh", url, "config.params.limit_samples=3,"
                                             "config.params.max_new_tokens=512,"
                                             "target.api_endpoint.adapter_config.enabled=false"),
                             output_dir=tmp_path)
    finally:
        prefixed.close()
    assert finished.exit_code == 0, finished.logs
    assert prefixed.seen == [("/proxy/v1/chat/completions?deployment=a%20b", None)] * 3
    results = results_of(tmp_path)
    assert value(results, "AIME2024", "accuracy", "accuracy") == pytest.approx(2 / 3)
    assert value(results, "AIME2024", "language_consistency", "answering_lcr") == pytest.approx(2 / 3)
    assert value(results, "AIME2024", "language_consistency", "thinking_lcr") == pytest.approx(1 / 3)
    records = samples_of(tmp_path)
    assert [(r.sample_id.split("#")[0], r.scores) for r in records] == [
        ("0", {"accuracy": 1.0, "thinking_lcr": 1.0, "answering_lcr": 1.0}),
        ("1", {"accuracy": 1.0, "thinking_lcr": 0.0, "answering_lcr": 0.0}),
        ("2", {"accuracy": 0.0, "thinking_lcr": 0.0, "answering_lcr": 1.0})]


def test_an_unknown_language_is_exit_2_before_any_request(image: str, scripted: EndpointServer,
                                                          tmp_path: Path) -> None:
    finished = run_image(image, run_eval("mmath_en", f"{scripted.url}/v1/chat/completions",
                                         "config.params.extra.language=de"), output_dir=tmp_path)
    assert finished.exit_code == 2, finished.logs
    assert "config.params.extra.language must be one of en, zh" in finished.logs
    assert "Traceback" not in finished.logs
    assert not scripted.requests
