"""The adapter proxy's request records: one line of ``logs/requests.jsonl`` per request the harness made.

Every proxy of a run (the model's, and one per auxiliary endpoint such as a judge) and each of its processes
appends to the same file, so a record names its ``role`` and carries an ``id`` no other record of the run has.
A record's ``prompt_key`` is :func:`~orchestrator.schema.samples.prompt_key` of the ``messages`` (chat, vlm) or
``prompt`` (completions) the harness sent, before any interceptor changed the request (a system message, a
modified payload): so a per-sample record, which knows what the harness sent for it, finds its requests'
records (tokens, latency, cache hit, errors) by that key (:func:`read_request_records`).

Records are written in batches (at most a second apart, and when the proxy stops), so a proxy that is killed
loses its last second of records and may leave a partial last line; the next proxy to open the file first cuts
that partial line off, so only the file's last line can ever be partial.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.samples import prompt_key

REQUESTS_FILE = "requests.jsonl"
"""The file name, under the output directory's ``logs/``."""


class RequestRecord(BaseModel):
    """One line of logs/requests.jsonl."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="Unique within the run: `<role><process>-<start>-r<n>`, e.g. "
                                              "`model0-mh3k2a9b-r17` (the proxy process's index, when it started in "
                                              "base-36 milliseconds, and its n-th request).")
    role: str = Field(description="Whose proxy answered: `model`, or an auxiliary endpoint's role (`judge`).")
    prompt_key: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the canonical JSON of the request's `messages` (chat, vlm) or `prompt` "
                    "(completions) as the harness sent it (samples.py `prompt_key`); null for a request with "
                    "neither.")
    path: str = Field(description="The request's path, e.g. /v1/chat/completions.")
    status: int = Field(description="The HTTP status the harness got.")
    cache_hit: bool = Field(default=False, description="Answered from the proxy's cache.")
    attempts: int = Field(default=0, ge=0, description="Requests sent to the endpoint for it, retries included (0 "
                                                       "for a cache hit).")
    prompt_tokens: int = Field(default=0, ge=0, description="Prompt tokens the endpoint reported (0 if none).")
    completion_tokens: int = Field(default=0, ge=0, description="Completion tokens the endpoint reported (0 if "
                                                                "none).")
    latency_ms: float = Field(ge=0, description="From the request's arrival to its answer's end (a streamed one's "
                                                "last chunk).")
    ttft_ms: float | None = Field(default=None, ge=0, description="Streamed answers: until the first chunk.")
    error: str | None = Field(default=None, description="Why the harness got no good answer (the last error "
                                                        "kind: `http_503`, `timeout`, `stream_idle_timeout`, ...); "
                                                        "null when it got one.")
    errors: list[str] = Field(default_factory=list, description="Every error kind met on the way, retried "
                                                                "attempts included (and `unfinished_reasoning`).")


def body_prompt_key(body: Mapping[str, Any] | None) -> str | None:
    """The :func:`~orchestrator.schema.samples.prompt_key` of a request body's ``messages``, else of its ``prompt``;
    None for a body with neither (or no JSON object), or whose prompt has no canonical JSON (NaN, a lone surrogate).

    The adapter proxy takes it of every request, so it is computed the fast way where that gives the same text:
    orjson writes exactly the canonical JSON of :func:`~orchestrator.schema.samples.canonical_json` (sorted keys,
    no spaces, UTF-8 kept, the same escapes: checked over every code point) except for floats (``1e-05`` against
    orjson's ``0.00001``) and integers beyond 64 bits (which it refuses): a prompt with either takes the standard
    library's way. About 4 µs for a short chat prompt against 11 µs."""
    if body is None:
        return None
    if "messages" in body:
        prompt = body["messages"]
    elif "prompt" in body:
        prompt = body["prompt"]
    else:
        return None
    try:
        if _without_floats(prompt):
            try:
                return hashlib.sha256(orjson.dumps(prompt, option=orjson.OPT_SORT_KEYS)).hexdigest()
            except TypeError:  # an integer beyond 64 bits, or a lone surrogate (refused below as well)
                pass
        return prompt_key(prompt)
    except ValueError:
        return None


def _without_floats(value: Any) -> bool:
    """Whether a JSON value holds no float (where orjson's canonical text is the standard library's)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            return False
    return True


def read_request_records(path: Path) -> dict[str, list[RequestRecord]]:
    """The records of ``path`` (a logs/requests.jsonl) with a prompt key, by key, in the file's order (see
    :func:`request_records`)."""
    by_key: dict[str, list[RequestRecord]] = {}
    for record in request_records(path):
        if record.prompt_key is not None:
            by_key.setdefault(record.prompt_key, []).append(record)
    return by_key


def request_records(path: Path) -> list[RequestRecord]:
    """Every record of ``path`` (a logs/requests.jsonl), in the file's order.

    A last line without its newline that is not a record is a killed proxy's partial line and is left out; any
    other line that is not a record raises :class:`ResultsParseError` naming the file and line. A missing file
    has no records.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise ResultsParseError(f"{path}: cannot read the proxy's request records: {err.strerror}") from None
    lines = data.split(b"\n")
    partial = lines.pop()  # b"" when the file ends with its newline
    found = [_record(line, path, number) for number, line in enumerate(lines, start=1)]
    if partial.strip():
        with contextlib.suppress(ValidationError):  # else a killed proxy's partial line
            found.append(RequestRecord.model_validate_json(partial))
    return found


def _record(line: bytes, path: Path, number: int) -> RequestRecord:
    try:
        return RequestRecord.model_validate_json(line)
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ResultsParseError(f"{path}:{number}: not a request record: {where + ': ' if where else ''}"
                                f"{problem['msg']}") from None
