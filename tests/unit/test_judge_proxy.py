"""A judge's requests pass a proxy of their own: retried, cached, counted apart from the model's (run_eval in-process
with the real proxies, the fake harness asking a stand-in model and a stand-in judge on loopback)."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.runtime import cli as runtime_cli
from orchestrator.runtime.proxy.adjust import MASKED_VARS
from orchestrator.runtime.proxy.server import Proxy, ProxyThread
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.results import ResultsFile
from tests.endpoint.server import EndpointServer, serve
from tests.faults.server import FaultyServer, serve_faulty

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "fixtures" / "frameworks" / "fake-lm-eval" / "framework.yml"
QUESTIONS = 3


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the fake framework names its harness by a path relative to the repository
    monkeypatch.setenv("JUDGE_KEY", "judge-secret-4711")
    monkeypatch.delenv(MASKED_VARS, raising=False)  # run_eval sets it for the proxies: restored afterwards


def run_eval(tmp_path: Path, model: EndpointServer, judge: dict[str, Any], *, out: Path | None = None,
             adapter: dict[str, Any] | None = None, dry_run: bool = False) -> tuple[int, Path]:
    """run_eval of the fake harness: QUESTIONS to the model, each answer judged by ``judge``."""
    out = out or tmp_path / "out"
    endpoint: dict[str, Any] = {"adapter_config": adapter} if adapter else {}
    doc = {"config": {"params": {"max_retries": 2, "extra": {"questions": QUESTIONS, "judge": judge}}},
           "target": {"api_endpoint": endpoint}}
    (tmp_path / "run.yml").write_text(yaml.safe_dump(doc))
    argv = ["--framework", str(FAKE), "run_eval", "--eval_type", "gsm8k", "--model_id", "m", "--model_type", "chat",
            "--model_url", f"{model.url}/v1/chat/completions", "--output_dir", str(out),
            "--run_config", str(tmp_path / "run.yml"), *(["--dry_run"] if dry_run else [])]
    return runtime_cli.main(argv), out


def judge_of(server: FaultyServer | EndpointServer, **more: Any) -> dict[str, Any]:
    return {"model": "judge-model", "url": f"{server.url}/v1/chat/completions", "api_key": "JUDGE_KEY", **more}


def results_of(out: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((out / "results.yml").read_text()))


def records(out: Path, role: str | None = None) -> list[dict[str, Any]]:
    """The request records of every proxy of the runs in ``out`` (logs/requests.jsonl), or of one role's."""
    every = [json.loads(line) for line in (out / "logs" / "requests.jsonl").read_text().splitlines()]
    return [record for record in every if role is None or record["role"] == role]


def test_a_flaky_judge_is_retried_cached_and_counted_apart_from_the_model(tmp_path: Path) -> None:
    with serve(model="m") as model, serve_faulty("503", model="judge-model") as judge:
        code, out = run_eval(tmp_path, model, judge_of(judge))
        assert code == 0, (out / "logs" / "harness.log").read_text()[-2000:]
        first = results_of(out)
        asked = list(judge.requests)
        again, _ = run_eval(tmp_path, model, judge_of(judge))
        second = results_of(out)
        assert again == 0
        assert judge.requests == asked  # the second run in the same output dir asked the judge nothing
    log = (out / "logs" / "harness.log").read_text()
    assert all(f"judge says: The answer is {n}." in log for n in range(QUESTIONS))  # every 503 was retried
    assert judge.counts == {"503": QUESTIONS, "ok": QUESTIONS}
    assert {next(v for k, v in r.headers.items() if k.lower() == "authorization") for r in asked} == {
        "Bearer judge-secret-4711"}
    assert len([r for r in model.requests if r.kind == "inference"]) == QUESTIONS  # the first run only
    # the model's usage is the model's alone; the judge's is reported under its role
    assert first.usage is not None
    assert (first.usage.requests, first.usage.upstream_attempts, first.usage.retries) == (QUESTIONS, QUESTIONS, 0)
    assert set(first.usage_by_role) == {"judge"}
    judged = first.usage_by_role["judge"]
    assert (judged.requests, judged.upstream_attempts, judged.retries, judged.failed_requests) == (
        QUESTIONS, 2 * QUESTIONS, QUESTIONS, 0)
    assert judged.errors == {"http_503": QUESTIONS} and judged.completion_tokens > 0
    assert second.usage is not None and second.usage.cache_hits == QUESTIONS
    assert (second.usage_by_role["judge"].cache_hits, second.usage_by_role["judge"].upstream_attempts) == (
        QUESTIONS, 0)
    # its own request records (in the run's one file, by role) and cache
    judge_records = records(out, "judge")
    assert [(r["attempts"], r["cache_hit"]) for r in judge_records] == [(2, False)] * QUESTIONS + [
        (0, True)] * QUESTIONS
    assert [(r["status"], r["error"], r["errors"]) for r in judge_records[:QUESTIONS]] == [
        (200, None, ["http_503"])] * QUESTIONS  # retried, then answered
    assert len(records(out, "model")) == 2 * QUESTIONS
    ids = [r["id"] for r in records(out)]
    assert len(set(ids)) == len(ids) == 4 * QUESTIONS  # two proxies, two runs: no id twice
    assert list((out / "cache" / "judge").glob("responses*.sqlite"))
    # the harness was pointed at the judge's proxy, not at the judge
    assert judge.url not in first.provenance.command and model.url not in first.provenance.command
    assert "--judge-url http://127.0.0.1:" in first.provenance.command
    assert first.config.params.extra["judge"]["url"] == f"{judge.url}/v1/chat/completions"  # as configured
    for path in out.rglob("*"):
        if path.is_file():
            assert b"judge-secret-4711" not in path.read_bytes(), path


def test_the_judges_own_adapter_config_is_its_chain(tmp_path: Path) -> None:
    """No retries in the judge's chain: its 503 reaches the harness, which stops; nothing is cached."""
    adapter = {"interceptors": [{"name": "response_stats"}, {"name": "endpoint", "config": {"max_retries": 0}}]}
    with serve(model="m") as model, serve_faulty("503", model="judge-model") as judge:
        code, out = run_eval(tmp_path, model, judge_of(judge, adapter_config=adapter))
    assert code == 1
    assert "fake harness: http://127.0.0.1:" in (out / "logs" / "harness.log").read_text()
    assert "answered 503" in (out / "logs" / "harness.log").read_text()
    assert [(r["status"], r["attempts"], r["error"]) for r in records(out, "judge")] == [(503, 1, "http_503")]
    assert not (out / "cache" / "judge").exists()
    assert not (out / "results.yml").exists()


@pytest.mark.parametrize(("judge_adapter", "model_adapter", "proxied"), [
    (None, None, {"model", "judge"}),
    ({"enabled": False}, None, {"model"}),
    (None, {"enabled": False}, set()),
])
def test_dry_run_shows_which_endpoints_are_proxied(judge_adapter: dict[str, Any] | None,
                                                   model_adapter: dict[str, Any] | None, proxied: set[str],
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(model="m") as model:
        judge = judge_of(model, **({"adapter_config": judge_adapter} if judge_adapter else {}))
        code, out = run_eval(tmp_path, model, judge, adapter=model_adapter, dry_run=True)
    printed = capsys.readouterr().out
    assert code == 0 and not out.exists()
    command = printed.partition("Rendered command:")[2]
    judge_url = "http://127.0.0.1:JUDGE_PROXY_PORT/v1/chat/completions" if "judge" in proxied else judge["url"]
    assert f"--judge-url {judge_url}" in command
    assert ("http://127.0.0.1:PROXY_PORT/v1/chat/completions" in command) == ("model" in proxied)
    assert ("The judge's proxy: the harness talks to http://127.0.0.1:JUDGE_PROXY_PORT" in printed) == (
        "judge" in proxied)
    if "judge" in proxied:
        assert f"forwards to {judge['url']} through: response_stats -> caching -> endpoint" in printed


def test_a_judge_url_that_is_not_one_is_refused_in_one_line(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with serve(model="m") as model:
        code, out = run_eval(tmp_path, model, {"model": "j", "url": "judge.example.com/v1"}, dry_run=True)
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert "config.params.extra.judge.url: 'judge.example.com/v1' is not an http(s) URL" in err
    assert len(err.splitlines()) == 1


def test_a_judges_proxy_in_two_processes_keeps_to_its_own_files(tmp_path: Path) -> None:
    """Its other process is told the role too: records and cache are the judge's, whichever process answered."""
    def ask(url: str, number: int) -> int:
        body = json.dumps({"model": "judge-model", "messages": [{"role": "user", "content": f"Question: {number}"}]})
        request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:  # a new connection each
            return int(answer.status)

    with serve(model="judge-model") as judge:
        proxy = Proxy(f"{judge.url}/v1/chat/completions", AdapterConfig(processes=2), output_dir=tmp_path,
                      timeout=10, max_retries=0, role="judge")
        with ProxyThread(proxy) as running, ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda n: ask(f"{running.origin}/v1/chat/completions", n), range(24)))
    assert statuses == [200] * 24 and proxy.usage().requests == 24
    ids = [r["id"] for r in records(tmp_path)]
    assert len(set(ids)) == 24 and {i.split("-")[0] for i in ids} == {"judge0", "judge1"}  # both processes answered
    assert {r["role"] for r in records(tmp_path)} == {"judge"}
    assert {p.name for p in (tmp_path / "cache" / "judge").glob("*.sqlite")} == {
        "responses.sqlite", "responses.1.sqlite"}
    assert not list((tmp_path / "cache").glob("*.sqlite"))
    assert sorted(p.name for p in (tmp_path / "logs").glob("proxy_judge_*_bodies.jsonl")) == [
        "proxy_judge_request_bodies.jsonl", "proxy_judge_response_bodies.jsonl"]
