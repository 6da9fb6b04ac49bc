"""The adapter proxy inside the real lm-eval image, against the fault-injecting endpoint (tests/faults)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import docker
import pytest
import yaml

from orchestrator.schema.container import DATA_DIR, RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from tests.faults.server import serve_faulty
from tests.integration.conftest import DATA
from tests.integration.expected import gsm8k_flexible
from tests.integration.harness import run_image

LIMIT = 5
# The proxy gives each attempt 2 s (the harness keeps its own, longer timeout) and backs off briefly.
CHAIN = ("target.api_endpoint.adapter_config.interceptors=[{name: response_stats}, {name: caching}, "
         "{name: endpoint, config: {request_timeout: 2, backoff_initial: 0.2, backoff_max: 1}}]")


def args(url: str, chain: str = CHAIN) -> list[str]:
    return ["run_eval", "--eval_type", "lm-eval.gsm8k_sample", "--model_id", "test-model",
            "--model_url", f"{url}/v1/chat/completions", "--model_type", "chat", "--output_dir", RESULTS_DIR,
            "--overrides", f"config.params.limit_samples={LIMIT},config.params.parallelism=1,{chain}"]


def results_of(output_dir: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((output_dir / "results.yml").read_text()))


def flexible(results: ResultsFile) -> float:
    metric = "exact_match__flexible-extract"
    return results.results.tasks["gsm8k_sample"].metrics[metric].scores[metric].value


def test_every_sample_is_scored_through_faults(lm_eval_image: str, tmp_path: Path) -> None:
    plan = "429:0.2,500+502:0.2,503:0.2,timeout:0.1,drop:0.1,malformed:0.1,reset:0.1"
    with serve_faulty(plan, seed=3, delay=5.0) as server:
        finished = run_image(lm_eval_image, args(server.url), output_dir=tmp_path, data_dir=DATA)
        counts = server.counts
    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    assert flexible(results) == pytest.approx(gsm8k_flexible(LIMIT))
    assert results.results.tasks["gsm8k_sample"].metrics["exact_match__flexible-extract"].scores[
        "exact_match__flexible-extract"].stats.count == LIMIT
    usage = results.usage
    assert usage is not None
    # The harness saw each of its requests answered once; the proxy absorbed every fault.
    assert (usage.requests, usage.failed_requests) == (LIMIT, 0)
    faults = sum(n for kind, n in counts.items() if kind != "ok")
    assert faults >= 1 and usage.retries == faults
    assert counts["ok"] == LIMIT


def test_killed_run_resumes_without_asking_again(lm_eval_image: str, engine: docker.DockerClient,
                                                tmp_path: Path) -> None:
    # Every first attempt is held 1.5 s (under the proxy's 10 s), so 5 sequential requests take long
    # enough to kill the run midway.
    chain = ("target.api_endpoint.adapter_config.interceptors=[{name: response_stats}, {name: caching}, "
             "{name: endpoint, config: {request_timeout: 10}}]")
    with serve_faulty("timeout", seed=1, delay=1.5) as server:
        records = tmp_path / "logs" / "requests.jsonl"
        tmp_path.mkdir(exist_ok=True)
        container = engine.containers.run(
            lm_eval_image, args(server.url, chain),
            detach=True, network_mode="host", user=f"{os.getuid()}:{os.getgid()}",
            volumes={str(tmp_path): {"bind": RESULTS_DIR, "mode": "rw"},
                     str(DATA): {"bind": DATA_DIR, "mode": "ro"}},
            labels={"evals.test": "kill-resume"},
        )
        try:
            deadline = time.monotonic() + 180
            while not (records.exists() and len(records.read_text().splitlines()) >= 2):
                container.reload()
                assert container.status == "running" and time.monotonic() < deadline, container.logs().decode()[-2000:]
                time.sleep(0.2)
            container.kill()
        finally:
            container.remove(force=True)
        answered_before = len(records.read_text().splitlines())
        assert not (tmp_path / "results.yml").exists()

        finished = run_image(lm_eval_image, args(server.url, chain), output_dir=tmp_path, data_dir=DATA)
        attempts = server.attempts

    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    assert flexible(results) == pytest.approx(gsm8k_flexible(LIMIT))
    # No answered request was asked again: only the one in flight at the kill may have a second attempt.
    assert len(attempts) == LIMIT
    assert sum(attempts.values()) <= LIMIT + 1
    assert answered_before >= 2
