"""``--overrides "a.b=c,d.e=f"``: dotted keys, YAML values, commas inside quotes or brackets kept.

Each value is parsed within the limits of a config file (:data:`~orchestrator.schema.limits.CONFIG_LIMITS`).
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.schema.errors import ConfigError
from orchestrator.schema.limits import LimitError
from orchestrator.schema.loading import parse_yaml

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
_OPEN = {"[": "]", "{": "}"}
# A quote opens a quoted span only where YAML would read one (so "it's" is plain text).
_QUOTE_MAY_FOLLOW = {"", "=", ",", "[", "{", ":", "'", '"'}


def split_items(text: str) -> list[str]:
    """Split on commas that are not inside quotes, brackets or braces."""
    items: list[str] = []
    current: list[str] = []
    quote: str | None = None
    stack: list[str] = []
    prev = ""
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quote == '"' and ch == "\\":
            escaped = True
        elif quote:
            quote = None if ch == quote else quote
        elif ch in "'\"" and prev in _QUOTE_MAY_FOLLOW:
            quote = ch
        elif ch in _OPEN:
            stack.append(_OPEN[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
        elif ch == "," and not stack:
            items.append("".join(current))
            current = []
            prev = ","
            continue
        current.append(ch)
        if not ch.isspace():
            prev = ch
    if quote or stack:
        raise ConfigError(f"unbalanced {'quote' if quote else 'bracket'} in {text!r}", where="--overrides",
                          hint="close every quote and bracket")
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_overrides(text: str) -> dict[str, Any]:
    """Turn an --overrides string into a nested mapping; values are parsed as YAML."""
    result: dict[str, Any] = {}
    for item in split_items(text):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"item {item!r} has no '='", where="--overrides",
                              hint="write key=value, e.g. config.params.limit_samples=10")
        if not _KEY.fullmatch(key):
            raise ConfigError(f"{key!r} is not a dotted key", where="--overrides",
                              hint="write e.g. config.params.temperature=0.5")
        try:
            value = parse_yaml(raw, source=f"--overrides {key}").data if raw.strip() else None
        except LimitError:
            raise
        except ConfigError:
            raise ConfigError(f"value of {key!r} is not valid YAML: {raw!r}", where="--overrides",
                              hint="quote values that hold YAML syntax") from None
        _set_path(result, key.split("."), value, item=item)
    return result


def _set_path(target: dict[str, Any], path: list[str], value: Any, *, item: str) -> None:
    node = target
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{item!r} conflicts with an earlier item", where="--overrides")
        node = child
    if path[-1] in node:
        raise ConfigError(f"key {'.'.join(path)!r} given twice", where="--overrides", hint="give each key once")
    node[path[-1]] = value
