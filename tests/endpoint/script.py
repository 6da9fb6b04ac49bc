"""Scripted replies: rules, given when the endpoint starts, that pick the reply for prompts that contain a text.

A script is a JSON file (``--script FILE``) or a list of :class:`Rule` (``serve(script=...)``)::

    {"rules": [
      {"match": "Which planet is largest?", "reply": "Answer: B"},
      {"match": "weather in Paris", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    ]}

The first rule whose ``match`` is a substring of the prompt (the text of the last user message; for completions,
the prompt) wins; ``""`` matches every prompt. A ``reply`` rule answers that text instead of the default rule's
reply (stop sequences and the token limit still apply). A ``tool_calls`` rule answers a chat request with those tool
calls (``finish_reason: tool_calls``), unless the conversation's last message is a tool result: then the rule is
skipped, so a tool-using harness sees the calls, sends the results, and gets the next matching rule's reply (or the
default rule's) and stops. A ``tool_calls`` rule never matches a completions prompt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One function call the endpoint answers with."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def as_openai(self, index: int, *, seed: str) -> dict[str, Any]:
        """The ``tool_calls`` entry: a deterministic id, the arguments as a JSON string (as OpenAI sends them)."""
        digest = hashlib.sha256(f"{seed}/{index}/{self.name}".encode()).hexdigest()[:24]
        return {"id": f"call_{digest}", "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}}


@dataclass(frozen=True)
class Rule:
    """Prompts containing ``match`` get ``reply`` or ``tool_calls`` (exactly one of them)."""

    match: str
    reply: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    def __post_init__(self) -> None:
        if (self.reply is None) == (not self.tool_calls):
            raise ValueError(f"rule {self.match!r}: give exactly one of 'reply' and 'tool_calls'")


@dataclass(frozen=True)
class Script:
    """The rules, in order."""

    rules: tuple[Rule, ...] = ()

    def pick(self, prompt: str, *, chat: bool, after_tool: bool) -> Rule | None:
        """The first rule that applies to this prompt, or None (the default rule answers)."""
        for rule in self.rules:
            if rule.match not in prompt:
                continue
            if rule.tool_calls and (not chat or after_tool):
                continue
            return rule
        return None


def parse_script(data: Any, *, source: str = "script") -> Script:
    """A script from its JSON form (``{"rules": [...]}`` or the list alone); ValueError names what is wrong."""
    rules = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(rules, list):
        raise ValueError(f"{source}: expected {{'rules': [...]}} or a list of rules")
    parsed: list[Rule] = []
    for index, entry in enumerate(rules):
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
            raise ValueError(f"{source}: rules[{index}] needs a string 'match'")
        unknown = set(entry) - {"match", "reply", "tool_calls"}
        if unknown:
            raise ValueError(f"{source}: rules[{index}] has unknown keys {sorted(unknown)}")
        reply = entry.get("reply")
        if reply is not None and not isinstance(reply, str):
            raise ValueError(f"{source}: rules[{index}].reply must be a string")
        calls = entry.get("tool_calls") or []
        if not isinstance(calls, list) or not all(
                isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("arguments", {}), dict)
                for c in calls):
            raise ValueError(f"{source}: rules[{index}].tool_calls must be a list of {{name, arguments}}")
        try:
            parsed.append(Rule(entry["match"], reply, tuple(ToolCall(c["name"], c.get("arguments", {}))
                                                            for c in calls)))
        except ValueError as error:
            raise ValueError(f"{source}: rules[{index}]: {error}") from None
    return Script(tuple(parsed))


def load_script(path: Path) -> Script:
    """Read a script file (JSON)."""
    return parse_script(json.loads(path.read_text(encoding="utf-8")), source=str(path))
