"""The proxy's JSON codec: orjson, the standard library for what orjson refuses, ValueError for everything else."""

from __future__ import annotations

import math

import pytest

from orchestrator.runtime.proxy import jsoncodec
from orchestrator.runtime.proxy.types import ProxyResponse


def test_what_orjson_refuses_falls_back_to_the_standard_library() -> None:
    assert math.isnan(jsoncodec.loads(b'{"x": NaN}')["x"])
    assert jsoncodec.loads(b'{"x": 123456789012345678901234567890}') == {"x": 1.2345678901234568e29}  # orjson: float
    assert jsoncodec.dumps({"b": 1, "a": 2**70}, sort_keys=True) == b'{"a":1180591620717411303424,"b":1}'


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
                                 b"{not json", b"\xff\xfe", b""])
def test_anything_else_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):  # any ValueError: the callers treat all alike
        jsoncodec.loads(raw)


def test_an_upstream_answer_nested_too_deeply_is_not_json() -> None:
    answer = ProxyResponse(200, b"[" * 100_000 + b"]" * 100_000)
    assert answer.json() is None
