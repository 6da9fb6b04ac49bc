"""Interceptors that adjust requests or responses: system_message, payload_modifier, reasoning, logging."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.runtime.proxy import jsoncodec
from orchestrator.runtime.proxy.types import AnswerStream, Handler, ProxyRequest, ProxyResponse
from orchestrator.schema.adapter import LoggingConfig, PayloadModifierConfig, ReasoningConfig, SystemMessageConfig


class SystemMessage:
    """Prepend to, append to or replace the system message of chat requests."""

    def __init__(self, config: SystemMessageConfig) -> None:
        self.config = config

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Adjust ``messages``, then forward."""
        messages = request.body.get("messages") if request.body else None
        if request.body is not None and isinstance(messages, list):
            request.replace_body({**request.body, "messages": self.apply(messages)})
        return await call_next(request)

    def apply(self, messages: list[Any]) -> list[Any]:
        """The messages with the system message applied."""
        content, mode = self.config.content, self.config.mode
        rest = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
        existing = "\n".join(str(m.get("content", "")) for m in messages
                             if isinstance(m, dict) and m.get("role") == "system")
        if existing and mode == "prepend":
            content = f"{content}\n{existing}"
        elif existing and mode == "append":
            content = f"{existing}\n{content}"
        return [{"role": "system", "content": content}, *rest]


class PayloadModifier:
    """Add, remove and rename top-level request parameters."""

    def __init__(self, config: PayloadModifierConfig) -> None:
        self.config = config

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Modify the body, then forward."""
        if request.body is not None:
            body = dict(request.body)
            for old, new in self.config.rename.items():
                if old in body:
                    body[new] = body.pop(old)
            for key in self.config.remove:
                body.pop(key, None)
            body.update(self.config.add)
            request.replace_body(body)
        return await call_next(request)


class Reasoning:
    """Strip reasoning (``<think>...</think>`` and ``reasoning_content``) from answers, streamed ones included."""

    def __init__(self, config: ReasoningConfig) -> None:
        self.config = config

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Forward, then strip; an answer whose reasoning never ends is counted."""
        response = await call_next(request)
        if response.status == 200 and response.stream is not None:
            response.stream.add_transform(StreamedReasoning(self, response))
            return response
        if response.status == 200 and response.content_type.startswith("text/event-stream"):  # a cached stream
            stripper = StreamedReasoning(self, response)
            response.raw = stripper.feed(response.raw) + stripper.flush()
            return response
        body = response.json() if response.status == 200 else None
        if body is None or not isinstance(body.get("choices"), list):
            return response
        unfinished = False
        for choice in body["choices"]:
            target = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(target, dict):
                target.pop("reasoning_content", None)
                target.pop("reasoning", None)
                target["content"], cut = self.strip(target.get("content"))
            elif isinstance(choice, dict) and "text" in choice:
                choice["text"], cut = self.strip(choice.get("text"))
            else:
                continue
            unfinished |= cut
        response.replace_json(body)
        if unfinished:
            response.error_kinds = [*response.error_kinds, "unfinished_reasoning"]
        return response

    def strip(self, text: object) -> tuple[object, bool]:
        """(text without reasoning, whether reasoning was left unfinished)."""
        if not isinstance(text, str):
            return text, False
        start, end = self.config.start_tag, self.config.end_tag
        if end in text:
            return text.rsplit(end, 1)[1].lstrip(), False
        if start in text:
            return "", True
        return text, False


class _Choice:
    """One choice of a streamed answer: its text is kept until the end tag has passed (or the choice ends)."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.kept = ""
        self.searched = 0  # where the search for the end tag resumes in ``kept``
        self.released = False
        self.leading = True  # whitespace right after the end tag is dropped, as in whole answers

    def pass_text(self, text: str, end: str) -> str:
        """What to relay of ``text``: nothing while it may still be reasoning."""
        if self.released:
            if self.leading:
                text = text.lstrip()
                self.leading = not text
            return text
        self.kept += text
        found = self.kept.find(end, max(0, self.searched - len(end) + 1))
        self.searched = len(self.kept)
        if found < 0:
            return ""
        self.released = True
        rest, self.kept = self.kept[found + len(end):].lstrip(), ""
        self.leading = not rest
        return rest

    def release(self, start: str) -> tuple[str, bool]:
        """The choice ends without an end tag: (what to relay, whether its reasoning was left unfinished)."""
        kept, self.kept, self.released = self.kept, "", True
        if start in kept:
            return "", True
        return kept, False


class StreamedReasoning:
    """Strips reasoning from a stream of server-sent events as it passes: each choice's text is kept back until
    its end tag (then the text after it flows), or until the choice ends (then, as for whole answers, the text
    is relayed if it never began reasoning, else dropped and counted as unfinished). ``reasoning_content`` is
    dropped from every delta. Events that are not JSON chunks pass unchanged."""

    def __init__(self, reasoning: Reasoning, response: ProxyResponse) -> None:
        self.start, self.end = reasoning.config.start_tag, reasoning.config.end_tag
        self.response = response
        self.buffer = b""
        self.choices: dict[object, _Choice] = {}

    def feed(self, data: bytes) -> bytes:
        """The complete events of what arrived so far, stripped."""
        self.buffer += data
        out: list[bytes] = []
        while True:
            cut = [i for i in (self.buffer.find(b"\n\n"), self.buffer.find(b"\r\n\r\n")) if i >= 0]
            if not cut:
                break
            at = min(cut)
            size = 4 if self.buffer.startswith(b"\r\n\r\n", at) else 2
            event, self.buffer = self.buffer[:at + size], self.buffer[at + size:]
            out.append(self._event(event))
        return b"".join(out)

    def flush(self) -> bytes:
        """The end of the stream: an unfinished last event as it is, then what the choices still keep."""
        rest, self.buffer = self.buffer, b""
        return rest + self._release_all()

    def _event(self, event: bytes) -> bytes:
        lines = event.rstrip(b"\r\n").splitlines()
        data = [line for line in lines if line.startswith(b"data:")]
        if len(data) != 1:
            return event
        payload = data[0][5:].strip()
        if payload == b"[DONE]":
            return self._release_all() + event
        try:
            chunk = jsoncodec.loads(payload)
        except ValueError:
            return event
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list) or not chunk["choices"]:
            return event
        for choice in chunk["choices"]:
            if isinstance(choice, dict):
                self._choice(choice)
        new = b"data: " + jsoncodec.dumps(chunk)
        return b"\n".join(new if line is data[0] else line for line in lines) + b"\n\n"

    def _choice(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        chat = isinstance(delta, dict)
        state = self.choices.setdefault(choice.get("index", 0), _Choice(chat))
        target, field = (delta, "content") if isinstance(delta, dict) else (choice, "text")
        if chat:
            target.pop("reasoning_content", None)
            target.pop("reasoning", None)
        if isinstance(target.get(field), str):
            target[field] = state.pass_text(target[field], self.end)
        if choice.get("finish_reason") and not state.released:
            kept, unfinished = state.release(self.start)
            self._count(unfinished)
            if kept or field in target:
                target[field] = (target.get(field) or "") + kept

    def _release_all(self) -> bytes:
        out = []
        for index, state in self.choices.items():
            if state.released:
                continue
            kept, unfinished = state.release(self.start)
            self._count(unfinished)
            if kept:
                piece = {"delta": {"content": kept}} if state.chat else {"text": kept}
                out.append(b"data: " + jsoncodec.dumps({"choices": [{"index": index, **piece}]}) + b"\n\n")
        return b"".join(out)

    def _count(self, unfinished: bool) -> None:
        if unfinished and "unfinished_reasoning" not in self.response.error_kinds:
            self.response.error_kinds = [*self.response.error_kinds, "unfinished_reasoning"]


MASKED_VARS = "EVALS_PROXY_MASKED_VARS"
"""Comma-separated NAMES of the variables whose values never reach a body log (set by the runtime for the proxy
and its other processes, which inherit it): the run's keys and the Hub token."""
MASK = b"***"
MIN_MASKED = 4
"""Values shorter than this are not masked (as in harness.log): they would mask ordinary text."""


def masked_values(environ: Mapping[str, str] = os.environ) -> list[bytes]:
    """The values of the variables :data:`MASKED_VARS` names, longest first."""
    names = [n.strip() for n in environ.get(MASKED_VARS, "").split(",") if n.strip()]
    values = {environ.get(name, "").encode() for name in names}
    return sorted((v for v in values if len(v) >= MIN_MASKED), key=len, reverse=True)


class BodyLog:
    """A JSONL log of request or response bodies holding at most ``max_records`` records.

    The proxy's processes share the file: each append happens under an exclusive lock, after counting
    the records the others appended since this process last looked. Known secret values are replaced by
    ``***`` before anything is written (an endpoint may echo the key in an error body).
    """

    def __init__(self, path: Path, config: LoggingConfig, *, secrets: list[bytes] | None = None) -> None:
        self.path, self.config = path, config
        self.secrets = secrets or []
        self._lock = threading.Lock()
        self.full = config.max_records == 0
        self._counted_bytes = 0
        self._records = 0

    def write(self, request_id: str, raw: bytes, **fields: Any) -> None:
        """Append one record unless the file is full."""
        with self._lock:
            if self.full:
                return
            for secret in self.secrets:
                raw = raw.replace(secret, MASK)
            text = raw[: self.config.max_bytes].decode(errors="replace")
            line = jsoncodec.dumps({"id": request_id, **fields, "body": text,
                                    "truncated": len(raw) > self.config.max_bytes}) + b"\n"
            with self.path.open("ab+", buffering=0) as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
                handle.seek(self._counted_bytes)
                self._records += handle.read().count(b"\n")
                if self._records >= self.config.max_records:
                    self.full = True
                    return
                handle.write(line)
                self._records += 1
                self._counted_bytes = handle.tell()


class RequestLogging:
    """Log request bodies (bounded)."""

    def __init__(self, log: BodyLog) -> None:
        self.log = log

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Log, then forward."""
        if not self.log.full:
            self.log.write(request.request_id, request.raw, path=request.path)
        return await call_next(request)


class ResponseLogging:
    """Log response bodies (bounded)."""

    def __init__(self, log: BodyLog) -> None:
        self.log = log

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Forward, then log (a streamed answer once it has ended, whole)."""
        response = await call_next(request)
        if response.stream is not None:
            status = response.status

            def log(stream: AnswerStream, error: str | None) -> None:
                if not self.log.full:
                    self.log.write(request.request_id, stream.raw, status=status, cache_hit=False, streamed=True,
                                   **({"error": error} if error else {}))

            response.stream.on_end(log)
        elif not self.log.full:
            self.log.write(request.request_id, response.raw, status=response.status, cache_hit=response.cache_hit)
        return response
