"""One owner of retries: with the adapter proxy on, a request that always fails costs exactly max_retries + 1
attempts at the endpoint, whichever harness asks, and the harness sees one failure.

The real images run against the fault-injecting endpoint (tests/faults), which answers one chosen request with a
500 every time (``500*`` limited by ``match``) and counts every attempt of every request. The failure is pinned
where each harness records it: lm-eval raises and the run stops (exit code 1, no results.yml); VLMEvalKit records
its failure message as that sample's prediction and scores on, and its per-sample records (the vlmevalkit sample
parser) call that sample an error. The proxy's own record (logs/requests.jsonl) shows the harness asked once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest
import yaml

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from tests.faults.server import FaultRecord, serve_faulty
from tests.integration.conftest import DATA, REPO
from tests.integration.expected import gsm8k_flexible
from tests.integration.harness import run_image

samples = load_parsers(Path(__file__).resolve().parents[2] / "images" / "vlmevalkit").parse_samples

MAX_RETRIES = 2
ATTEMPTS = MAX_RETRIES + 1
"""What the proxy makes of a request that always fails; without one owner each harness attempt multiplies it."""
BACKOFF = "{name: endpoint, config: {backoff_initial: 0.2, backoff_max: 1}}"
CHAIN = f"target.api_endpoint.adapter_config.interceptors=[{{name: response_stats}}, {{name: caching}}, {BACKOFF}]"
LMUDATA = REPO / "tests" / "fixtures" / "lmudata"

GSM8K_LIMIT = 5
GSM8K_CHOSEN = "His sister is 5 years younger"
"""In the second of tests/fixtures/data/gsm8k_sample.jsonl's questions only (not in the few-shot examples)."""
OCRBENCH_CHOSEN = "What is the total on the invoice"
"""OCRBench row 7 (tests/fixtures/lmudata), which the test endpoint answers right (350): 5 of 10 hits become 4."""
VLMEVAL_FAIL_MSG = "Failed to obtain answer via API."
"""vlmeval.api.base.BaseAPI's fail_msg: the prediction of a sample whose every attempt failed."""


def attempts_by_request(records: list[FaultRecord], chosen: str) -> tuple[list[int], list[int]]:
    """Attempts per distinct inference request at the endpoint: (the chosen request's, every other one's)."""
    counts: dict[str, int] = {}
    holding: set[str] = set()
    for record in records:
        if record.attempt > 0:
            counts[record.key] = max(counts.get(record.key, 0), record.attempt)
            if chosen in json.dumps(record.body, ensure_ascii=False):
                holding.add(record.key)
    return [counts[key] for key in holding], [n for key, n in counts.items() if key not in holding]


def proxy_records(output_dir: Path) -> list[dict[str, object]]:
    """The proxy's record of each request the harness made (logs/requests.jsonl)."""
    lines = (output_dir / "logs" / "requests.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_lm_eval_a_persistent_500_is_asked_max_retries_plus_one_times_and_stops_the_run(
        lm_eval_image: str, tmp_path: Path) -> None:
    with serve_faulty("500*", match=GSM8K_CHOSEN) as server:
        args = ["run_eval", "--eval_type", "lm-eval.gsm8k_sample", "--model_id", "test-model",
                "--model_url", f"{server.url}/v1/chat/completions", "--model_type", "chat", "--output_dir",
                RESULTS_DIR, "--overrides", f"config.params.limit_samples={GSM8K_LIMIT},config.params.parallelism=1,"
                                            f"config.params.max_retries={MAX_RETRIES},{CHAIN}"]
        finished = run_image(lm_eval_image, args, output_dir=tmp_path, data_dir=DATA)
        chosen, others = attempts_by_request(server.requests, GSM8K_CHOSEN)
    assert chosen == [ATTEMPTS], finished.logs[-3000:]
    assert others and set(others) == {1}  # lm-eval asks one request at a time: those before the chosen one
    # lm-eval's one attempt got the 500, it raised, and the run stopped without results.
    assert finished.exit_code == 1, finished.logs[-3000:]
    assert "lm-eval exited with code 1" in finished.logs
    assert not (tmp_path / "results.yml").exists()
    failed = [r for r in proxy_records(tmp_path) if r["status"] != 200]
    assert [(r["status"], r["attempts"]) for r in failed] == [(500, ATTEMPTS)]
    harness_log = (tmp_path / "logs" / "harness.log").read_text()
    assert harness_log.count("API request failed with error message") == 1
    assert "500 Server Error" in harness_log


def predictions(engine: docker.DockerClient, image: str, output_dir: Path) -> dict[int, str]:
    """index -> prediction from VLMEvalKit's own predictions file (xlsx), read by the image's pandas."""
    [path] = [p for p in output_dir.rglob("*_OCRBench.xlsx") if not p.is_symlink()]  # links point inside the image
    script = ("import json, sys, pandas; d = pandas.read_excel(sys.argv[1]); "
              "print(json.dumps(dict(zip(map(int, d['index']), map(str, d['prediction'])))))")
    inside = f"{RESULTS_DIR}/{path.relative_to(output_dir)}"
    output = engine.containers.run(image, ["-c", script, inside], entrypoint="python", network_mode="host",
                                   user=f"{os.getuid()}:{os.getgid()}",
                                   volumes={str(output_dir): {"bind": RESULTS_DIR, "mode": "ro"}},
                                   remove=True, stderr=False)
    return {int(k): v for k, v in json.loads(output.decode()).items()}


def test_vlmevalkit_a_persistent_500_is_asked_max_retries_plus_one_times_and_fails_one_sample(
        vlmevalkit_image: str, engine: docker.DockerClient, tmp_path: Path) -> None:
    with serve_faulty("500*", match=OCRBENCH_CHOSEN) as server:
        args = ["run_eval", "--eval_type", "ocrbench", "--model_id", "test-model",
                "--model_url", f"{server.url}/v1/chat/completions", "--model_type", "vlm",
                "--output_dir", RESULTS_DIR, "--overrides", f"config.params.max_retries={MAX_RETRIES},{CHAIN}"]
        finished = run_image(vlmevalkit_image, args, output_dir=tmp_path, data_dir=LMUDATA)
        chosen, others = attempts_by_request(server.requests, OCRBENCH_CHOSEN)
    assert chosen == [ATTEMPTS]
    assert sorted(others) == [1] * 9
    # One sample's prediction is VLMEvalKit's failure message; VLMEvalKit scores it as a miss and goes on. Its
    # sample record is an error, and with config.params.max_error_fraction at its default 0 the run fails (exit 1)
    # after writing results.yml and samples.jsonl, naming the count and where the errors are.
    assert finished.exit_code == 1, finished.logs[-3000:]
    assert "1 of 1 samples of task doc-oriented-vqa ended in an error" in finished.logs, finished.logs[-3000:]
    assert "max_error_fraction=0 allows" in finished.logs and "samples.jsonl" in finished.logs
    predicted = predictions(engine, vlmevalkit_image, tmp_path)
    assert [index for index, text in predicted.items() if VLMEVAL_FAIL_MSG in text] == [7]
    results = ResultsFile.model_validate(yaml.safe_load((tmp_path / "results.yml").read_text()))
    group = results.results.groups["ocrbench"].metrics["accuracy"].scores["accuracy"]
    assert group.value == pytest.approx(4 / 10)
    doc = results.results.tasks["doc-oriented-vqa"].metrics["accuracy"].scores["accuracy"]
    assert (doc.value, doc.stats.count) == (0.0, 1)
    usage = results.usage
    assert usage is not None
    assert (usage.requests, usage.failed_requests, usage.upstream_attempts) == (10, 1, 9 + ATTEMPTS)
    # Per sample: that one is an error with VLMEvalKit's message, not a scored miss; the other nine are scored.
    records = {int(r.sample_id.split("#")[0]): r for r in samples(tmp_path)}
    assert sorted(records) == list(range(10))
    assert (records[7].status, records[7].error, records[7].prediction, records[7].scores) == (
        "error", VLMEVAL_FAIL_MSG, None, {})
    assert all(r.status == "scored" and r.prediction == predicted[i] for i, r in records.items() if i != 7)
    assert sum(r.scores["accuracy"] for r in records.values() if r.status == "scored") == 4


def test_lm_eval_waits_as_long_as_the_proxy_may_take(lm_eval_image: str, tmp_path: Path) -> None:
    """The run says 1 s per answer, the proxy's endpoint config 4 s per attempt: the chosen answer comes after 2 s,
    which lm-eval (rendered with the proxy's budget, not the run's 1 s) waits for, so it is asked once and scored."""
    chain = ("target.api_endpoint.adapter_config.interceptors=[{name: response_stats}, {name: caching}, "
             "{name: endpoint, config: {request_timeout: 4}}]")
    with serve_faulty("timeout*", match=GSM8K_CHOSEN, delay=2.0) as server:
        args = ["run_eval", "--eval_type", "lm-eval.gsm8k_sample", "--model_id", "test-model",
                "--model_url", f"{server.url}/v1/chat/completions", "--model_type", "chat", "--output_dir",
                RESULTS_DIR, "--overrides", f"config.params.limit_samples={GSM8K_LIMIT},config.params.parallelism=1,"
                                            f"config.params.request_timeout=1,{chain}"]
        finished = run_image(lm_eval_image, args, output_dir=tmp_path, data_dir=DATA)
        chosen, others = attempts_by_request(server.requests, GSM8K_CHOSEN)
    assert finished.exit_code == 0, finished.logs[-3000:]
    assert (chosen, sorted(others)) == ([1], [1] * (GSM8K_LIMIT - 1))
    results = ResultsFile.model_validate(yaml.safe_load((tmp_path / "results.yml").read_text()))
    metric = "exact_match__flexible-extract"
    score = results.results.tasks["gsm8k_sample"].metrics[metric].scores[metric]
    assert score.value == pytest.approx(gsm8k_flexible(GSM8K_LIMIT)) and score.stats.count == GSM8K_LIMIT
    # lm-eval asked each request once (with the run's 1 s it gave up on the chosen one and asked again)
    usage = results.usage
    assert usage is not None
    assert (usage.requests, usage.cache_hits, usage.failed_requests) == (GSM8K_LIMIT, 0, 0)
    assert '"timeout": 609' in results.provenance.command  # max_retry_seconds 600 + 4 s per attempt + the 5 s margin
