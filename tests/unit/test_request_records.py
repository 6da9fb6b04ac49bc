"""The adapter proxy's request records (logs/requests.jsonl): one per request the harness made, with the key that
joins it to its sample (the prompt as the harness sent it), written in batches, read back by the runtime's reader.

Against a scripted endpoint (an aiohttp server in the test) and one-process proxies on loopback."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from orchestrator.runtime.proxy.request_records import FLUSH_RECORDS, FLUSH_SECONDS, RequestRecords
from orchestrator.runtime.proxy.server import Proxy
from orchestrator.schema.adapter import AdapterConfig
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.requests import REQUESTS_FILE, RequestRecord, body_prompt_key, read_request_records
from orchestrator.schema.samples import prompt_key

MESSAGES = [{"role": "user", "content": "What is 2 + 2? Réponds « quatre »."}]
CHAT = {"model": "m", "messages": MESSAGES, "temperature": 0}
ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}}],
          "usage": {"prompt_tokens": 11, "completion_tokens": 1}}
FAST = {"backoff_initial": 0.01, "backoff_max": 0.02}
Script = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def answer(request: web.Request, attempt: int) -> web.StreamResponse:
    return web.json_response(ANSWER)


def run(script: Script, tmp_path: Path, *bodies: dict[str, Any], chain: list[dict[str, Any]] | None = None,
        role: str | None = None, max_retries: int = 2) -> list[int]:
    """Start an endpoint answering with ``script(request, attempt)`` (attempts counted per body) and a proxy in
    front of it; POST ``bodies`` one after another; stop both. The statuses the harness got."""
    attempts: dict[str, int] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        attempts[raw] = attempts.get(raw, 0) + 1
        return await script(request, attempts[raw])

    async def main() -> list[int]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        config = {"processes": 1, "interceptors": chain or [
            {"name": "response_stats"}, {"name": "caching"}, {"name": "endpoint", "config": FAST}]}
        proxy = Proxy(f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions",
                      AdapterConfig.model_validate(config), output_dir=tmp_path, timeout=5, max_retries=max_retries,
                      role=role)
        await proxy.start()
        statuses = []
        try:
            async with aiohttp.ClientSession() as session:
                for body in bodies:
                    async with session.post(f"{proxy.origin}/v1/chat/completions", json=body) as response:
                        await response.read()
                        statuses.append(response.status)
        finally:
            await proxy.stop()
            await runner.cleanup()
        return statuses

    return asyncio.run(main())


def records(tmp_path: Path) -> list[RequestRecord]:
    """Every line of logs/requests.jsonl, each validated against the contract."""
    lines = (tmp_path / "logs" / REQUESTS_FILE).read_text(encoding="utf-8").splitlines()
    return [RequestRecord.model_validate_json(line) for line in lines]


def test_a_plain_request_is_recorded_with_the_key_of_the_messages_it_sent(tmp_path: Path) -> None:
    assert run(answer, tmp_path, CHAT) == [200]
    (record,) = records(tmp_path)
    assert re.fullmatch(r"model0-[0-9a-z]{8}-r1", record.id)
    assert record.prompt_key == prompt_key(MESSAGES) == body_prompt_key(CHAT)
    assert (record.role, record.path, record.status, record.cache_hit, record.attempts) == (
        "model", "/v1/chat/completions", 200, False, 1)
    assert (record.prompt_tokens, record.completion_tokens, record.error, record.errors) == (11, 1, None, [])
    assert record.latency_ms > 0 and record.ttft_ms is None


def test_a_cached_answer_is_recorded_as_a_hit_with_the_same_key(tmp_path: Path) -> None:
    assert run(answer, tmp_path, CHAT, CHAT) == [200, 200]
    first, again = records(tmp_path)
    assert (first.cache_hit, first.attempts, again.cache_hit, again.attempts) == (False, 1, True, 0)
    assert first.prompt_key == again.prompt_key and first.id != again.id
    assert again.completion_tokens == 1  # the cached answer's usage


def test_a_retried_request_is_one_record_with_its_attempts(tmp_path: Path) -> None:
    async def busy_once(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response({"error": "busy"}, status=503) if attempt == 1 else web.json_response(ANSWER)

    assert run(busy_once, tmp_path, CHAT) == [200]
    (record,) = records(tmp_path)
    assert (record.status, record.attempts, record.error, record.errors) == (200, 2, None, ["http_503"])


def test_a_failed_request_says_why(tmp_path: Path) -> None:
    async def busy(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response({"error": "busy"}, status=503)

    async def refuse(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.json_response({"error": "bad"}, status=400)

    assert run(busy, tmp_path / "busy", CHAT, max_retries=1) == [503]
    assert run(refuse, tmp_path / "refused", CHAT) == [400]
    (busy_record,), (refused,) = records(tmp_path / "busy"), records(tmp_path / "refused")
    assert (busy_record.status, busy_record.attempts, busy_record.error) == (503, 2, "http_503")
    assert (refused.status, refused.attempts, refused.error, refused.prompt_tokens) == (400, 1, "http_400", 0)
    assert busy_record.prompt_key == refused.prompt_key == prompt_key(MESSAGES)


def test_a_streamed_answer_is_recorded_when_it_ends(tmp_path: Path) -> None:
    def event(data: dict[str, Any] | str) -> bytes:
        return b"data: " + (data if isinstance(data, str) else json.dumps(data)).encode() + b"\n\n"

    async def stream(request: web.Request, attempt: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(event({"choices": [{"index": 0, "delta": {"content": "4"}}]}))
        await asyncio.sleep(0.3)
        await response.write(event({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 1}}))
        await response.write(event("[DONE]"))
        await response.write_eof()
        return response

    assert run(stream, tmp_path, {**CHAT, "stream": True}) == [200]
    (record,) = records(tmp_path)
    assert record.ttft_ms is not None and record.ttft_ms < 250 <= record.latency_ms  # its end, not its first chunk
    assert (record.completion_tokens, record.error, record.prompt_key) == (1, None, prompt_key(MESSAGES))


def test_a_judges_records_go_to_the_same_file_under_its_role_with_ids_of_their_own(tmp_path: Path) -> None:
    run(answer, tmp_path, CHAT)
    run(answer, tmp_path, CHAT, role="judge")
    run(answer, tmp_path, CHAT)  # the model's proxy again (a resumed run): cached, and a new id
    model, judge, again = records(tmp_path)
    assert (model.role, judge.role, again.role) == ("model", "judge", "model")
    assert judge.id.startswith("judge0-") and len({model.id, judge.id, again.id}) == 3
    assert (judge.cache_hit, again.cache_hit) == (False, True)  # the judge has a cache of its own
    assert model.prompt_key == judge.prompt_key == again.prompt_key


def test_the_key_is_of_the_prompt_as_the_harness_sent_it(tmp_path: Path) -> None:
    """Not as the interceptors changed it; completions' ``prompt``; no key for a body with neither."""
    chain: list[dict[str, Any]] = [{"name": "system_message", "config": {"content": "Be brief."}},
                                   {"name": "payload_modifier", "config": {"rename": {"prompt": "input"}}},
                                   {"name": "response_stats"}, {"name": "endpoint"}]
    completion = {"model": "m", "prompt": "2 + 2 ="}
    assert run(answer, tmp_path, CHAT, completion, {"model": "m", "input": "x"}, chain=chain) == [200] * 3
    chat, completions, neither = records(tmp_path)
    assert chat.prompt_key == prompt_key(MESSAGES)  # the system message is the proxy's, not the harness's
    assert completions.prompt_key == prompt_key("2 + 2 =")
    assert neither.prompt_key is None
    assert read_request_records(tmp_path / "logs" / REQUESTS_FILE) == {
        prompt_key(MESSAGES): [chat], prompt_key("2 + 2 ="): [completions]}


def test_records_can_be_turned_off(tmp_path: Path) -> None:
    chain: list[dict[str, Any]] = [{"name": "response_stats", "config": {"request_records": False}},
                                   {"name": "endpoint"}]
    assert run(answer, tmp_path, CHAT, chain=chain) == [200]
    assert not (tmp_path / "logs" / REQUESTS_FILE).exists()


EVERY_CHARACTER = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


@pytest.mark.parametrize("prompt", [
    MESSAGES,
    "a completions prompt\twith \"quotes\", \\, \x00\x1f\x7f, \u2028 and 😀",
    [101, 2054, 2003],  # a prompt as token ids
    [{"role": "user", "content": [{"type": "text", "text": "Décris l'image."},
                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
    {"z": [True, False, None, {"b": -(2**63), "a": 2**64 - 1, "A": 0, "é": 1, "😀": 2, "ｚ": 3}]},
    [2**64, -(2**63) - 1],  # beyond 64 bits: orjson refuses them
    [{"role": "user", "content": "x", "weight": 1e-05}, 0.1, 1e16, -0.0, 3.0],  # floats: the standard library's way
    *(EVERY_CHARACTER[start:start + 65536] for start in range(0, len(EVERY_CHARACTER), 65536)),
], ids=lambda prompt: type(prompt).__name__)
def test_the_proxys_key_is_the_samples_prompt_key(prompt: Any) -> None:
    assert body_prompt_key({"messages": prompt}) == body_prompt_key({"prompt": prompt}) == prompt_key(prompt)


def test_a_prompt_without_canonical_json_has_no_key() -> None:
    assert body_prompt_key({"messages": [{"content": float("nan")}]}) is None
    assert body_prompt_key({"prompt": "lone \ud800 surrogate"}) is None
    assert body_prompt_key({"model": "m"}) is None and body_prompt_key(None) is None
    assert body_prompt_key({"messages": None}) == prompt_key(None)  # present, if null: what the harness sent


def line(number: int, key: str = "a" * 64) -> str:
    return json.dumps({"id": f"model0-x-r{number}", "role": "model", "prompt_key": key, "path": "/v1/chat/completions",
                       "status": 200, "latency_ms": 1.5}) + "\n"


def test_the_reader_groups_by_key_and_tolerates_a_killed_proxys_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / REQUESTS_FILE
    assert read_request_records(path) == {}  # no file: no records
    path.write_text(line(1) + line(2, "b" * 64) + line(3) + line(4)[:40])
    found = read_request_records(path)
    assert {key: [r.id for r in found[key]] for key in found} == {
        "a" * 64: ["model0-x-r1", "model0-x-r3"], "b" * 64: ["model0-x-r2"]}
    path.write_text(line(1) + line(2))  # a complete last line
    assert len(read_request_records(path)["a" * 64]) == 2


@pytest.mark.parametrize(("text", "message"), [
    (line(1) + '{"id": "model0-x-r2", "role": "mo\n' + line(3), "requests.jsonl:2: not a request record"),
    (line(1) + "\n" + line(3), "requests.jsonl:2: not a request record"),
    (line(1) + line(2).replace('"status": 200', '"status": "ok"'), "requests.jsonl:2: not a request record: status"),
    (line(1).replace('"role"', '"rôle"'), "requests.jsonl:1: not a request record"),
])
def test_the_reader_skips_nothing_else(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / REQUESTS_FILE
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ResultsParseError, match=re.escape(message)):
        read_request_records(path)


@pytest.mark.parametrize(("left", "kept"), [(line(2)[:40], 1), (line(2).rstrip("\n"), 2)], ids=["partial", "complete"])
def test_a_proxy_starting_after_a_killed_one_ends_its_partial_line(tmp_path: Path, left: str, kept: int) -> None:
    """A partial record is cut off, a complete one gets its newline: the new records start on lines of their own."""
    path = tmp_path / "logs" / REQUESTS_FILE
    path.parent.mkdir()
    path.write_text(line(1) + left)
    run(answer, tmp_path, CHAT)
    assert [r.id.startswith("model0-x-") for r in records(tmp_path)] == [True] * kept + [False]
    assert sum(len(found) for found in read_request_records(path).values()) == kept + 1


def test_records_are_written_in_batches_not_one_write_per_request(tmp_path: Path) -> None:
    path = tmp_path / "logs" / REQUESTS_FILE

    record = json.loads(line(7))

    async def main() -> list[int]:
        writer = RequestRecords(path, first=True)
        sizes = []
        for _ in range(3):
            writer.add(record)
        sizes.append(path.stat().st_size)  # kept in memory
        await asyncio.sleep(FLUSH_SECONDS + 0.2)
        sizes.append(path.stat().st_size)  # written once the first has waited FLUSH_SECONDS
        for _ in range(FLUSH_RECORDS):
            writer.add(record)
        sizes.append(path.stat().st_size)  # ... or once there are many
        writer.add(record)
        writer.close()  # ... and when the proxy stops
        sizes.append(path.stat().st_size)
        return sizes

    sizes = asyncio.run(main())
    size = len(json.dumps(record, separators=(",", ":"))) + 1
    assert sizes == [0, 3 * size, (3 + FLUSH_RECORDS) * size, (4 + FLUSH_RECORDS) * size]
