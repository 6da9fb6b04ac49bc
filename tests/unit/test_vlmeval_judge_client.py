"""VLMEvalKit's judge client behind a proxy of its own (images/vlmevalkit/evals_vlmeval/judge.py, without vlmeval)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "images" / "vlmevalkit"


@pytest.fixture
def judge(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(IMAGE))
    for name in [n for n in sys.modules if n == "evals_vlmeval" or n.startswith("evals_vlmeval.")]:
        monkeypatch.delitem(sys.modules, name)
    spec = importlib.util.spec_from_file_location("judge_under_test", IMAGE / "evals_vlmeval" / "judge.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_proxied_judge_client_makes_one_attempt_whatever_the_judge_args_say(
        judge: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALS_JUDGE_ATTEMPTS", raising=False)
    monkeypatch.delenv("EVALS_JUDGE_TIMEOUT", raising=False)
    assert judge.proxied_client() == {}  # no proxy of its own: VLMEvalKit's retries stand
    monkeypatch.setenv("EVALS_JUDGE_ATTEMPTS", "1")
    monkeypatch.setenv("EVALS_JUDGE_TIMEOUT", "665")
    built: dict[str, object] = {}

    class OpenAIWrapperDouble:  # a test double of vlmeval.api.OpenAIWrapper: records its arguments
        def __init__(self, model: str, **kwargs: object) -> None:
            built.update(model=model, **kwargs)

    api = ModuleType("vlmeval.api")
    api.OpenAIWrapper = OpenAIWrapperDouble  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vlmeval", ModuleType("vlmeval"))
    monkeypatch.setitem(sys.modules, "vlmeval.api", api)
    build = judge._build_judge(lambda **kwargs: None)
    build(model="judge-model", retry=10, wait=3, timeout=60, nproc=4)
    assert built["retry"] == 1 and built["wait"] == 0 and built["timeout"] == 665.0
    assert built["model"] == "judge-model" and "nproc" not in built
