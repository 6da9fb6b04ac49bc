"""OpenAI-style errors: every failure is `{"error": {"message", "type", "param", "code"}}` with a 4xx/5xx.

Malformed requests (bad JSON, wrong types, unknown routes) get a 400/404/405 and never reach the model;
a bug in a handler is a 500 with the same body shape, and the server goes on serving.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error the client gets as an OpenAI error body."""

    def __init__(self, message: str, *, status: int = 400, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.code = code
        self.param = param


def error_response(error: APIError) -> JSONResponse:
    body = {"error": {"message": error.message, "type": error.kind, "param": error.param, "code": error.code}}
    return JSONResponse(body, status_code=error.status)


def describe_validation(errors: Sequence[Any]) -> tuple[str, str | None]:
    """One line from pydantic's errors: 'messages.0.role: Input should be ...' (first three)."""
    if errors and errors[0].get("type") == "json_invalid":
        reason = (errors[0].get("ctx") or {}).get("error", "JSON decode error")
        position = errors[0].get("loc", ("body", 0))[-1]
        return f"the request body is not valid JSON: {reason} (at character {position})", None
    parts: list[str] = []
    first: str | None = None
    for err in errors[:3]:
        location = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        first = first or location or None
        parts.append(f"{location}: {err.get('msg', 'invalid')}" if location else str(err.get("msg", "invalid")))
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid request: " + "; ".join(parts) + more, first


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to an OpenAI-style body."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = describe_validation(exc.errors())
        return error_response(APIError(message, param=param, code="invalid_request"))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(APIError(str(exc.detail), status=exc.status_code, kind=kind))

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(APIError(f"internal server error: {type(exc).__name__}", status=500,
                                       kind="server_error"))

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_bug)
