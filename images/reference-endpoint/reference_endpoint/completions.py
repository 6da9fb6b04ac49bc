"""Engine runs to OpenAI answers: legacy completion choices (echo, logprobs) and chat logprobs.

Legacy logprobs, as OpenAI (and lm-eval's `local-completions`) read them: with echo, `tokens` starts with
the prompt's tokens, whose first entry has no logprob (None); `top_logprobs[i]` maps token text to
log-probability for the `logprobs` most likely tokens at that position, plus the actual token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reference_endpoint.engine import Engine, GenerationParams, TokenScore
from reference_endpoint.protocol import (
    ChatLogprobs,
    CompletionChoice,
    CompletionLogprobs,
    TokenLogprob,
    TopLogprob,
    Usage,
)


@dataclass(frozen=True)
class CompletionJob:
    """A resolved /v1/completions request: token-id prompts, their text, what to generate."""

    prompts: list[list[int]]
    prompt_texts: list[str]
    params: GenerationParams
    echo: bool


def run_completion(engine: Engine, job: CompletionJob) -> tuple[list[CompletionChoice], Usage]:
    """Every prompt of the batch in order (on the model thread); choice i answers prompt i."""
    choices: list[CompletionChoice] = []
    prompt_tokens = completion_tokens = 0
    for index, (prompt, prompt_text) in enumerate(zip(job.prompts, job.prompt_texts, strict=True)):
        run = engine.run(prompt, job.params)
        generated = run.generated
        logprobs = None
        if job.params.logprobs is not None:
            offset = 0 if job.echo else len(prompt_text)
            entries = _prompt_entries(engine, prompt, run.prompt_scores) if job.echo else []
            entries += [_entry(engine, score) for score in generated.scores or []]
            logprobs = _legacy(entries, offset)
        text = prompt_text + generated.text if job.echo else generated.text
        choices.append(CompletionChoice(index=index, text=text, logprobs=logprobs,
                                        finish_reason=generated.finish_reason))
        prompt_tokens += len(prompt)
        completion_tokens += len(generated.tokens)
    return choices, Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          total_tokens=prompt_tokens + completion_tokens)


@dataclass(frozen=True)
class _Entry:
    text: str
    logprob: float | None
    top: dict[str, float] | None


def _entry(engine: Engine, score: TokenScore) -> _Entry:
    top: dict[str, float] = {}
    for token, logprob in score.top:
        top.setdefault(engine.token_text(token), logprob)
    top.setdefault(engine.token_text(score.token), score.logprob)
    return _Entry(engine.token_text(score.token), score.logprob, top)


def _prompt_entries(engine: Engine, prompt: Sequence[int], scores: list[TokenScore] | None) -> list[_Entry]:
    first = _Entry(engine.token_text(prompt[0]), None, None)
    return [first, *(_entry(engine, score) for score in scores or [])]


def _legacy(entries: list[_Entry], offset: int) -> CompletionLogprobs:
    offsets: list[int] = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.text)
    return CompletionLogprobs(tokens=[e.text for e in entries], token_logprobs=[e.logprob for e in entries],
                              top_logprobs=[e.top for e in entries], text_offset=offsets)


def chat_logprobs(engine: Engine, scores: list[TokenScore]) -> ChatLogprobs:
    """Chat-completions logprobs (`choices[].logprobs.content`) of the generated tokens."""
    content: list[TokenLogprob] = []
    for score in scores:
        alternatives = [_top(engine, token, logprob) for token, logprob in score.top]
        own = _top(engine, score.token, score.logprob)
        content.append(TokenLogprob(token=own.token, logprob=own.logprob, bytes=own.bytes,
                                    top_logprobs=alternatives))
    return ChatLogprobs(content=content)


def _top(engine: Engine, token: int, logprob: float) -> TopLogprob:
    text = engine.token_text(token)
    return TopLogprob(token=text, logprob=logprob, bytes=list(engine.token_bytes(token)))
