"""JSON for the proxy's hot path: orjson (several times faster than the standard library), with the
standard library as the fallback for what orjson refuses: NaN and Infinity literals when reading (which
Python's own json accepts and some endpoints send), integers beyond 64 bits when writing. (orjson reads an
integer beyond 64 bits as a float: such a number in a body an interceptor rewrites loses precision.)"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(raw: bytes | str) -> Any:
    """Parse JSON; raises ValueError if neither parser accepts it (also for nesting too deep for either:
    orjson stops at 1024 levels, the standard library with RecursionError)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON (keys sorted if asked: the canonical form)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, sort_keys=sort_keys, ensure_ascii=False, separators=(",", ":")).encode()
