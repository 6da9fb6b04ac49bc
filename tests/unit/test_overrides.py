"""--overrides parsing: dotted keys, YAML values, commas inside quotes and brackets."""

from __future__ import annotations

import pytest

from orchestrator.schema.errors import ConfigError
from orchestrator.schema.overrides import parse_overrides, split_items


def test_values_are_parsed_as_yaml() -> None:
    assert parse_overrides("a.b=10,a.c=0.5,a.d=true,a.e=null,a.f=text,a.g='10'") == {
        "a": {"b": 10, "c": 0.5, "d": True, "e": None, "f": "text", "g": "10"}
    }


def test_quoted_commas_are_kept() -> None:
    assert parse_overrides('x.y="a,b",x.z=\'c,d\'') == {"x": {"y": "a,b", "z": "c,d"}}


def test_bracketed_commas_are_kept() -> None:
    assert parse_overrides('x.list=[1, 2],x.map={"k": 1, "j": [3, 4]}') == {
        "x": {"list": [1, 2], "map": {"k": 1, "j": [3, 4]}}
    }


def test_apostrophe_inside_a_plain_value_is_text() -> None:
    assert parse_overrides("x.y=it's fine,x.z=1") == {"x": {"y": "it's fine", "z": 1}}


def test_equals_sign_inside_value_is_kept() -> None:
    assert parse_overrides("t.u=http://h/v1?a=b") == {"t": {"u": "http://h/v1?a=b"}}


def test_spaces_around_items_are_ignored() -> None:
    assert split_items(" a=1 , b=2 ,") == ["a=1", "b=2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("config.params.limit_samples", "has no '='"),
        ("a=1,b", "has no '='"),
        ("a..b=1", "is not a dotted key"),
        ('a="x,b=2', "unbalanced quote"),
        ("a=[1,2", "unbalanced bracket"),
        ("a.b=1,a.b=2", "given twice"),
        ("a=1,a.b=2", "conflicts"),
        ("a=: x: y", "not valid YAML"),
    ],
)
def test_bad_items_are_config_errors_naming_the_flag(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_overrides(text)
    assert info.value.exit_code == 2
    assert str(info.value).startswith("--overrides: ")


def test_escaped_quote_inside_double_quotes() -> None:
    assert parse_overrides('a.b="say \\"x, y\\"",a.c=1') == {"a": {"b": 'say "x, y"', "c": 1}}
