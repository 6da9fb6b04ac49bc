"""Tool calling through the adapter proxy (what BFCL's native function-calling tasks rely on): ``tools`` and
``tool_choice`` in requests and ``tool_calls`` in answers, whole or streamed, pass every interceptor unchanged, and
the cache key includes the tools."""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.unit.test_proxy import chat, run

TOOLS = [{"type": "function", "function": {
    "name": "calculate_triangle_area", "description": "Area of a triangle.",
    "parameters": {"type": "object", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
                   "required": ["base", "height"]}}}]
OTHER_TOOLS = [{"type": "function", "function": {
    "name": "math_factorial", "description": "n!",
    "parameters": {"type": "object", "properties": {"number": {"type": "integer"}}, "required": ["number"]}}}]
CALL: dict[str, Any] = {"id": "call_1", "type": "function",
        "function": {"name": "calculate_triangle_area", "arguments": "{\"base\": 10, \"height\": 5}"}}
BODY: dict[str, Any] = {
    "model": "m", "temperature": 0.001, "tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": True,
    "messages": [{"role": "user", "content": "area of a triangle, base 10 and height 5?"},
                 {"role": "assistant", "content": None, "tool_calls": [CALL]},
                 {"role": "tool", "tool_call_id": "call_1", "content": "25"},
                 {"role": "user", "content": "and again?"}]}
EVERY_INTERCEPTOR = {"interceptors": [
    {"name": "response_stats"}, {"name": "request_logging"}, {"name": "response_logging"},
    {"name": "system_message", "config": {"content": "Be brief.", "mode": "prepend"}},
    {"name": "payload_modifier", "config": {"add": {"seed": 1}}}, {"name": "reasoning"}, {"name": "caching"},
    {"name": "endpoint", "config": {"backoff_initial": 0.01, "backoff_max": 0.02}}]}


def tool_answer(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """An answer calling the first of ``tools`` (so answers to different tools differ)."""
    call = {**CALL, "function": {**CALL["function"], "name": tools[0]["function"]["name"]}}
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": None, "tool_calls": [call]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


async def answer_with_tools(request: web.Request, attempt: int) -> web.StreamResponse:
    return web.json_response(tool_answer((await request.json())["tools"]))


def test_tools_and_tool_calls_pass_every_interceptor_unchanged(tmp_path: Path) -> None:
    replies, _, upstream = run(answer_with_tools, EVERY_INTERCEPTOR, tmp_path, chat(copy.deepcopy(BODY)))
    assert replies == [(200, tool_answer(TOOLS))]
    [sent] = upstream.bodies
    assert {k: sent[k] for k in ("tools", "tool_choice", "parallel_tool_calls")} == \
        {"tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": True}
    # the system message is the one configured change to messages; the tool call and result are untouched
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, *BODY["messages"]]
    assert sent["seed"] == 1


def test_the_cache_key_includes_the_tools(tmp_path: Path) -> None:
    other = {**copy.deepcopy(BODY), "tools": OTHER_TOOLS}
    replies, usage, upstream = run(answer_with_tools, EVERY_INTERCEPTOR, tmp_path,
                                   chat(copy.deepcopy(BODY), other, copy.deepcopy(BODY), other))
    assert replies == [(200, tool_answer(TOOLS)), (200, tool_answer(OTHER_TOOLS))] * 2
    assert [body["tools"] for body in upstream.bodies] == [TOOLS, OTHER_TOOLS]
    assert usage.cache_hits == 2


CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "calculate_triangle_area", "arguments": ""}}]}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "{\"base\": 10, "}}]}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "\"height\": 5}"}}]}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
]


async def stream_tool_calls(request: web.Request, attempt: int) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for chunk in CHUNKS:
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def read_stream(*bodies: dict[str, Any]) -> Callable[[str], Awaitable[list[tuple[int, Any]]]]:
    async def client(url: str) -> list[tuple[int, Any]]:
        replies = []
        async with aiohttp.ClientSession() as session:
            for body in bodies:
                async with session.post(url, json=body) as response:
                    events = (await response.read()).decode().split("\n\n")
                    payloads = [event.removeprefix("data: ") for event in events if event.strip()]
                    replies.append((response.status, [p if p == "[DONE]" else json.loads(p) for p in payloads]))
        return replies
    return client


def test_streamed_tool_calls_pass_every_interceptor_unchanged(tmp_path: Path) -> None:
    body = {**copy.deepcopy(BODY), "stream": True}
    replies, usage, upstream = run(stream_tool_calls, EVERY_INTERCEPTOR, tmp_path, read_stream(body, body))
    assert replies == [(200, [*CHUNKS, "[DONE]"])] * 2  # the second from the cache
    assert usage.cache_hits == 1 and upstream.bodies[0]["tools"] == TOOLS
