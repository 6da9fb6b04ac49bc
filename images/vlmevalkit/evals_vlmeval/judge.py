"""Judges: any OpenAI-compatible chat endpoint, named by its URL, model id and key.

Upstream ``build_judge`` renames some model ids (``gpt-4o-mini`` becomes ``gpt-4o-mini-2024-07-18``),
sends ``qwen-*``/``deepseek`` to SiliconFlow and ``llama31-8b`` to a local Hugging Face model, and the
client it builds takes its key from a variable chosen by the model id (``STEPAI_API_KEY`` for ids with
``step``, ``XAI_API_KEY`` for ``grok``, ...) and refuses an ``OPENAI_API_KEY`` that does not start with
``sk-``.

Here a judge is ``OpenAIWrapper(model=<id as given>)`` posting to ``$OPENAI_API_BASE`` (the full
chat-completions URL; a judge arg ``api_base`` wins) with the key in ``$OPENAI_API_KEY``, whatever its form
(none: no key). The framework's command sets both from ``config.params.extra.judge``. Judge args with
``use_azure: true`` keep upstream's Azure client. A judge that does not answer stops the evaluation (the
datasets this image runs assert ``judge.working()``); nothing falls back to exact matching.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from evals_vlmeval.patches import rebind


def apply() -> str:
    """Replace ``build_judge`` everywhere VLMEvalKit bound it."""
    from vlmeval.dataset.utils import judge_util  # noqa: PLC0415

    upstream = judge_util.build_judge
    rebind("build_judge", upstream, _build_judge(upstream))
    return "judge: the OpenAI-compatible endpoint at $OPENAI_API_BASE, model id as given"


def _build_judge(upstream: Callable[..., Any]) -> Callable[..., Any]:
    def build_judge(**kwargs: Any) -> Any:
        if kwargs.get("use_azure") or kwargs.get("model") is None:
            return upstream(**kwargs)
        from vlmeval.api import OpenAIWrapper  # noqa: PLC0415

        model = kwargs.pop("model")
        kwargs.pop("nproc", None)
        kwargs.pop("use_azure", None)
        kwargs.setdefault("key", os.environ.get("OPENAI_API_KEY", ""))
        kwargs.update(proxied_client())
        return OpenAIWrapper(model, **kwargs)

    return build_judge


def proxied_client() -> dict[str, Any]:
    """With the judge behind a proxy of its own (which retries): one attempt, no sleep after it, and a timeout beyond
    that proxy's budget, whatever the judge args or the dataset ask (VLMEvalKit's ``retry`` counts attempts)."""
    attempts, timeout = os.environ.get("EVALS_JUDGE_ATTEMPTS"), os.environ.get("EVALS_JUDGE_TIMEOUT")
    settings: dict[str, Any] = {}
    if attempts:
        settings.update(retry=int(attempts), wait=0)
    if timeout:
        settings["timeout"] = float(timeout)
    return settings
