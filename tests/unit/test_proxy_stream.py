"""Streamed answers (``stream: true``, server-sent events) through the adapter proxy: relayed chunk by chunk as the
endpoint sends them, cached whole and replayed, first-byte and idle timeouts, usage from the final chunk."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from orchestrator.runtime.proxy.server import Proxy
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.results import Usage

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "stream_options": {"include_usage": True}}


def event(data: dict[str, Any] | str) -> bytes:
    return b"data: " + (data if isinstance(data, str) else json.dumps(data)).encode() + b"\n\n"


FIRST = event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]})
SECOND = event({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]})
USAGE = event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}})
DONE = event("[DONE]")
WHOLE = FIRST + SECOND + USAGE + DONE

Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


class Upstream:
    """A scripted streaming endpoint: ``script(request, attempt)``, attempts counted per body."""

    def __init__(self, script: Handler) -> None:
        self.script = script
        self.attempts: dict[str, int] = {}
        self.gate = asyncio.Event()  # what the script waits for between chunks, when it waits
        self.finished = asyncio.Event()  # set when a script has written its last chunk

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        self.attempts[raw] = self.attempts.get(raw, 0) + 1
        return await self.script(request, self.attempts[raw])

    @property
    def total(self) -> int:
        return sum(self.attempts.values())


async def sse(request: web.Request, *chunks: bytes | float | asyncio.Event, gzip: bool = False) -> web.StreamResponse:
    """An event-stream answer: bytes are written (and flushed), a float is slept, an Event is waited for."""
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    if gzip:
        response.enable_compression(force=web.ContentCoding.gzip)
    await response.prepare(request)
    for chunk in chunks:
        if isinstance(chunk, bytes):
            await response.write(chunk)
        elif isinstance(chunk, asyncio.Event):
            await chunk.wait()
        else:
            await asyncio.sleep(chunk)
    await response.write_eof()
    return response


Client = Callable[[str, Upstream, Proxy], Awaitable[Any]]


def run(script: Handler, tmp_path: Path, client: Client, endpoint: dict[str, Any] | None = None,
        chain: list[dict[str, Any]] | None = None) -> tuple[Any, Usage, Upstream]:
    """Start the upstream and a one-process proxy, run ``client(url, upstream, proxy)``, stop both."""

    async def main() -> tuple[Any, Usage, Upstream]:
        upstream = Upstream(script)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", upstream.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        config = {"processes": 1, "interceptors": chain or [
            {"name": "response_stats"}, {"name": "response_logging"}, {"name": "caching"},
            {"name": "endpoint", "config": {"backoff_initial": 0.01, "backoff_max": 0.02, **(endpoint or {})}}]}
        proxy = Proxy(f"http://127.0.0.1:{port}/v1/chat/completions", AdapterConfig.model_validate(config),
                      output_dir=tmp_path, timeout=5, max_retries=2)
        await proxy.start()
        try:
            result = await client(f"{proxy.origin}/v1/chat/completions", upstream, proxy)
        finally:
            await proxy.stop()
            await runner.cleanup()
        return result, proxy.usage(), upstream

    return asyncio.run(main())


async def read_all(session: aiohttp.ClientSession, url: str, body: dict[str, Any] = BODY) -> tuple[int, str, bytes]:
    async with session.post(url, json=body) as response:
        return response.status, response.headers.get("content-type", ""), await response.read()


def records(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "logs" / "requests.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_chunks_are_relayed_as_they_arrive_then_cached_whole_and_replayed(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return await sse(request, FIRST, upstream_gate[0], SECOND, USAGE, DONE)

    upstream_gate: list[asyncio.Event] = []

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> tuple[bytes, bytes, bytes, str]:
        upstream_gate.append(upstream.gate)
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=BODY) as response:
                assert response.status == 200
                assert response.headers["content-type"] == "text/event-stream"
                first = await asyncio.wait_for(response.content.readany(), 5)
                # the endpoint has not sent the rest: it waits for the gate, which only opens now
                assert not upstream.gate.is_set()
                upstream.gate.set()
                rest = await response.read()
            _, content_type, replay = await read_all(session, url)
        return first, rest, replay, content_type

    (first, rest, replay, content_type), usage, upstream = run(script, tmp_path, client)
    assert first == FIRST
    assert first + rest == WHOLE
    assert replay == WHOLE and content_type == "text/event-stream"  # a hit: the whole stream at once
    assert upstream.total == 1
    assert usage.requests == 2 and usage.cache_hits == 1 and usage.failed_requests == 0
    assert usage.prompt_tokens == 14 and usage.completion_tokens == 4  # from the final chunk, hit included
    streamed, hit = records(tmp_path)
    assert streamed["ttft_ms"] <= streamed["latency_ms"] and "ttft_ms" not in hit
    logged = [json.loads(line) for line in (tmp_path / "logs" / "proxy_response_bodies.jsonl").read_text().splitlines()]
    assert logged[0]["body"] == WHOLE.decode() and logged[0]["streamed"] is True


def test_time_to_first_chunk_is_the_endpoints_not_the_whole_answers(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return await sse(request, FIRST, 0.8, SECOND, USAGE, DONE)

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> tuple[float, float]:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.post(url, json=BODY) as response:
                await response.content.readany()
                first = time.monotonic() - started
                await response.read()
                whole = time.monotonic() - started
        return first, whole

    (first, whole), _, _ = run(script, tmp_path, client)
    assert whole >= 0.8
    assert first < 0.5  # had the proxy buffered the answer, the first chunk would come after 0.8 s


def test_a_first_byte_timeout_is_retried_and_the_harness_sees_one_whole_stream(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        if attempt == 1:  # the head at once, the first event too late
            return await sse(request, 1.5, FIRST, SECOND, USAGE, DONE)
        return await sse(request, FIRST, SECOND, USAGE, DONE)

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> tuple[int, str, bytes]:
        async with aiohttp.ClientSession() as session:
            return await read_all(session, url)

    (status, _, body), usage, upstream = run(script, tmp_path, client,
                                              endpoint={"first_byte_timeout": 0.3, "idle_timeout": 5})
    assert status == 200 and body == WHOLE
    assert upstream.total == 2 and usage.upstream_attempts == 2 and usage.errors == {"timeout": 1}
    assert usage.failed_requests == 0


def test_a_retryable_error_before_the_stream_is_retried(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        if attempt == 1:
            return web.json_response({"error": {"message": "busy"}}, status=503)
        return await sse(request, FIRST, SECOND, USAGE, DONE)

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> tuple[int, str, bytes]:
        async with aiohttp.ClientSession() as session:
            return await read_all(session, url)

    (status, _, body), usage, upstream = run(script, tmp_path, client)
    assert status == 200 and body == WHOLE and upstream.total == 2 and usage.errors == {"http_503": 1}


def test_an_idle_stream_is_cut_off_the_harness_sees_it_incomplete_and_nothing_is_cached(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return await sse(request, FIRST, 2.0, SECOND, USAGE, DONE)

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> list[str]:
        outcomes = []
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                try:
                    await read_all(session, url)
                    outcomes.append("complete")
                except aiohttp.ClientPayloadError:
                    outcomes.append("incomplete")
        return outcomes

    outcomes, usage, upstream = run(script, tmp_path, client, endpoint={"first_byte_timeout": 5, "idle_timeout": 0.3})
    assert outcomes == ["incomplete", "incomplete"]
    assert upstream.total == 2  # the broken stream was not cached
    assert usage.failed_requests == 2 and usage.errors == {"stream_idle_timeout": 2}
    assert [r["errors"] for r in records(tmp_path)] == [["stream_idle_timeout"]] * 2


def test_a_client_leaving_mid_stream_drops_the_endpoints_connection(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return await sse(request, FIRST, gates[0], SECOND, USAGE, DONE)

    gates: list[asyncio.Event] = []

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> tuple[int, int, int]:
        gates.append(upstream.gate)
        async with aiohttp.ClientSession() as session:
            response = await session.post(url, json=BODY)
            await response.content.readany()
            response.close()  # the harness gives up on it
        upstream.gate.set()  # the endpoint sends the rest, which the proxy notices nobody wants
        pool = proxy._endpoint.pool if proxy._endpoint else None
        assert pool is not None
        for _ in range(100):
            if pool._busy == 0 and not pool._open:
                break
            await asyncio.sleep(0.02)
        return pool._busy, len(pool._open), len(pool._idle)

    (busy, open_, idle), usage, upstream = run(script, tmp_path, client)
    assert (busy, open_, idle) == (0, 0, 0)
    assert usage.errors == {"client_gone": 1} and usage.failed_requests == 1
    assert not (tmp_path / "cache").exists() or upstream.total == 1


def test_a_gzip_stream_is_relayed_decompressed(tmp_path: Path) -> None:
    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return await sse(request, FIRST, 0.05, SECOND, USAGE, DONE, gzip=True)

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> tuple[int, str, bytes]:
        async with aiohttp.ClientSession() as session:
            return await read_all(session, url)

    (status, _, body), usage, _ = run(script, tmp_path, client)
    assert status == 200 and body == WHOLE and usage.prompt_tokens == 7


def test_an_endpoint_that_answers_a_stream_request_with_json_is_relayed_whole(tmp_path: Path) -> None:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
              "usage": {"prompt_tokens": 7, "completion_tokens": 2}}

    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response(answer)

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> list[bytes]:
        async with aiohttp.ClientSession() as session:
            return [(await read_all(session, url))[2] for _ in range(2)]

    bodies, usage, upstream = run(script, tmp_path, client)
    assert [json.loads(b) for b in bodies] == [answer, answer]
    assert upstream.total == 1 and usage.prompt_tokens == 14


@pytest.mark.parametrize("raw, expected", [
    (WHOLE, {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}),
    (FIRST + SECOND + DONE, None),
    (b"data: {not json\n\n" + USAGE + b"data: {\"usage\": null}\n\n", {"prompt_tokens": 7, "completion_tokens": 2,
                                                                        "total_tokens": 9}),
])
def test_usage_comes_from_the_last_event_that_has_one(raw: bytes, expected: dict[str, int] | None) -> None:
    from orchestrator.runtime.proxy.stats import stream_usage  # noqa: PLC0415

    assert stream_usage(raw) == expected


# Reasoning stripped from streamed answers: the same text as for whole answers, however the stream is split.

from orchestrator.runtime.proxy.adjust import Reasoning, StreamedReasoning  # noqa: E402
from orchestrator.runtime.proxy.types import ProxyResponse  # noqa: E402
from orchestrator.schema.adapter import ReasoningConfig  # noqa: E402

TEXTS = [
    "<think>2+2 is 4, surely</think>\n\nThe answer is 4.",
    "The answer is 4.",  # no reasoning at all
    "thinking without an opening tag</think> The answer is 4.",  # templates that put <think> in the prompt
    "<think>never finishes",
    "<think>a</think>",  # nothing after it
    "",
]


def chat_stream(text: str, piece: int, *, completions: bool = False) -> bytes:
    pieces = [text[i:i + piece] for i in range(0, len(text), piece)] or [""]
    events = []
    for n, part in enumerate(pieces):
        last = n == len(pieces) - 1
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop" if last else None}
        if completions:
            choice["text"] = part
        else:
            choice["delta"] = {"content": part, "reasoning_content": "hidden"}
        events.append(event({"id": "x", "choices": [choice]}))
    return b"".join(events) + USAGE + DONE


def relayed_text(raw: bytes) -> str:
    text = ""
    for line in raw.splitlines():
        if line.startswith(b"data: {"):
            for choice in json.loads(line[6:])["choices"]:
                assert "reasoning_content" not in choice.get("delta", {})
                text += choice.get("delta", {}).get("content") or choice.get("text") or ""
    return text


def strip_stream(raw: bytes, cuts: list[int]) -> tuple[bytes, list[str]]:
    response = ProxyResponse(status=200, raw=b"", content_type="text/event-stream")
    stripper = StreamedReasoning(Reasoning(ReasoningConfig()), response)
    out, at = [], 0
    for cut in [*cuts, len(raw)]:
        out.append(stripper.feed(raw[at:cut]))
        at = cut
    out.append(stripper.flush())
    return b"".join(out), response.error_kinds


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("piece", [1, 3, 1000])
@pytest.mark.parametrize("completions", [False, True])
def test_streamed_reasoning_is_stripped_like_a_whole_answers(text: str, piece: int, completions: bool) -> None:
    expected, unfinished = Reasoning(ReasoningConfig()).strip(text)
    raw = chat_stream(text, piece, completions=completions)
    stripped, kinds = strip_stream(raw, [])
    assert relayed_text(stripped) == expected
    assert kinds == (["unfinished_reasoning"] if unfinished else [])
    assert stripped.endswith(USAGE + DONE)


@pytest.mark.parametrize("text", TEXTS[:4])
def test_streamed_reasoning_is_the_same_split_at_every_offset(text: str) -> None:
    raw = chat_stream(text, 2)
    whole, kinds = strip_stream(raw, [])
    for cut in range(len(raw) + 1):
        assert strip_stream(raw, [cut]) == (whole, kinds)


def test_a_reasoning_stream_without_finish_reason_or_done_is_released_at_its_end() -> None:
    raw = event({"choices": [{"index": 0, "delta": {"content": "no tags here"}}]})
    stripped, kinds = strip_stream(raw, [])
    assert relayed_text(stripped) == "no tags here" and kinds == []


def test_reasoning_through_the_proxy_streams_the_answer_after_the_end_tag(tmp_path: Path) -> None:
    thinking = event({"choices": [{"index": 0, "delta": {"content": "<think>hmm"}}]})
    ended = event({"choices": [{"index": 0, "delta": {"content": "</think> Hel"}}]})

    async def script(request: web.Request, attempt: int) -> web.StreamResponse:
        return await sse(request, thinking, ended, gates[0], SECOND, USAGE, DONE)

    gates: list[asyncio.Event] = []

    async def client(url: str, upstream: Upstream, proxy: Proxy) -> tuple[bytes, bytes, bytes]:
        gates.append(upstream.gate)
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=BODY) as response:
                first = b""
                while b"Hel" not in first:  # the text after the end tag comes before the endpoint goes on
                    first += await asyncio.wait_for(response.content.readany(), 5)
                upstream.gate.set()
                rest = await response.read()
            _, _, replay = await read_all(session, url)
        return first, rest, replay

    chain: list[dict[str, Any]] = [{"name": "response_stats"}, {"name": "reasoning"}, {"name": "caching"},
             {"name": "endpoint", "config": {"backoff_initial": 0.01}}]
    (first, rest, replay), usage, upstream = run(script, tmp_path, client, chain=chain)
    assert relayed_text(first + rest) == "Hello" and b"think" not in first + rest
    assert relayed_text(replay) == "Hello" and upstream.total == 1  # the cached stream is stripped on replay
    assert usage.unfinished_reasoning == 0 and usage.prompt_tokens == 14
