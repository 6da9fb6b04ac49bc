"""POST /v1/chat/completions and POST /v1/completions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from reference_endpoint.chat import to_plain_all
from reference_endpoint.completions import CompletionJob, chat_logprobs, run_completion
from reference_endpoint.engine import GenerationParams
from reference_endpoint.errors import APIError
from reference_endpoint.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    SamplingFields,
    Usage,
)
from reference_endpoint.sampling import Sampling
from reference_endpoint.server import Server, ServerDep

router = APIRouter()
MAX_STOP = 16
DEFAULT_COMPLETION_MAX_TOKENS = 16


def sampling_of(body: SamplingFields) -> tuple[Sampling, list[str]]:
    """The request's sampling and stop strings; what this server cannot do is refused here."""
    if body.stream:
        raise APIError("stream: streaming is not supported by this server; send stream=false", param="stream")
    stop = body.stop_list()
    if len(stop) > MAX_STOP:
        raise APIError(f"stop: at most {MAX_STOP} stop strings", param="stop")
    temperature = 1.0 if body.temperature is None else body.temperature
    top_p = 1.0 if body.top_p is None else body.top_p
    return Sampling(temperature=temperature, top_p=top_p, seed=body.seed), stop


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, server: ServerDep) -> ChatCompletion:
    sampling, stop = sampling_of(body)
    messages = await run_in_threadpool(to_plain_all, body.messages)  # OCR, off the event loop
    prompt = server.engine.tokenize(server.template.render(messages), add_special=False)
    params = GenerationParams(
        max_tokens=body.max_completion_tokens or body.max_tokens or server.settings.default_max_tokens,
        sampling=sampling, stop=stop, logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        score_prompt=False)
    run = await server.on_model(lambda: server.engine.run(prompt, params))
    generated = run.generated
    logprobs = chat_logprobs(server.engine, generated.scores) if generated.scores is not None else None
    choice = ChatChoice(index=0, message=AssistantMessage(content=generated.text),
                        finish_reason=generated.finish_reason, logprobs=logprobs)
    usage = Usage(prompt_tokens=len(prompt), completion_tokens=len(generated.tokens),
                  total_tokens=len(prompt) + len(generated.tokens))
    return ChatCompletion(id=f"chatcmpl-{uuid.uuid4().hex}", created=server.created, model=server.name,
                          choices=[choice], usage=usage)


@router.post("/v1/completions")
async def completions(body: CompletionRequest, server: ServerDep) -> Completion:
    sampling, stop = sampling_of(body)
    prompts, texts = prompts_of(server, body.prompt)
    echo = bool(body.echo)
    params = GenerationParams(
        max_tokens=DEFAULT_COMPLETION_MAX_TOKENS if body.max_tokens is None else body.max_tokens,
        sampling=sampling, stop=stop, logprobs=body.logprobs, score_prompt=echo and body.logprobs is not None)
    job = CompletionJob(prompts=prompts, prompt_texts=texts, params=params, echo=echo)
    choices, usage = await server.on_model(lambda: run_completion(server.engine, job))
    return Completion(id=f"cmpl-{uuid.uuid4().hex}", created=server.created, model=server.name, choices=choices,
                      usage=usage)


def prompts_of(server: Server, prompt: str | list[str] | list[int] | list[list[int]]) -> tuple[
        list[list[int]], list[str]]:
    """Token ids and text of each prompt of the batch (text as given; token ids decoded)."""
    if isinstance(prompt, str):
        prompt = [prompt]
    if not prompt:
        raise APIError("prompt: empty list", param="prompt")
    if all(isinstance(p, int) for p in prompt):
        prompt = [[p for p in prompt if isinstance(p, int)]]
    ids: list[list[int]] = []
    texts: list[str] = []
    for item in prompt:
        if isinstance(item, str):
            ids.append(server.engine.tokenize(item, add_special=True))
            texts.append(item)
        elif isinstance(item, list):
            ids.append(server.tokens_of(item))
            texts.append(server.engine.detokenize(item))
    return ids, texts
