"""An independent prompt-logprob computation, to check the server's (`python -m reference_endpoint.reference`).

The server evaluates a prompt once with logits for every position and normalises them with numpy. This
evaluates every prefix tokens[:i] from an empty cache on a second llama.cpp context that keeps only the
last position's logits, and normalises them in plain Python (math.fsum): a different batch shape, cache
history, logits path and arithmetic. Matching within ~0.1 nats means the server's prompt logprobs are the
model's own next-token distribution, position by position.

    python -m reference_endpoint.reference --tokens 1,9690,...   ->   {"token_logprobs": [null, ...], "next_top": ...}
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
from collections.abc import Sequence

import llama_cpp

from reference_endpoint.model_file import locate_model


def prefix_logits(llama: llama_cpp.Llama, prefix: Sequence[int]) -> list[float]:
    """The logits after reading prefix, from an empty KV cache, last position only."""
    llama.n_tokens = 0
    llama.eval(list(prefix))
    row = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
    return [float(row[j]) for j in range(llama.n_vocab())]


def log_normaliser(logits: Sequence[float]) -> float:
    peak = max(logits)
    return peak + math.log(math.fsum(math.exp(x - peak) for x in logits))


def reference_logprobs(llama: llama_cpp.Llama, tokens: Sequence[int], top: int) -> dict[str, object]:
    token_logprobs: list[float | None] = [None]
    for i in range(1, len(tokens)):
        logits = prefix_logits(llama, tokens[:i])
        token_logprobs.append(logits[tokens[i]] - log_normaliser(logits))
    logits = prefix_logits(llama, tokens)
    norm = log_normaliser(logits)
    best = heapq.nlargest(top, range(len(logits)), key=logits.__getitem__)
    return {"token_logprobs": token_logprobs, "next_top": [[t, logits[t] - norm] for t in best]}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m reference_endpoint.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", required=True, help="comma-separated token ids")
    p.add_argument("--model", default=None, help="GGUF (default: the one the server loads)")
    p.add_argument("--top", type=int, default=5, help="alternatives after the last token (default %(default)s)")
    args = p.parse_args()
    tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    llama = llama_cpp.Llama(model_path=str(locate_model(args.model)), n_ctx=max(64, len(tokens) + 8),
                            n_threads=1, n_threads_batch=1, logits_all=False, verbose=False)
    print(json.dumps(reference_logprobs(llama, tokens, args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
