"""The aiperf image, run as a user would: `docker run IMAGE ls|run_eval ...` against the test endpoint with a known
delay (tests/endpoint --delay), the fault-injecting endpoint (tests/faults) and a run config that asks for caching.

Expected numbers, from the endpoint's settings: every request to an endpoint that holds each answer 1 s takes
1 s (plus some ms of the proxy, AIPerf and the loopback, more on a loaded machine), so the measured request latency
and, streamed, the time to first token (the whole answer comes after the delay) are 1000 ms within 10%; at
concurrency 4 four requests are held at once, so the throughput is several times that at concurrency 1 (at most
1 / 1 s = 1 request/s).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from tests.endpoint.server import EndpointServer, serve
from tests.faults.server import serve_faulty
from tests.integration.harness import run_image

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("EVALS_AIPERF_IMAGE", "evals/aiperf:latest")
TASKS = ["aiperf_chat_stream", "aiperf_chat", "aiperf_completions_stream", "aiperf_completions"]
KEY = "sk-aiperf-integration-3"
DELAY = 1.0
SMALL = "config.params.max_new_tokens=16,config.params.extra.input_tokens=32"


@pytest.fixture(scope="module")
def image() -> str:
    try:
        docker.from_env().images.get(IMAGE)
    except docker.errors.DockerException as err:
        pytest.fail(f"{IMAGE} is not available ({err}); run `scripts/build-image.sh aiperf`")
    return IMAGE


@pytest.fixture
def slow() -> Iterator[EndpointServer]:
    with serve(delay=DELAY) as server:
        yield server


def run_eval(task: str, url: str, model_type: str, overrides: str, *extra: str) -> list[str]:
    return ["run_eval", "--eval_type", task, "--model_id", "test-model", "--model_url", url, "--model_type",
            model_type, "--output_dir", RESULTS_DIR, "--overrides", f"{SMALL},{overrides}", "--offline", *extra]


def results_of(output_dir: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((output_dir / "results.yml").read_text()))


def score(results: ResultsFile, task: str, metric: str, name: str) -> float:
    return results.results.tasks[task].metrics[metric].scores[name].value


def test_labels_and_both_ls_forms(image: str, tmp_path: Path) -> None:
    labels = docker.from_env().images.get(image).labels
    assert (labels["evals.harness"], labels["evals.harness.version"]) == ("aiperf", "0.13.0")
    assert json.loads(labels["evals.tasks"]) == TASKS
    for args in (["ls"], ["core_evals_aiperf", "ls"]):
        finished = run_image(image, args, output_dir=tmp_path)
        assert finished.exit_code == 0, finished.logs
        assert [line for line in finished.logs.splitlines() if line.startswith("* ")] == [
            f"* {task} (in aiperf)" for task in TASKS]


def test_streamed_chat_measures_the_configured_delay_through_the_proxy(
        image: str, slow: EndpointServer, tmp_path: Path) -> None:
    finished = run_image(image, run_eval("aiperf_chat_stream", f"{slow.url}/v1/chat/completions", "chat",
                                         "config.params.extra.concurrency=[1,4],config.params.limit_samples=8",
                                         "--api_key_name", "AIPERF_TEST_KEY"),
                         output_dir=tmp_path, env={"AIPERF_TEST_KEY": KEY})
    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    assert set(results.results.tasks) == {"concurrency_1", "concurrency_4"}
    for task in ("concurrency_1", "concurrency_4"):
        assert score(results, task, "request_latency", "p50") == pytest.approx(DELAY * 1000, rel=0.1)
        assert score(results, task, "time_to_first_token", "p50") == pytest.approx(DELAY * 1000, rel=0.1)
        assert score(results, task, "requests", "succeeded") == 8
        assert score(results, task, "requests", "failed") == 0
    one = score(results, "concurrency_1", "request_throughput", "requests_per_second")
    # at most one request per delay; AIPerf's own time between requests (tens of ms, more on a loaded machine)
    # counts in its benchmark duration
    assert 0.6 / DELAY < one <= 1.02 / DELAY
    assert score(results, "concurrency_4", "request_throughput", "requests_per_second") > 2 * one
    # 16 tokens asked per request, the endpoint gives 16: output tokens/s = 16 x requests/s
    assert score(results, "concurrency_1", "output_token_throughput", "tokens_per_second") == pytest.approx(16 * one)
    # every request went through the proxy, none from a cache, each with the key
    assert results.usage is not None and (results.usage.requests, results.usage.cache_hits) == (16, 0)
    inference = [r for r in slow.requests if r.kind == "inference"]
    assert len(inference) == 16 and {r.header("Authorization") for r in inference} == {f"Bearer {KEY}"}
    assert all(r.body["stream"] is True and r.body["max_tokens"] == 16 for r in inference)
    assert len((tmp_path / "logs" / "requests.jsonl").read_text().splitlines()) == 16
    assert len((tmp_path / "concurrency_4" / "profile_export.jsonl").read_text().splitlines()) == 8
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


def test_completions_whole_answers_straight_to_the_endpoint(image: str, slow: EndpointServer, tmp_path: Path) -> None:
    finished = run_image(image, run_eval("aiperf_completions", f"{slow.url}/v1/completions", "completions",
                                         "config.params.extra.concurrency=[2],config.params.limit_samples=4,"
                                         "target.api_endpoint.adapter_config.enabled=false"), output_dir=tmp_path)
    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    assert score(results, "concurrency_2", "request_latency", "p50") == pytest.approx(DELAY * 1000, rel=0.1)
    assert "time_to_first_token" not in results.results.tasks["concurrency_2"].metrics
    inference = [r for r in slow.requests if r.kind == "inference"]
    assert [r.path for r in inference] == ["/v1/completions"] * 4
    assert all(r.body["stream"] is False and isinstance(r.body["prompt"], str) for r in inference)


def test_errors_are_counted_not_averaged_into_latency(image: str, tmp_path: Path) -> None:
    """Half the requests (by the plan's hash of each body) always get a 500; no retries (max_retries 0)."""
    with serve_faulty("500*:0.5", seed=3) as faulty:
        finished = run_image(image, run_eval("aiperf_chat", f"{faulty.url}/v1/chat/completions", "chat",
                                             "config.params.extra.concurrency=[2],config.params.limit_samples=12"),
                             output_dir=tmp_path)
        failed = faulty.counts["500"]
    assert finished.exit_code == 0, finished.logs
    assert 0 < failed < 12
    results = results_of(tmp_path)
    assert score(results, "concurrency_2", "requests", "failed") == failed
    assert score(results, "concurrency_2", "requests", "succeeded") == 12 - failed
    assert score(results, "concurrency_2", "requests", "error_rate") == pytest.approx(failed / 12)
    assert results.results.tasks["concurrency_2"].metrics["request_latency"].scores["p50"].stats.count == 12 - failed
    assert results.usage is not None and results.usage.failed_requests == failed and results.usage.retries == 0


def test_a_run_config_that_asks_for_caching_is_exit_2_before_any_request(
        image: str, slow: EndpointServer, tmp_path: Path) -> None:
    finished = run_image(image, run_eval("aiperf_chat", f"{slow.url}/v1/chat/completions", "chat",
                                         "target.api_endpoint.adapter_config.interceptors=[{name: caching}]"),
                         output_dir=tmp_path)
    assert finished.exit_code == 2, finished.logs
    assert "caching interceptor must not be on" in finished.logs
    assert "Traceback" not in finished.logs
    assert not slow.requests
