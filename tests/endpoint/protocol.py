"""Request parsing and validation; every rejection is an ApiError with an OpenAI-style body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.endpoint import tokenizer

MAX_LOGPROBS = 20
DEFAULT_COMPLETION_MAX_TOKENS = 16


class ApiError(Exception):
    """A request the endpoint refuses; ``body()`` is what the client receives."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "code", "param"}}`` as the OpenAI API writes it."""
        return {"error": {"message": self.message, "type": self.error_type, "code": self.code, "param": self.param}}


def invalid(message: str, *, param: str | None = None, code: str = "invalid_value") -> ApiError:
    """A 400 error about one field."""
    return ApiError(400, message, code=code, param=param)


@dataclass(frozen=True)
class Sampling:
    """The generation limits every inference request carries."""

    max_tokens: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion request; ``prompt`` is the text of the last user message."""

    model: str | None
    prompt: str
    prompt_tokens: int
    sampling: Sampling
    after_tool: bool = False
    """The last message is a tool result (role ``tool``)."""


@dataclass(frozen=True)
class CompletionRequest:
    """A legacy completion request; every prompt already turned into token ids."""

    model: str | None
    prompts: tuple[tuple[int, ...], ...]
    echo: bool
    logprobs: int | None
    sampling: Sampling


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 ``invalid_json``."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise invalid(f"request body is not valid JSON: {error}", code="invalid_json") from error
    if not isinstance(value, dict):
        raise invalid("request body must be a JSON object", code="invalid_json")
    return value


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    """Validate a ``/v1/chat/completions`` body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' is required and must be a non-empty list", param="messages", code="missing_field")
    texts: list[str] = []
    prompt: str | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid(f"messages[{index}] must be an object with a string 'role'", param="messages")
        text = _content_text(message.get("content"), index)
        texts.append(text)
        if message["role"] == "user":
            prompt = text
    limit = _optional_int(body, "max_completion_tokens")
    if limit is None:
        limit = _optional_int(body, "max_tokens")
    return ChatRequest(
        model=_model(body),
        prompt=prompt if prompt is not None else texts[-1],
        prompt_tokens=sum(len(tokenizer.encode(text)) for text in texts),
        sampling=_sampling(body, max_tokens=limit),
        after_tool=messages[-1]["role"] == "tool",
    )


def parse_completion(body: dict[str, Any]) -> CompletionRequest:
    """Validate a ``/v1/completions`` body; text prompts are tokenized here."""
    if "prompt" not in body:
        raise invalid("'prompt' is required", param="prompt", code="missing_field")
    echo = body.get("echo", False)
    if not isinstance(echo, bool):
        raise invalid("'echo' must be a boolean", param="echo")
    logprobs = _optional_int(body, "logprobs")
    if logprobs is not None and logprobs > MAX_LOGPROBS:
        raise invalid(f"'logprobs' must be at most {MAX_LOGPROBS}", param="logprobs")
    limit = _optional_int(body, "max_tokens")
    return CompletionRequest(
        model=_model(body),
        prompts=_prompts(body["prompt"]),
        echo=echo,
        logprobs=logprobs,
        sampling=_sampling(body, max_tokens=DEFAULT_COMPLETION_MAX_TOKENS if limit is None else limit),
    )


def parse_token_ids(value: Any, *, param: str) -> tuple[int, ...]:
    """A list of token ids of this vocabulary, or a 400."""
    if not isinstance(value, list):
        raise invalid(f"'{param}' must be a list of token ids", param=param)
    try:
        for token in value:
            tokenizer.check_id(token)
    except ValueError as error:
        raise invalid(f"'{param}': {error}", param=param) from error
    return tuple(value)


def _prompts(value: Any) -> tuple[tuple[int, ...], ...]:
    """str | list[str] | list[int] | list[list[int]] -> one token-id tuple per prompt."""
    if isinstance(value, str):
        return (tuple(tokenizer.encode(value)),)
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return tuple(tuple(tokenizer.encode(item)) for item in value)
        if all(isinstance(item, list) for item in value):
            return tuple(parse_token_ids(item, param="prompt") for item in value)
        return (parse_token_ids(value, param="prompt"),)
    raise invalid(
        "'prompt' must be a string, a list of strings, or token ids (list[int] or list[list[int]])", param="prompt"
    )


def _content_text(content: Any, index: int) -> str:
    """The text of a message: a string, or the ``text`` parts of a content list joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise invalid(f"messages[{index}].content parts must be objects with a 'type'", param="messages")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise invalid(f"messages[{index}].content text part needs a string 'text'", param="messages")
                parts.append(part["text"])
        return "\n".join(parts)
    raise invalid(f"messages[{index}].content must be a string, a list of parts, or null", param="messages")


def _model(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid("'model' must be a string", param="model")
    return model


def _sampling(body: dict[str, Any], *, max_tokens: int | None) -> Sampling:
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid("only n=1 is supported", param="n", code="unsupported_value")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("'stream' must be a boolean", param="stream")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return Sampling(max_tokens=max_tokens, stop=_stop(body.get("stop")), stream=stream, include_usage=include_usage)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise invalid("'stop' must be a string or a list of strings", param="stop")


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(f"'{name}' must be a non-negative integer", param=name)
    return value
