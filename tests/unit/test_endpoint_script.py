"""The test endpoint's scripted replies (tests/endpoint/script.py), through real HTTP with the OpenAI client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.endpoint.script import Rule, ToolCall, load_script, parse_script
from tests.endpoint.server import serve

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)


def test_reply_rule_replaces_the_default_and_keeps_stop_and_limit() -> None:
    script = [Rule("largest planet", reply="Answer: B because Jupiter")]
    with serve(script=script) as server:
        client = _client(server.url)
        chat = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Which is the largest planet?"}],
            stop=[" because"])
        assert chat.choices[0].message.content == "Answer: B"
        other = client.chat.completions.create(model="test-model",
                                               messages=[{"role": "user", "content": "Question: 2+3=5?"}])
        assert other.choices[0].message.content == "The answer is 5."
        text = client.completions.create(model="test-model", prompt="the largest planet", max_tokens=6)
        assert (text.choices[0].text, text.choices[0].finish_reason) == ("Answer", "length")


def test_tool_calls_then_the_reply_after_the_tool_result() -> None:
    script = [Rule("weather", tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)), Rule("", reply="Sunny.")]
    with serve(script=script) as server:
        client = _client(server.url)
        messages: list[dict[str, object]] = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = client.chat.completions.create(model="test-model", messages=messages, tools=WEATHER)  # type: ignore[arg-type]
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert first.choices[0].finish_reason == "tool_calls"
        assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})  # type: ignore[union-attr]
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
        second = client.chat.completions.create(model="test-model", messages=messages, tools=WEATHER)  # type: ignore[arg-type]
        assert (second.choices[0].message.content, second.choices[0].finish_reason) == ("Sunny.", "stop")
        again = client.chat.completions.create(model="test-model", messages=messages[:1], tools=WEATHER)  # type: ignore[arg-type]
        assert again.choices[0].message.tool_calls[0].id == call.id  # type: ignore[index]  # deterministic


def test_streamed_tool_calls() -> None:
    script = [Rule("weather", tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),))]
    with serve(script=script) as server:
        stream: Any = _client(server.url).chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "weather?"}], tools=WEATHER, stream=True)  # type: ignore[arg-type]
        chunks = list(stream)
        calls = [c for chunk in chunks for choice in chunk.choices for c in (choice.delta.tool_calls or [])]
        assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Oslo"}]
        assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_script_file_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"rules": [{"match": "x", "tool_calls": [{"name": "f", "arguments": {"a": 1}}]}]}))
    assert load_script(path).rules == (Rule("x", tool_calls=(ToolCall("f", {"a": 1}),)),)
    with pytest.raises(ValueError, match="exactly one"):
        parse_script([{"match": "x"}])
    with pytest.raises(ValueError, match="unknown keys"):
        parse_script([{"match": "x", "reply": "y", "extra": 1}])
    with pytest.raises(ValueError, match="string 'match'"):
        parse_script({"rules": [{"reply": "y"}]})
