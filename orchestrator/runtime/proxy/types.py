"""What flows through the interceptor chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.runtime.proxy import jsoncodec


@dataclass
class ProxyRequest:
    """A request from the harness to the endpoint's path. ``body`` is the parsed JSON (None if not JSON)."""

    path: str
    raw: bytes
    body: dict[str, Any] | None
    headers: dict[str, str]
    started: float
    request_id: int

    def replace_body(self, body: dict[str, Any]) -> None:
        """Swap in a modified body (and its bytes)."""
        self.body = body
        self.raw = jsoncodec.dumps(body)


@dataclass
class ProxyResponse:
    """The answer handed back to the harness."""

    status: int
    raw: bytes
    content_type: str = "application/json"
    cache_hit: bool = False
    attempts: int = 0
    error_kinds: list[str] = field(default_factory=list)
    _json: dict[str, Any] | None = None
    _parsed: bool = False

    def json(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None (parsed once)."""
        if not self._parsed:
            self._parsed = True
            try:
                value = jsoncodec.loads(self.raw)
            except ValueError:
                value = None
            self._json = value if isinstance(value, dict) else None
        return self._json

    def replace_json(self, body: dict[str, Any]) -> None:
        """Swap in a modified JSON body."""
        self._json, self._parsed = body, True
        self.raw = jsoncodec.dumps(body)


Handler = Callable[[ProxyRequest], Awaitable[ProxyResponse]]


class Interceptor(Protocol):
    """One link of the chain: may change the request, answer it, or change the response."""

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Handle ``request``, usually by awaiting ``call_next(request)``."""
        ...


def error_response(status: int, message: str, *, kind: str) -> ProxyResponse:
    """An OpenAI-style error body."""
    body = {"error": {"message": message, "type": kind, "code": status}}
    return ProxyResponse(status=status, raw=jsoncodec.dumps(body), error_kinds=[kind])
