"""The adapter proxy against scripted upstreams (aiohttp servers in the test): retries, cache, adjustments, stats."""

from __future__ import annotations

import asyncio
import functools
import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from orchestrator.runtime.proxy.endpoint import retry_after_seconds
from orchestrator.runtime.proxy.server import Proxy, ProxyThread, default_processes
from orchestrator.runtime.proxy.upstream_pool import UpstreamPool
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.results import Usage

ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
Script = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def answer(request: web.Request, attempt: int) -> web.StreamResponse:
    return web.json_response(ANSWER)


class Upstream:
    """A scripted endpoint: ``script(request, attempt)`` answers the attempt-th request of each body."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.attempts: dict[str, int] = {}
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        if request.path == "/v1/chat/completions":
            self.bodies.append(json.loads(raw))
            self.headers.append(dict(request.headers))
        self.attempts[raw] = self.attempts.get(raw, 0) + 1
        return await self.script(request, self.attempts[raw])


def run(script: Script, config: dict[str, Any], tmp_path: Path,
        client: Callable[[str], Awaitable[list[tuple[int, Any]]]]) -> tuple[list[tuple[int, Any]], Usage, Upstream]:
    """Start the upstream and the proxy, let ``client(proxy_url)`` talk to it, stop both."""
    upstream = Upstream(script)

    async def main() -> tuple[list[tuple[int, Any]], Usage]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", upstream.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        # One process unless the test asks for more (starting the others takes a Python start-up each).
        proxy = Proxy(f"http://127.0.0.1:{port}/v1/chat/completions",
                      AdapterConfig.model_validate({"processes": 1, **config}),
                      output_dir=tmp_path, timeout=0.5, max_retries=3)
        await proxy.start()
        try:
            replies = await client(f"{proxy.origin}/v1/chat/completions")
        finally:
            await proxy.stop()
            await runner.cleanup()
        return replies, proxy.usage()  # after stop: with the other processes' totals

    replies, usage = asyncio.run(main())
    return replies, usage, upstream


def chat(*bodies: dict[str, Any], headers: dict[str, str] | None = None
         ) -> Callable[[str], Awaitable[list[tuple[int, Any]]]]:
    async def client(url: str) -> list[tuple[int, Any]]:
        replies = []
        async with aiohttp.ClientSession() as session:
            for body in bodies:
                async with session.post(url, json=body, headers=headers) as response:
                    replies.append((response.status, json.loads(await response.read())))
        return replies
    return client


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
FAST_RETRIES = {"interceptors": [{"name": "response_stats"}, {"name": "caching"},
                                 {"name": "endpoint", "config": {"backoff_initial": 0.01, "backoff_max": 0.02}}]}


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_status_is_retried_until_success(status: int, tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response({"error": "busy"}, status=status) if attempt < 3 else web.json_response(ANSWER)

    replies, usage, _ = run(script, FAST_RETRIES, tmp_path, chat(BODY))
    assert replies == [(200, ANSWER)]
    assert usage.requests == 1 and usage.upstream_attempts == 3 and usage.retries == 2
    assert usage.errors == {f"http_{status}": 2}


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        if attempt == 1:
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        return web.json_response(ANSWER)

    replies, usage, _ = run(script, FAST_RETRIES, tmp_path, chat(BODY))
    assert replies[0][0] == 200
    assert usage.latency is not None and usage.latency.max_ms >= 1000


def test_a_redirect_is_not_followed_but_explained(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.Response(status=308, headers={"Location": "https://elsewhere.example/v1/chat/completions"})

    replies, usage, upstream = run(script, FAST_RETRIES, tmp_path, chat(BODY))
    status, body = replies[0]
    assert status == 502 and "redirects (HTTP 308) to https://elsewhere.example/v1/chat/completions" in \
        body["error"]["message"]
    assert sum(upstream.attempts.values()) == 1 and usage.errors == {"redirect": 1}


def test_client_error_fails_fast_with_the_endpoints_message(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response({"error": {"message": "max_tokens too large"}}, status=400)

    replies, usage, upstream = run(script, FAST_RETRIES, tmp_path, chat(BODY))
    assert replies == [(400, {"error": {"message": "max_tokens too large"}})]
    assert sum(upstream.attempts.values()) == 1 and usage.failed_requests == 1


def test_an_answer_over_the_size_limit_is_a_502_that_names_it_and_is_not_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("orchestrator.runtime.proxy.endpoint.UpstreamPool",
                        functools.partial(UpstreamPool, max_response_bytes=1000))  # a small limit, same code

    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response({"choices": [], "padding": "x" * 5000})

    replies, usage, upstream = run(script, FAST_RETRIES, tmp_path, chat(BODY))
    [(status, body)] = replies
    assert status == 502 and "over the proxy's limit of 1000 for one answer" in body["error"]["message"]
    assert sum(upstream.attempts.values()) == 1 and usage.failed_requests == 1


def test_dropped_connection_and_malformed_body_are_retried(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        if attempt == 1:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if attempt == 2:
            return web.Response(text="{not json", content_type="application/json")
        return web.json_response(ANSWER)

    replies, usage, _ = run(script, FAST_RETRIES, tmp_path, chat(BODY))
    assert replies == [(200, ANSWER)]
    assert usage.errors == {"connection_error": 1, "malformed_body": 1}


def test_timeouts_are_retried_and_bounded(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.json_response(ANSWER)

    replies, usage, upstream = run(script, FAST_RETRIES, tmp_path, chat(BODY))
    assert replies[0][0] == 504 and "did not answer" in replies[0][1]["error"]["message"]
    assert sum(upstream.attempts.values()) == 4  # 1 + max_retries=3
    assert usage.errors == {"timeout": 4} and usage.failed_requests == 1


def test_retry_budget_in_time_is_bounded(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response({"error": "down"}, status=503, headers={"Retry-After": "30"})

    config = {"interceptors": [{"name": "endpoint", "config": {"max_retry_seconds": 1}}]}
    replies, _, upstream = run(script, config, tmp_path, chat(BODY))
    assert replies[0][0] == 503 and sum(upstream.attempts.values()) == 1


def test_cache_answers_repeats_and_survives_a_restart(tmp_path: Path) -> None:
    _, first, upstream = run(answer, FAST_RETRIES, tmp_path, chat(BODY, BODY, {**BODY, "temperature": 0.5}))
    assert len(upstream.bodies) == 2 and first.cache_hits == 1
    # A new proxy (a restarted run) on the same output dir asks the endpoint nothing already answered.
    replies, second, upstream = run(answer, FAST_RETRIES, tmp_path, chat({"messages": BODY["messages"], "model": "m"}))
    assert replies == [(200, ANSWER)] and upstream.bodies == [] and second.cache_hits == 1


def test_failed_answers_are_not_cached(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response({"error": "bad"}, status=400)

    run(script, FAST_RETRIES, tmp_path, chat(BODY))
    _, _, upstream = run(answer, FAST_RETRIES, tmp_path, chat(BODY))
    assert len(upstream.bodies) == 1


@pytest.mark.parametrize(("mode", "expected"), [("replace", "NEW"), ("prepend", "NEW\nOLD"), ("append", "OLD\nNEW")])
def test_system_message(mode: str, expected: str, tmp_path: Path) -> None:
    config = {"interceptors": [{"name": "system_message", "config": {"content": "NEW", "mode": mode}}]}
    body = {"model": "m", "messages": [{"role": "system", "content": "OLD"}, {"role": "user", "content": "q"}]}
    _, _, upstream = run(answer, config, tmp_path, chat(body))
    assert upstream.bodies[0]["messages"] == [{"role": "system", "content": expected}, {"role": "user", "content": "q"}]


def test_payload_modifier(tmp_path: Path) -> None:
    config = {"interceptors": [{"name": "payload_modifier", "config": {
        "add": {"seed": 7}, "remove": ["logprobs"], "rename": {"max_tokens": "max_completion_tokens"}}}]}
    _, _, upstream = run(answer, config, tmp_path, chat({**BODY, "logprobs": True, "max_tokens": 5}))
    assert upstream.bodies[0] == {**BODY, "seed": 7, "max_completion_tokens": 5}


def test_reasoning_is_stripped_and_unfinished_counted(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        text = json.loads(await request.text())["messages"][0]["content"]
        content = "<think>long</think>\n42" if text == "a" else "<think>never ends"
        return web.json_response({"choices": [{"index": 0, "message": {
            "role": "assistant", "content": content, "reasoning_content": "secret thoughts"}}]})

    config = {"interceptors": [{"name": "response_stats"}, {"name": "reasoning"}]}
    bodies = [{"model": "m", "messages": [{"role": "user", "content": c}]} for c in ("a", "b")]
    replies, usage, _ = run(script, config, tmp_path, chat(*bodies))
    assert replies[0][1]["choices"][0]["message"] == {"role": "assistant", "content": "42"}
    assert replies[1][1]["choices"][0]["message"]["content"] == ""
    assert usage.unfinished_reasoning == 1


def test_logs_are_bounded_and_stats_recorded_per_request(tmp_path: Path) -> None:
    config = {"interceptors": [{"name": "response_stats"},
                               {"name": "request_logging", "config": {"max_records": 2, "max_bytes": 10}},
                               {"name": "response_logging"}]}
    bodies = [{**BODY, "n_id": i} for i in range(5)]
    _, usage, _ = run(answer, config, tmp_path, chat(*bodies, headers={"Authorization": "Bearer sk-no-log"}))
    requests_log = (tmp_path / "logs" / "proxy_request_bodies.jsonl").read_text().splitlines()
    assert len(requests_log) == 2 and all(json.loads(line)["truncated"] for line in requests_log)
    assert len((tmp_path / "logs" / "proxy_response_bodies.jsonl").read_text().splitlines()) == 5
    records = [json.loads(line) for line in (tmp_path / "logs" / "requests.jsonl").read_text().splitlines()]
    assert [r["id"].rpartition("-r")[2] for r in records] == ["1", "2", "3", "4", "5"]
    assert len({r["id"].rpartition("-r")[0] for r in records}) == 1 and all(r["status"] == 200 for r in records)
    assert [json.loads(line)["id"] for line in requests_log] == [r["id"] for r in records[:2]]  # the same ids
    assert usage.requests == 5 and usage.prompt_tokens == 15 and usage.completion_tokens == 5
    for path in (tmp_path / "logs").iterdir():
        assert "sk-no-log" not in path.read_text()


def test_authorization_is_forwarded_and_other_paths_pass_through(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        if request.path == "/tokenize":
            return web.json_response({"tokens": [1, 2]})
        return web.json_response(ANSWER)

    async def client(url: str) -> list[tuple[int, Any]]:
        origin = url.rsplit("/v1/", 1)[0]
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=BODY, headers={"Authorization": "Bearer k1"}) as first:
                await first.read()
            async with session.post(f"{origin}/tokenize", json={"prompt": "x"}) as tokens:
                return [(tokens.status, json.loads(await tokens.read()))]

    replies, usage, upstream = run(script, {}, tmp_path, client)
    assert replies == [(200, {"tokens": [1, 2]})]
    assert upstream.headers[0]["Authorization"] == "Bearer k1"
    assert usage.requests == 1


def test_hop_by_hop_headers_and_those_connection_names_stay_with_the_proxy(tmp_path: Path) -> None:
    """Other paths get the request's headers but hop-by-hop ones (and any ``Connection`` names); the model's path
    gets only an allowlist (authorization, content type, accept, OpenAI organisation/project)."""
    seen: dict[str, dict[str, str]] = {}

    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        seen[request.path] = {name.lower(): value for name, value in request.headers.items()}
        return web.json_response(ANSWER if request.path.endswith("completions") else {"tokens": [1]})

    async def client(url: str) -> list[tuple[int, Any]]:
        origin = url.rsplit("/v1/", 1)[0]
        headers = {"Authorization": "Bearer k2", "Connection": "keep-alive, X-Hop, x-other", "X-Hop": "1",
                   "X-Other": "2", "X-Kept": "3", "Proxy-Authorization": "Basic cDpx", "TE": "trailers"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{origin}/tokenize", json={"prompt": "x"}, headers=headers) as reply:
                await reply.read()
            async with session.post(url, json=BODY, headers=headers) as reply:
                return [(reply.status, dict(reply.headers))]

    replies, _, _ = run(script, {}, tmp_path, client)
    tokenize, model = seen["/tokenize"], seen["/v1/chat/completions"]
    assert tokenize["x-kept"] == "3" and tokenize["authorization"] == "Bearer k2"
    assert not set(tokenize) & {"x-hop", "x-other", "proxy-authorization", "te"}
    assert model["authorization"] == "Bearer k2" and not set(model) & {"x-kept", "x-hop", "x-other", "te"}
    assert replies[0][0] == 200 and "x-hop" not in {name.lower() for name in replies[0][1]}


def test_concurrent_requests_all_answered(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        return web.json_response(ANSWER)

    async def client(url: str) -> list[tuple[int, Any]]:
        async with aiohttp.ClientSession() as session:
            async def one(i: int) -> tuple[int, Any]:
                async with session.post(url, json={**BODY, "i": i}) as response:
                    return response.status, await response.json()
            return list(await asyncio.gather(*(one(i) for i in range(64))))

    replies, usage, _ = run(script, {}, tmp_path, client)
    assert [status for status, _ in replies] == [200] * 64 and usage.requests == 64
    assert usage.latency is not None and usage.latency.max_ms < 3000


def test_proxy_thread_runs_for_a_block(tmp_path: Path) -> None:
    with ProxyThread(Proxy("http://127.0.0.1:9/v1/chat/completions", AdapterConfig(), output_dir=tmp_path,
                           timeout=0.2, max_retries=0)) as proxy:
        request = urllib.request.Request(f"{proxy.origin}/v1/chat/completions", data=json.dumps(BODY).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 502
    assert proxy.processes == default_processes()
    assert proxy.usage().errors == {"connection_error": 1}  # after the block: all processes' totals


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), ("0.5", 0.5), (None, None), ("soon", None),
                                               ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after_parsing(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


def test_endpoint_must_be_last() -> None:
    with pytest.raises(ValueError, match="endpoint interceptor must come last"):
        AdapterConfig.model_validate({"interceptors": [{"name": "endpoint"}, {"name": "caching"}]})
    assert [i.name for i in AdapterConfig.model_validate({"interceptors": [{"name": "caching"}]}).interceptors] == [
        "caching", "endpoint"]


def test_two_processes_share_the_port_the_cache_and_the_records(tmp_path: Path) -> None:
    bodies = [{**BODY, "i": i} for i in range(24)]

    async def one_connection_each(url: str) -> list[tuple[int, Any]]:
        async def one(body: dict[str, Any]) -> tuple[int, Any]:
            async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:  # new connection
                return response.status, await response.json()
        first = await asyncio.gather(*(one(body) for body in bodies))
        await asyncio.sleep(0.05)  # answers are committed just after they are sent, at the end of the loop's turn
        again = await asyncio.gather(*(one(body) for body in bodies))  # answered before, by either process
        return [*first, *again]

    replies, usage, upstream = run(answer, {"processes": 2}, tmp_path, one_connection_each)
    assert [status for status, _ in replies] == [200] * 48
    assert sorted(upstream.attempts.values()) == [1] * 24  # the second round came from the cache
    assert usage.requests == 48 and usage.cache_hits == 24 and usage.prompt_tokens == 48 * 3
    records = [json.loads(line) for line in (tmp_path / "logs" / "requests.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert len(records) == 48 and len(set(ids)) == 48
    assert {i.split("-")[0] for i in ids} == {"model0", "model1"}  # both processes answered
    assert {p.name for p in (tmp_path / "cache").iterdir() if p.suffix == ".sqlite"} == {
        "responses.sqlite", "responses.1.sqlite"}


def test_a_process_that_does_not_start_leaves_the_others_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("orchestrator.runtime.proxy.server.sys.executable", "/bin/false")  # the other process dies
    replies, usage, _ = run(answer, {"processes": 2}, tmp_path, chat(BODY, {**BODY, "n": 2}))
    assert [status for status, _ in replies] == [200, 200] and usage.requests == 2
    assert "process 1/2 did not start (exit code 1); the others carry on" in capsys.readouterr().err
