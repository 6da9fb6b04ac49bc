"""The lm-eval image, run as a user would: `docker run IMAGE ls|run_eval ...` against the test endpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest
import yaml

from orchestrator.runtime.intervals import clopper_pearson
from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile, Score
from orchestrator.schema.samples import SAMPLES_FILE, SampleRecord
from tests.endpoint.server import EndpointServer
from tests.integration.conftest import DATA
from tests.integration.expected import arc_scores, gsm8k_flexible, mmlu_acc
from tests.integration.harness import run_image

REMOTE_TOKENIZER = "config.params.extra.tokenizer_backend=remote,config.params.extra.tokenized_requests=true"
REQUIRED_TASKS = ["mmlu", "mmlu_pro", "gsm8k", "arc_challenge", "hellaswag", "truthfulqa_mc2", "winogrande", "ifeval",
                  "bbh", "humaneval", "mbpp"]


def results_of(output_dir: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((output_dir / "results.yml").read_text()))


def score(results: ResultsFile, task: str, metric: str) -> float:
    return results.results.tasks[task].metrics[metric].scores[metric].value


def samples_of(output_dir: Path) -> list[SampleRecord]:
    return [SampleRecord.model_validate_json(line) for line in (output_dir / SAMPLES_FILE).read_text().splitlines()]


def counts(results: ResultsFile, task: str) -> dict[str, int]:
    samples = results.results.tasks[task].samples
    assert samples is not None
    return samples.model_dump()


def assert_binomial_ci(results: ResultsFile, task: str, metric: str) -> None:
    """The score has the exact binomial interval of its samples' 0/1 scores."""
    found: Score = results.results.tasks[task].metrics[metric].scores[metric]
    assert found.stats.ci95 is not None and found.stats.ci95.method == "exact_binomial"
    assert found.stats.count is not None
    hits = round(found.value * found.stats.count)
    assert (found.stats.ci95.lower, found.stats.ci95.upper) == pytest.approx(clopper_pearson(hits, found.stats.count))


def eval_args(task: str, endpoint: EndpointServer, model_type: str, overrides: str) -> list[str]:
    """run_eval arguments against the test endpoint's chat or completions route."""
    route = "chat/completions" if model_type == "chat" else "completions"
    return ["run_eval", "--eval_type", task, "--model_id", endpoint.model, "--model_url", f"{endpoint.url}/v1/{route}",
            "--model_type", model_type, "--output_dir", RESULTS_DIR, "--overrides", overrides]


def inference(endpoint: EndpointServer) -> list[dict[str, object]]:
    return [r.body for r in endpoint.requests if r.kind == "inference"]


def test_image_labels_user_and_size(engine: docker.DockerClient, lm_eval_image: str) -> None:
    image = engine.images.get(lm_eval_image)
    labels = image.labels
    assert labels["evals.harness"] == "lm-eval"
    assert labels["evals.harness.version"] == "0.4.13"
    assert set(REQUIRED_TASKS) <= set(json.loads(labels["evals.tasks"]))
    assert labels["evals.framework"]
    assert image.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
    assert image.attrs["Size"] < 1_000_000_000


def test_ls_lists_tasks(lm_eval_image: str, tmp_path: Path) -> None:
    finished = run_image(lm_eval_image, ["ls"], output_dir=tmp_path)
    assert finished.exit_code == 0, finished.logs
    lines = finished.logs.splitlines()
    assert lines[0] == "Available tasks:"
    for task in REQUIRED_TASKS:
        assert f"* {task} (in lm-eval)" in lines


def test_gsm8k_chat_scores_requests_sampling_and_auth(lm_eval_image: str, endpoint: EndpointServer,
                                                      tmp_path: Path) -> None:
    limit = 5
    finished = run_image(lm_eval_image, [
        "run_eval", "--eval_type", "lm-eval.gsm8k_sample", "--model_id", endpoint.model,
        "--model_url", f"{endpoint.url}/v1/chat/completions", "--model_type", "chat",
        "--api_key_name", "TEST_API_KEY", "--output_dir", RESULTS_DIR,
        "--overrides", f"config.params.limit_samples={limit},config.params.temperature=0.3,"
                       "config.params.top_p=0.9,config.params.max_new_tokens=64,config.params.parallelism=2",
    ], output_dir=tmp_path, data_dir=DATA, env={"TEST_API_KEY": "sk-integration-123"})
    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    assert score(results, "gsm8k_sample", "exact_match__flexible-extract") == pytest.approx(gsm8k_flexible(limit))
    assert score(results, "gsm8k_sample", "exact_match__strict-match") == 0.0
    assert results.provenance.harness_version == "0.4.13"
    # One sample record per question: the chat messages sent, the endpoint's answer, both filters' scores.
    records = samples_of(tmp_path)
    assert [(r.task, r.sample_id.split("#")[0], r.repeat, r.status) for r in records] == [
        ("gsm8k_sample", str(i), 0, "scored") for i in range(limit)]
    assert all(isinstance(r.input, list) and r.input[-1].role == "user" for r in records)
    assert all(r.prediction is not None and r.prediction.startswith("The answer is ") for r in records)
    assert sum(r.scores["exact_match__flexible-extract"] for r in records) / limit == pytest.approx(
        gsm8k_flexible(limit))
    assert counts(results, "gsm8k_sample") == {"scored": limit, "unscored": 0, "error": 0}
    assert_binomial_ci(results, "gsm8k_sample", "exact_match__flexible-extract")
    assert_binomial_ci(results, "gsm8k_sample", "exact_match__strict-match")
    # Each record is joined to the proxy's record of its one request (by the messages as lm-eval sent them).
    assert all(len(r.request_ids) == 1 for r in records)
    assert len({r.request_ids[0] for r in records}) == limit
    # Every request went through the adapter proxy, which accounted for it.
    assert results.usage is not None
    assert (results.usage.requests, results.usage.cache_hits, results.usage.failed_requests) == (limit, 0, 0)
    assert results.usage.prompt_tokens > 0 and results.usage.latency is not None
    assert "127.0.0.1:" in results.provenance.command and endpoint.url not in results.provenance.command
    assert len((tmp_path / "logs" / "requests.jsonl").read_text().splitlines()) == limit
    requests = inference(endpoint)
    assert len(requests) == limit
    for body in requests:
        assert isinstance(body, dict)
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 64)
        assert body["model"] == endpoint.model
    auth = {r.header("Authorization") for r in endpoint.requests if r.kind == "inference"}
    assert auth == {"Bearer sk-integration-123"}
    for path in tmp_path.rglob("*"):
        assert path.stat().st_uid == os.getuid(), path
        if path.is_file():
            assert "sk-integration-123" not in path.read_text(errors="replace"), path
    assert (tmp_path / "logs" / "harness.log").stat().st_size > 0


def test_arc_challenge_loglikelihood_through_completions(lm_eval_image: str, endpoint: EndpointServer,
                                                         tmp_path: Path) -> None:
    limit = 5
    finished = run_image(lm_eval_image, eval_args(
        "lm-eval.arc_challenge_sample", endpoint, "completions",
        f"config.params.limit_samples={limit},{REMOTE_TOKENIZER}"), output_dir=tmp_path, data_dir=DATA)
    assert finished.exit_code == 0, finished.logs
    acc, acc_norm = arc_scores(limit)
    results = results_of(tmp_path)
    assert score(results, "arc_challenge_sample", "acc") == pytest.approx(acc)
    assert score(results, "arc_challenge_sample", "acc_norm") == pytest.approx(acc_norm)
    assert len(inference(endpoint)) == 4 * limit
    # One record per question (not per choice); the prediction is the most likely choice's text.
    records = samples_of(tmp_path)
    assert len(records) == limit and {r.status for r in records} == {"scored"}
    assert sum(r.scores["acc"] for r in records) / limit == pytest.approx(acc)
    assert all(isinstance(r.input, str) and r.prediction for r in records)
    assert counts(results, "arc_challenge_sample") == {"scored": limit, "unscored": 0, "error": 0}
    assert_binomial_ci(results, "arc_challenge_sample", "acc")
    assert_binomial_ci(results, "arc_challenge_sample", "acc_norm")


def test_no_extracted_answer_is_an_unscored_sample(lm_eval_image: str, endpoint: EndpointServer,
                                                   tmp_path: Path) -> None:
    # 3 tokens (bytes) of "The answer is N.": "The", no number for either filter to extract.
    limit = 3
    overrides = f"config.params.limit_samples={limit},config.params.max_new_tokens=3"
    finished = run_image(lm_eval_image, eval_args("lm-eval.gsm8k_sample", endpoint, "chat", overrides),
                         output_dir=tmp_path, data_dir=DATA)
    assert finished.exit_code == 0, finished.logs
    records = samples_of(tmp_path)
    assert [(r.status, r.prediction) for r in records] == [("unscored", "The")] * limit
    assert all(r.error and "[invalid]" in r.error for r in records)
    results = results_of(tmp_path)
    assert counts(results, "gsm8k_sample") == {"scored": 0, "unscored": limit, "error": 0}
    assert_binomial_ci(results, "gsm8k_sample", "exact_match__flexible-extract")


def test_humaneval_runs_offline_on_shipped_data(lm_eval_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    finished = run_image(lm_eval_image, [*eval_args("humaneval_offline", endpoint, "completions",
                                                    "config.params.limit_samples=2"), "--offline"], output_dir=tmp_path)
    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    metric = results.results.tasks["humaneval_offline"].metrics["pass@1__create_test"]
    value = metric.scores["pass@1__create_test"]
    # The endpoint's fixed sentence is not Python: no test passes.
    assert value.value == 0.0
    assert value.stats.count == 2
    assert len(inference(endpoint)) == 2
    records = samples_of(tmp_path)
    assert [(r.status, r.prediction) for r in records] == [("scored", "This is a deterministic test response.")] * 2
    assert all(len(r.request_ids) == 1 for r in records)  # joined by the completion prompt as sent
    assert counts(results, "humaneval_offline") == {"scored": 2, "unscored": 0, "error": 0}
    assert_binomial_ci(results, "humaneval_offline", "pass@1__create_test")


def test_bad_input_in_container_is_exit_2(lm_eval_image: str, tmp_path: Path) -> None:
    finished = run_image(lm_eval_image, [
        "run_eval", "--eval_type", "gsm8", "--model_id", "m", "--model_url", "http://127.0.0.1:9/v1/completions",
        "--model_type", "completions", "--output_dir", RESULTS_DIR,
    ], output_dir=tmp_path)
    assert finished.exit_code == 2
    assert "unknown task 'gsm8'" in finished.logs and "gsm8k" in finished.logs
    assert list(tmp_path.iterdir()) == []


def test_ifbench_runs_offline_through_chat(lm_eval_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    finished = run_image(lm_eval_image, [*eval_args("ifbench", endpoint, "chat", "config.params.limit_samples=2"),
                                         "--offline"], output_dir=tmp_path)
    assert finished.exit_code == 0, finished.logs
    results = results_of(tmp_path)
    metrics = results.results.tasks["ifbench"].metrics
    strict = metrics["prompt_level_strict_acc"].scores["prompt_level_strict_acc"]
    # The endpoint's one fixed sentence follows none of these instructions.
    assert strict.value == 0.0 and strict.stats.count == 2
    assert len(inference(endpoint)) == 2
    records = samples_of(tmp_path)
    assert len(records) == 2 and {r.status for r in records} == {"scored"}
    assert counts(results, "ifbench") == {"scored": 2, "unscored": 0, "error": 0}
    assert_binomial_ci(results, "ifbench", "prompt_level_loose_acc")
    # Instruction-level accuracy is a mean over instructions, not samples: no per-sample score, no interval.
    assert metrics["inst_level_strict_acc"].scores["inst_level_strict_acc"].stats.ci95 is None


def test_mmlu_format_sample_with_fewshot(lm_eval_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    finished = run_image(lm_eval_image, eval_args("lm-eval.mmlu_sample", endpoint, "completions",
                                                  f"{REMOTE_TOKENIZER},config.params.extra.num_fewshot=2"),
                         output_dir=tmp_path, data_dir=DATA)
    assert finished.exit_code == 0, finished.logs
    assert score(results_of(tmp_path), "mmlu_sample", "acc") == pytest.approx(mmlu_acc(5))
    prompts = [decode(body["prompt"]) for body in inference(endpoint) if isinstance(body, dict)]
    assert len(prompts) == 4 * 5
    assert all("How many sides does a hexagon have?" in prompt for prompt in prompts)  # the 2 dev shots


def decode(prompt: object) -> str:
    """A prompt sent as byte-level token ids (the test endpoint's tokenizer), or as text."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], list):
        prompt = prompt[0]
    if isinstance(prompt, list):
        return bytes(token for token in prompt if isinstance(token, int) and token < 256).decode(errors="replace")
    return str(prompt)
