"""The route table: which path and method do what, and which kind of request each is."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.endpoint import tokenizer
from tests.endpoint.protocol import (
    ApiError,
    invalid,
    parse_chat,
    parse_completion,
    parse_token_ids,
)
from tests.endpoint.recording import Kind
from tests.endpoint.responses import chat_response, completion_response, event_stream, response_id
from tests.endpoint.script import Script

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Settings:
    """What a server instance is configured with."""

    model: str = "test-model"
    script: Script | None = None
    """Scripted replies (tests/endpoint/script.py); None: the default rule only."""
    delay: float = 0.0
    """Seconds each inference request waits before its answer is sent (a known latency for load generators)."""


@dataclass(frozen=True)
class Reply:
    """An HTTP response."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE


def json_reply(payload: dict[str, Any], status: int = 200) -> Reply:
    """A JSON response."""
    return Reply(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


Handler = Callable[[Settings, dict[str, Any]], Reply]


@dataclass(frozen=True)
class Route:
    """One endpoint."""

    method: str
    kind: Kind
    handler: Handler


def _health(settings: Settings, body: dict[str, Any]) -> Reply:
    return json_reply({"status": "ok"})


def _models(settings: Settings, body: dict[str, Any]) -> Reply:
    entry = {"id": settings.model, "object": "model", "created": 0, "owned_by": "test-endpoint"}
    return json_reply({"object": "list", "data": [entry]})


def _check_model(settings: Settings, model: str | None) -> str:
    if model is not None and model != settings.model:
        raise ApiError(
            404,
            f"The model '{model}' does not exist; this endpoint serves '{settings.model}'.",
            code="model_not_found",
            param="model",
        )
    return settings.model


def _chat(settings: Settings, body: dict[str, Any]) -> Reply:
    request = parse_chat(body)
    response = chat_response(request, model=_check_model(settings, request.model), rid=response_id("chatcmpl", body),
                             script=settings.script)
    if request.sampling.stream:
        return Reply(200, event_stream(response, request.sampling), "text/event-stream")
    return json_reply(response)


def _completions(settings: Settings, body: dict[str, Any]) -> Reply:
    request = parse_completion(body)
    response = completion_response(request, model=_check_model(settings, request.model), rid=response_id("cmpl", body),
                                   script=settings.script)
    if request.sampling.stream:
        return Reply(200, event_stream(response, request.sampling), "text/event-stream")
    return json_reply(response)


def _tokenizer_info(settings: Settings, body: dict[str, Any]) -> Reply:
    return json_reply(tokenizer.tokenizer_info(settings.model))


def _tokenize(settings: Settings, body: dict[str, Any]) -> Reply:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise invalid("'prompt' is required and must be a string", param="prompt", code="missing_field")
    tokens = tokenizer.encode(prompt)
    return json_reply({"tokens": tokens, "count": len(tokens), "max_model_len": tokenizer.MAX_MODEL_LEN})


def _detokenize(settings: Settings, body: dict[str, Any]) -> Reply:
    if "tokens" not in body:
        raise invalid("'tokens' is required", param="tokens", code="missing_field")
    return json_reply({"prompt": tokenizer.decode(parse_token_ids(body["tokens"], param="tokens"))})


ROUTES: dict[str, Route] = {
    "/health": Route("GET", "info", _health),
    "/v1/models": Route("GET", "info", _models),
    "/v1/chat/completions": Route("POST", "inference", _chat),
    "/v1/completions": Route("POST", "inference", _completions),
    "/tokenizer_info": Route("GET", "tokenizer", _tokenizer_info),
    "/tokenize": Route("POST", "tokenizer", _tokenize),
    "/detokenize": Route("POST", "tokenizer", _detokenize),
}


def kind_of(path: str) -> Kind:
    """The kind a path is recorded as."""
    route = ROUTES.get(path)
    return route.kind if route is not None else "unknown"


def find_route(method: str, path: str) -> Route:
    """The route for ``method path``, or a 404 (unknown path) / 405 (wrong method) ApiError."""
    route = ROUTES.get(path)
    if route is None:
        raise ApiError(404, f"Unknown path '{path}'. Known paths: {', '.join(sorted(ROUTES))}.", code="not_found")
    if route.method != method:
        raise ApiError(405, f"'{path}' accepts {route.method}, not {method}.", code="method_not_allowed")
    return route
