"""The model: tokens in and out, prompt scoring and generation on one llama.cpp context.

`Engine.run` is not thread-safe (one context, one KV cache): call it from one thread only (see
`reference_endpoint.worker`). Tokenizing and detokenizing only read the vocabulary and may run anywhere.

Prompt log-probabilities are computed here from the model's logits: the prompt is evaluated with
logits for every position (`logits_all=True`), and the log-probability of token i is the log-softmax of
the logits at position i-1, taken at token i. llama-cpp-python's own echo/logprobs path is not used.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import llama_cpp
import numpy as np

from reference_endpoint.logprobs import log_softmax, next_token_logprobs, top_k
from reference_endpoint.sampling import Sampler, Sampling


class EngineInputError(ValueError):
    """A request the model cannot take (token ids out of range, a prompt too long or empty)."""


@dataclass(frozen=True)
class TokenScore:
    """One token with its log-probability and the most likely alternatives at its position."""

    token: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass(frozen=True)
class Generated:
    """What the model wrote: tokens (a final end-of-generation token included, as vLLM counts it), their
    text (stop string cut off, no special tokens), and why it stopped."""

    tokens: list[int]
    text: str
    scores: list[TokenScore] | None
    finish_reason: Literal["stop", "length"]


@dataclass(frozen=True)
class Run:
    """One prompt's result: scores of prompt tokens 1..n-1 (when asked for) and the generation."""

    prompt_scores: list[TokenScore] | None
    generated: Generated


@dataclass(frozen=True)
class GenerationParams:
    """Everything `Engine.run` needs besides the prompt."""

    max_tokens: int
    sampling: Sampling
    stop: list[str]
    logprobs: int | None
    score_prompt: bool


class Engine:
    """SmolLM2 (or any GGUF) on llama.cpp, with logits kept for every evaluated position."""

    def __init__(self, path: Path, *, n_ctx: int, threads: int) -> None:
        self._llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=512, n_threads=threads,
                                      n_threads_batch=threads, logits_all=True, verbose=False)
        self.path = path
        self.n_ctx = self._llama.n_ctx()
        self.n_vocab = self._llama.n_vocab()
        self.metadata: dict[str, str] = dict(self._llama.metadata)
        vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        if vocab is None:
            raise RuntimeError(f"{path} has no vocabulary")
        self._pieces = [_piece(vocab, t, special=True) for t in range(self.n_vocab)]
        self._plain_pieces = [_piece(vocab, t, special=False) for t in range(self.n_vocab)]
        self._end_of_generation = frozenset(t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t))
        self.bos_id = self._special_id("tokenizer.ggml.bos_token_id")
        self.eos_id = self._special_id("tokenizer.ggml.eos_token_id")
        self.pad_id = self._special_id("tokenizer.ggml.padding_token_id")

    def _special_id(self, key: str) -> int | None:
        value = self.metadata.get(key)
        return int(value) if value is not None and 0 <= int(value) < self.n_vocab else None

    # --- tokens (thread-safe) -----------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """Token ids of text; special-token text (e.g. `<|im_end|>`) becomes the special token."""
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=add_special, special=True))

    def detokenize(self, tokens: Sequence[int], *, special: bool = True) -> str:
        """Text of token ids; special tokens are written out unless special=False."""
        self.check_tokens(tokens)
        table = self._pieces if special else self._plain_pieces
        return b"".join(table[t] for t in tokens).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        """One token as text (partial UTF-8 sequences show as U+FFFD)."""
        return self._pieces[token].decode("utf-8", errors="replace")

    def token_bytes(self, token: int) -> bytes:
        return self._pieces[token]

    def check_tokens(self, tokens: Sequence[int]) -> None:
        """Token ids outside the vocabulary are the caller's error, never a crash."""
        bad = [t for t in tokens if not 0 <= t < self.n_vocab]
        if bad:
            raise EngineInputError(f"token ids out of range 0..{self.n_vocab - 1}: {bad[:5]}")

    # --- the model (one thread) --------------------------------------------------------------------

    def run(self, prompt: Sequence[int], params: GenerationParams) -> Run:
        """Evaluate the prompt once, score its tokens if asked, then generate up to max_tokens."""
        self.check_tokens(prompt)
        if not prompt:
            raise EngineInputError("the prompt is empty (0 tokens)")
        if len(prompt) >= self.n_ctx:
            raise EngineInputError(f"the prompt has {len(prompt)} tokens; this server's context is {self.n_ctx}"
                                   " tokens (prompt and completion together)")
        try:
            self._prefill(prompt)
            prompt_scores = self._score_prompt(prompt, params.logprobs or 0) if params.score_prompt else None
            return Run(prompt_scores, self._generate(len(prompt), params))
        except BaseException:
            self._llama.n_tokens = 0  # the KV cache may be half-written: never reuse it
            raise

    def _prefill(self, prompt: Sequence[int]) -> None:
        """Evaluate the prompt, reusing the longest prefix still in the KV cache (its logit rows too)."""
        llama = self._llama
        limit = min(llama.n_tokens, len(prompt) - 1)
        differs = np.nonzero(llama.input_ids[:limit] != np.asarray(prompt[:limit], dtype=np.intc))[0]
        llama.n_tokens = int(differs[0]) if len(differs) else limit
        llama.eval(list(prompt[llama.n_tokens :]))

    def _score_prompt(self, prompt: Sequence[int], k: int) -> list[TokenScore]:
        rows = self._llama.scores[: len(prompt) - 1]
        scored = next_token_logprobs(rows, prompt[1:], k)
        return [TokenScore(token, logprob, top) for token, (logprob, top) in zip(prompt[1:], scored, strict=True)]

    def _generate(self, n_prompt: int, params: GenerationParams) -> Generated:
        llama = self._llama
        sampler = Sampler(params.sampling)
        room = self.n_ctx - n_prompt
        tokens: list[int] = []
        scores: list[TokenScore] | None = [] if params.logprobs is not None else None
        for step in range(min(params.max_tokens, room)):
            row = llama.scores[llama.n_tokens - 1]
            token = sampler.pick(row)
            tokens.append(token)
            if scores is not None:
                normalised = log_softmax(row)
                scores.append(TokenScore(token, float(normalised[token]), top_k(normalised, params.logprobs or 0)))
            if token in self._end_of_generation:  # counted and scored like vLLM does; no text
                return Generated(tokens, self._text(tokens[:-1]), scores, "stop")
            text = self._text(tokens)
            cut = min((i for i in (text.find(s) for s in params.stop if s) if i >= 0), default=-1)
            if cut >= 0:
                return Generated(tokens, text[:cut], scores, "stop")
            if step + 1 < params.max_tokens:
                llama.eval([token])
        return Generated(tokens, self._text(tokens), scores, "length")

    def _text(self, tokens: Sequence[int]) -> str:
        return b"".join(self._plain_pieces[t] for t in tokens).decode("utf-8", errors="replace")


def _piece(vocab: llama_cpp.llama_vocab_p, token: int, *, special: bool) -> bytes:
    """The bytes of one token (llama-cpp-python's own helper truncates pieces longer than 32 bytes)."""
    size = 64
    for _ in range(2):
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, size, 0, special)
        if n >= 0:
            return buffer.raw[:n]
        size = -n
    raise RuntimeError(f"token {token} has no text")
