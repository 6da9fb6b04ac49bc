"""What the routes share: the loaded model, its chat template, the model thread, and the settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, TypeVar, cast

from fastapi import Depends, Request

from reference_endpoint.chat import ChatTemplate
from reference_endpoint.engine import Engine, EngineInputError
from reference_endpoint.errors import APIError
from reference_endpoint.worker import ModelWorker

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """How the server runs (from flags and environment, see `reference_endpoint.cli`)."""

    model_path: Path
    served_model_name: str
    n_ctx: int
    threads: int
    default_max_tokens: int = 1024


@dataclass
class Server:
    """The loaded model and everything a request needs."""

    settings: Settings
    engine: Engine
    template: ChatTemplate
    worker: ModelWorker = field(default_factory=ModelWorker)
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def load(cls, settings: Settings) -> Server:
        engine = Engine(settings.model_path, n_ctx=settings.n_ctx, threads=settings.threads)
        template = ChatTemplate(engine.metadata.get("tokenizer.chat_template"),
                                bos_token=engine.token_text(engine.bos_id) if engine.bos_id is not None else "",
                                eos_token=engine.token_text(engine.eos_id) if engine.eos_id is not None else "")
        return cls(settings, engine, template)

    @property
    def name(self) -> str:
        return self.settings.served_model_name

    async def on_model(self, fn: Callable[[], T]) -> T:
        """Run fn on the model thread, queued behind earlier requests; input errors become 400s."""
        try:
            return await self.worker.run(fn)
        except EngineInputError as err:
            raise APIError(str(err), code="invalid_prompt", param="prompt") from None

    def tokens_of(self, tokens: list[int]) -> list[int]:
        """Client-supplied token ids, checked against the vocabulary (400 otherwise)."""
        try:
            self.engine.check_tokens(tokens)
        except EngineInputError as err:
            raise APIError(str(err), code="invalid_tokens") from None
        return tokens


def current_server(request: Request) -> Server:
    return cast(Server, request.app.state.server)


ServerDep = Annotated[Server, Depends(current_server)]
"""A route parameter that receives the `Server`."""
