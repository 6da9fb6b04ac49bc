"""JSON for the proxy's hot path: orjson (several times faster than the standard library), with the
standard library as the fallback for what orjson refuses: NaN and Infinity literals and integers
beyond 64 bits, which Python's own json accepts and some endpoints send."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(raw: bytes | str) -> Any:
    """Parse JSON; raises ValueError if neither parser accepts it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON (keys sorted if asked: the canonical form)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, sort_keys=sort_keys, ensure_ascii=False, separators=(",", ":")).encode()
