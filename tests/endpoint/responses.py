"""Response bodies for the two inference routes, as JSON objects or server-sent events."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.endpoint import tokenizer
from tests.endpoint.generation import generate
from tests.endpoint.logprobs import legacy_logprobs
from tests.endpoint.protocol import ChatRequest, CompletionRequest, Sampling
from tests.endpoint.script import Script


def response_id(prefix: str, body: dict[str, Any]) -> str:
    """A deterministic id: the same request always gets the same id."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI ``usage``; tokens are UTF-8 bytes."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_response(request: ChatRequest, *, model: str, rid: str, script: Script | None = None) -> dict[str, Any]:
    """The ``chat.completion`` object: the default rule's reply, or what the script says (text or tool calls)."""
    rule = script.pick(request.prompt, chat=True, after_tool=request.after_tool) if script else None
    if rule is not None and rule.tool_calls:
        calls = [call.as_openai(index, seed=rid) for index, call in enumerate(rule.tool_calls)]
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": calls}
        finish, completion_tokens = "tool_calls", sum(len(tokenizer.encode(json.dumps(c))) for c in calls)
    else:
        result = generate(request.prompt, max_tokens=request.sampling.max_tokens, stop=request.sampling.stop,
                          reply=rule.reply if rule else None)
        message = {"role": "assistant", "content": result.text}
        finish, completion_tokens = result.finish_reason, len(tokenizer.encode(result.text))
    return {
        "id": rid,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage(request.prompt_tokens, completion_tokens),
    }


def completion_response(request: CompletionRequest, *, model: str, rid: str,
                        script: Script | None = None) -> dict[str, Any]:
    """The ``text_completion`` object: one choice per prompt, in prompt order (a script's ``reply`` rules apply)."""
    choices: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    for index, prompt_ids in enumerate(request.prompts):
        prompt_text = tokenizer.decode(prompt_ids)
        rule = script.pick(prompt_text, chat=False, after_tool=False) if script else None
        result = generate(prompt_text, max_tokens=request.sampling.max_tokens, stop=request.sampling.stop,
                          reply=rule.reply if rule else None)
        generated_ids = tokenizer.encode(result.text)
        ids = [*prompt_ids, *generated_ids] if request.echo else generated_ids
        choices.append(
            {
                "index": index,
                "text": prompt_text + result.text if request.echo else result.text,
                "logprobs": None
                if request.logprobs is None
                else legacy_logprobs(ids, top=request.logprobs, first_is_context=request.echo),
                "finish_reason": result.finish_reason,
            }
        )
        prompt_tokens += len(prompt_ids)
        completion_tokens += len(generated_ids)
    return {
        "id": rid,
        "object": "text_completion",
        "created": 0,
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion_tokens),
    }


def event_stream(response: dict[str, Any], sampling: Sampling) -> bytes:
    """The same response as server-sent events: one content chunk per choice, a finish chunk, ``[DONE]``."""
    chat = response["object"] == "chat.completion"
    head = {key: response[key] for key in ("id", "created", "model")}
    head["object"] = "chat.completion.chunk" if chat else "text_completion"
    events: list[dict[str, Any]] = []
    for choice in response["choices"]:
        index = choice["index"]
        if chat:
            content = {"role": "assistant", "content": choice["message"]["content"]}
            if choice["message"].get("tool_calls"):
                content["tool_calls"] = [{"index": i, **call} for i, call in enumerate(choice["message"]["tool_calls"])]
            events.append({**head, "choices": [{"index": index, "delta": content, "finish_reason": None}]})
            finish = {"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}
        else:
            events.append({**head, "choices": [{**choice, "finish_reason": None}]})
            finish = {"index": index, "text": "", "logprobs": None, "finish_reason": choice["finish_reason"]}
        events.append({**head, "choices": [finish]})
    if sampling.include_usage:
        events.append({**head, "choices": [], "usage": response["usage"]})
    lines = [f"data: {json.dumps(event)}\n\n" for event in events]
    lines.append("data: [DONE]\n\n")
    return "".join(lines).encode("utf-8")
