"""The FastAPI application: model loaded at startup (the port opens once it is), routes, error bodies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from reference_endpoint import generation, tokenizer
from reference_endpoint.errors import install_error_handlers
from reference_endpoint.protocol import Health, ModelCard, ModelList
from reference_endpoint.server import Server, ServerDep, Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """The server for these settings; the model loads in the lifespan, before the port accepts requests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server = await run_in_threadpool(Server.load, settings)
        log.info("loaded %s (%s): context %d tokens, vocabulary %d, %d threads", settings.served_model_name,
                 settings.model_path, server.engine.n_ctx, server.engine.n_vocab, settings.threads)
        app.state.server = server
        try:
            yield
        finally:
            server.worker.shutdown()

    app = FastAPI(title="evals reference endpoint", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(JSONBodies)
    install_error_handlers(app)
    app.include_router(generation.router)
    app.include_router(tokenizer.router)

    @app.get("/health")
    async def health(server: ServerDep) -> Health:
        return Health(model=server.name)

    @app.get("/v1/models")
    async def models(server: ServerDep) -> ModelList:
        return ModelList(data=[ModelCard(id=server.name, created=server.created, max_model_len=server.engine.n_ctx)])

    return app


class JSONBodies:
    """Every request body is JSON, whatever its Content-Type says (`curl -d '{...}'` sends a form type)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)
