"""The aiperf harness folder: its framework renders our command and never lets the proxy cache, run_aiperf.py builds
AIPerf's arguments, the parser reads real aiperf 0.13.0 output.

tests/fixtures/aiperf_output/ holds real runs of images/aiperf/run_aiperf.py (aiperf 0.13.0) against tests/endpoint:
stream/ (chat, streamed, --delay 0.2, concurrency 1 and 4, 8 requests each) and errors/ (completions, concurrency 2,
10 requests, against tests/faults with the plan 500*:0.5, which failed 3 of them); only their
profile_export_aiperf.json and profile_export.jsonl are kept, paths rewritten to the image's. all_failed/: the image
against the reference endpoint, streamed chat, which it refuses (400 for each of 4 requests): records only.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.runtime.render import TemplateFailedError, render_command
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "images" / "aiperf"
OUTPUT = ROOT / "tests" / "fixtures" / "aiperf_output"
TASKS = {"aiperf_chat_stream": ("chat", True), "aiperf_chat": ("chat", False),
         "aiperf_completions_stream": ("completions", True), "aiperf_completions": ("completions", False)}


def resolve(eval_type: str, **kwargs: object) -> Evaluation:
    model_type = TASKS[eval_type][0]
    values: dict[str, object] = {"eval_type": eval_type, "model_id": "org/model", "model_type": model_type,
                                 "model_url": f"http://h:9/proxy/v1/{model_type}/completions?tenant=a",
                                 "output_dir": "/tmp/out"} | kwargs
    framework = load_model(FrameworkDefinition, HARNESS / "framework.yml")
    return resolve_run(framework, RunRequest(**values))  # type: ignore[arg-type]


def argv(evaluation: Evaluation) -> list[str]:
    return shlex.split(render_command(evaluation).replace("\\\n", " "))


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def export(folder: str, concurrency: int) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (OUTPUT / folder / f"concurrency_{concurrency}" / "profile_export_aiperf.json").read_text(encoding="utf-8"))
    return data


# ---- framework.yml -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_profiles_its_endpoint_type_streamed_or_not(task: str) -> None:
    endpoint_type, streamed = TASKS[task]
    args = argv(resolve(task, api_key_name="MY_KEY"))
    assert args[:2] == ["python", "/opt/evals/aiperf/run_aiperf.py"]
    assert option(args, "--url") == f"http://h:9/proxy/v1/{endpoint_type}/completions?tenant=a"
    assert (option(args, "--endpoint-type"), "--streaming" in args) == (endpoint_type, streamed)
    assert option(args, "--api-key-var") == "MY_KEY"
    assert (option(args, "--concurrency"), option(args, "--input-tokens"), option(args, "--output-tokens")) == (
        "1,4", "128", "128")
    assert option(args, "--tokenizer") == "/opt/evals/aiperf/tokenizer"
    assert option(args, "--request-count") is None  # run_aiperf.py's default: 4 x the concurrency, at least 8


def test_lengths_concurrencies_and_request_counts_come_from_the_run_config() -> None:
    args = argv(resolve("aiperf_chat", overrides="config.params.extra.concurrency=[2,16],"
                                                  "config.params.max_new_tokens=7,"
                                                  "config.params.extra.input_tokens=300,"
                                                  "config.params.extra.request_count=5,config.params.temperature=0.5,"
                                                  "config.params.extra.ignore_eos=true"))
    assert (option(args, "--concurrency"), option(args, "--output-tokens"), option(args, "--input-tokens"),
            option(args, "--request-count")) == ("2,16", "7", "300", "5")
    assert " ".join(args).count("--extra-input") == 2 and "ignore_eos" in args and "temperature" in args
    limited = argv(resolve("aiperf_chat", overrides="config.params.extra.concurrency=3,config.params.limit_samples=2,"
                                                    "config.params.extra.request_count=5"))
    assert (option(limited, "--concurrency"), option(limited, "--request-count")) == ("3", "2")


def test_the_default_chain_has_no_cache_and_no_retries() -> None:
    evaluation = resolve("aiperf_chat_stream")
    adapter = evaluation.target.api_endpoint.adapter_config
    assert adapter is not None and [i.name for i in adapter.interceptors] == ["response_stats", "endpoint"]
    assert evaluation.config.params.max_retries == 0


@pytest.mark.parametrize("chain", [
    "[{name: caching}]",
    "[{name: response_stats}, {name: caching, config: {cache_dir: /cache/x}}, {name: endpoint}]",
])
def test_a_chain_with_caching_cannot_render(chain: str) -> None:
    with pytest.raises(TemplateFailedError, match="caching interceptor must not be on"):
        render_command(resolve("aiperf_chat", overrides=f"target.api_endpoint.adapter_config.interceptors={chain}"))


def test_a_disabled_cache_or_no_proxy_renders() -> None:
    argv(resolve("aiperf_chat", overrides="target.api_endpoint.adapter_config.interceptors="
                                          "[{name: caching, enabled: false}]"))
    argv(resolve("aiperf_chat", overrides="target.api_endpoint.adapter_config.enabled=false"))


@pytest.mark.parametrize(("override", "message"), [
    ("config.params.extra.concurrency=[0]", "extra.concurrency must be a list of positive integers"),
    ("config.params.extra.concurrency=[]", "extra.concurrency must be a list of positive integers"),
    ("config.params.extra.concurrency=[1.5]", "extra.concurrency must be a list of positive integers"),
    ("config.params.extra.concurrency=four", "extra.concurrency must be a list of positive integers"),
    ("config.params.extra.tokenizer=gpt2", "extra.tokenizer must be the absolute path of a local tokenizer folder"),
    ("config.params.extra.input_tokens=0", "extra.input_tokens must be a positive integer"),
])
def test_bad_settings_are_one_line_config_errors(override: str, message: str) -> None:
    with pytest.raises(TemplateFailedError, match=message):
        render_command(resolve("aiperf_chat", overrides=override))


# ---- run_aiperf.py (the parts that need no aiperf) ---------------------------------------------------------


def run_aiperf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_aiperf", HARNESS / "run_aiperf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_aiperf_is_asked_exactly_the_url_given() -> None:
    module = run_aiperf()
    assert module.split_url("http://h:9/proxy/v1/chat/completions/?a=1&b=c") == (
        "http://h:9", "/proxy/v1/chat/completions/?a=1&b=c")
    assert module.split_url("https://h/v1/completions") == ("https://h", "/v1/completions")
    with pytest.raises(SystemExit, match="must be an http"):
        module.split_url("h:9/v1")


def test_profile_arguments_per_concurrency(tmp_path: Path) -> None:
    module = run_aiperf()
    args = module.parser().parse_args(["--url", "http://h:9/v1/chat/completions", "--model", "m", "--endpoint-type",
                                       "chat", "--streaming", "--concurrency", "1,16", "--input-tokens", "50",
                                       "--output-tokens", "20", "--tokenizer", "/t", "--output-dir", str(tmp_path)])
    assert args.concurrency == [1, 16]
    first = module.profile_args(args, 1, tmp_path / "concurrency_1")
    assert (option(first, "--url"), option(first, "--custom-endpoint")) == ("http://h:9", "/v1/chat/completions")
    assert (option(first, "--request-count"), option(first, "--isl"), option(first, "--osl")) == ("8", "50", "20")
    assert {"--streaming", "--use-server-token-count", "--use-legacy-max-tokens", "--no-server-metrics"} <= set(first)
    assert "--api-key" not in first  # the child adds the key from its environment
    assert option(module.profile_args(args, 16, tmp_path), "--request-count") == "64"
    with pytest.raises(SystemExit, match="positive integers"):
        module.concurrencies("1,0")


def test_the_hub_is_unreachable_and_the_offline_switches_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = run_aiperf().child_env("MY_KEY")
    assert "HF_HUB_OFFLINE" not in env and env["HF_ENDPOINT"] == "http://127.0.0.1:9"
    assert env["AIPERF_EVALS_KEY_VAR"] == "MY_KEY" and "MY_KEY" not in env


# ---- the parser --------------------------------------------------------------------------------------------


def test_a_task_per_concurrency_with_aiperf_s_numbers() -> None:
    result = load_parsers(HARNESS).parse(OUTPUT / "stream")
    assert set(result.tasks) == {"concurrency_1", "concurrency_4"}
    for concurrency in (1, 4):
        data = export("stream", concurrency)
        metrics = result.tasks[f"concurrency_{concurrency}"].metrics
        rps, tps = data["request_throughput"], data["output_token_throughput"]
        assert metrics["request_throughput"].scores["requests_per_second"].value == rps["avg"]  # type: ignore[index]
        assert metrics["output_token_throughput"].scores["tokens_per_second"].value == tps["avg"]  # type: ignore[index]
        for name in ("request_latency", "time_to_first_token", "inter_token_latency"):
            for score in ("p50", "p90", "p99"):
                assert metrics[name].scores[score].value == data[name][score]  # type: ignore[index]
            assert metrics[name].scores["mean"].value == data[name]["avg"]  # type: ignore[index]
            assert metrics[name].scores["p50"].stats.count == 8
        assert {k: s.value for k, s in metrics["requests"].scores.items()} == {
            "succeeded": 8, "failed": 0, "error_rate": 0}


def test_the_configured_delay_is_the_measured_latency() -> None:
    """Recorded against tests/endpoint --delay 0.2: the median request took 200 ms, within 10%."""
    result = load_parsers(HARNESS).parse(OUTPUT / "stream")
    for task in result.tasks.values():
        assert task.metrics["request_latency"].scores["p50"].value == pytest.approx(200, rel=0.1)
    assert result.tasks["concurrency_4"].metrics["request_throughput"].scores["requests_per_second"].value > (
        3 * result.tasks["concurrency_1"].metrics["request_throughput"].scores["requests_per_second"].value)


def test_errors_are_counted_apart_from_the_latencies() -> None:
    """errors/: 3 of 10 requests got a 500. AIPerf's own records say which; the latency is over the other 7."""
    records = [json.loads(line) for line in (OUTPUT / "errors" / "concurrency_2" / "profile_export.jsonl")
               .read_text(encoding="utf-8").splitlines()]
    failed = [r for r in records if r.get("error")]
    assert (len(records), len(failed)) == (10, 3) and {r["error"]["code"] for r in failed} == {500}
    metrics = load_parsers(HARNESS).parse(OUTPUT / "errors").tasks["concurrency_2"].metrics
    requests = metrics["requests"].scores
    assert (requests["succeeded"].value, requests["failed"].value, requests["error_rate"].value) == (7, 3, 0.3)
    assert metrics["request_latency"].scores["p50"].stats.count == 7
    latencies = sorted(r["metrics"]["request_latency"]["value"] for r in records if not r.get("error"))
    assert metrics["request_latency"].scores["mean"].value == pytest.approx(sum(latencies) / 7)
    assert "time_to_first_token" not in metrics  # not streamed


def test_no_samples_and_missing_output_is_a_parse_error(tmp_path: Path) -> None:
    parser = load_parsers(HARNESS)
    assert parser.parse_samples(OUTPUT / "stream") == []
    with pytest.raises(ResultsParseError, match=r"no concurrency_<N>/profile_export_aiperf\.json"):
        parser.parse(tmp_path)
    shutil.copytree(OUTPUT / "errors", tmp_path / "bad")
    (tmp_path / "bad" / "concurrency_2" / "profile_export_aiperf.json").write_text('{"request_count": {"avg": "x"}}')
    with pytest.raises(ResultsParseError, match=r"request_count\.avg is 'x', not a number"):
        parser.parse(tmp_path / "bad")


def test_an_endpoint_that_only_errors_is_measured_as_such(tmp_path: Path) -> None:
    """all_failed/: the reference endpoint refused all 4 streamed requests (400); AIPerf wrote its records only."""
    metrics = load_parsers(HARNESS).parse(OUTPUT / "all_failed").tasks["concurrency_1"].metrics
    assert {k: s.value for k, s in metrics["requests"].scores.items()} == {
        "succeeded": 0, "failed": 4, "error_rate": 1}
    assert metrics["request_throughput"].scores["requests_per_second"].value == 0
    assert "request_latency" not in metrics
    module = run_aiperf()
    assert module.all_failed(OUTPUT / "all_failed" / "concurrency_1")
    assert not module.all_failed(OUTPUT / "errors" / "concurrency_2")  # it has an export
    mixed = tmp_path / "concurrency_2"
    mixed.mkdir()
    lines = (OUTPUT / "errors" / "concurrency_2" / "profile_export.jsonl").read_text(encoding="utf-8")
    (mixed / "profile_export.jsonl").write_text(lines, encoding="utf-8")
    assert not module.all_failed(mixed)
    with pytest.raises(ResultsParseError, match="not every request failed"):
        load_parsers(HARNESS).parse(tmp_path)
