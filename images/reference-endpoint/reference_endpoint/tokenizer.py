"""The tokenizer at the server root, as vLLM serves it and lm-eval's RemoteTokenizer reads it.

GET /tokenizer_info, POST /tokenize ({prompt} or {messages}), POST /detokenize ({tokens}).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from reference_endpoint.chat import to_plain_all
from reference_endpoint.errors import APIError
from reference_endpoint.protocol import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
    TokenizerInfo,
)
from reference_endpoint.server import ServerDep

router = APIRouter()


@router.get("/tokenizer_info")
async def tokenizer_info(server: ServerDep) -> TokenizerInfo:
    engine = server.engine

    def text(token: int | None) -> str | None:
        return None if token is None else engine.token_text(token)

    return TokenizerInfo(
        tokenizer_class="llama.cpp GGUF " + engine.metadata.get("tokenizer.ggml.model", "unknown"),
        model=server.name, bos_token=text(engine.bos_id), eos_token=text(engine.eos_id),
        pad_token=text(engine.pad_id), bos_token_id=engine.bos_id, eos_token_id=engine.eos_id,
        pad_token_id=engine.pad_id, chat_template=server.template.source, model_max_length=engine.n_ctx,
        vocab_size=engine.n_vocab, add_bos_token=engine.metadata.get("tokenizer.ggml.add_bos_token") == "true")


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, server: ServerDep) -> TokenizeResponse:
    """Tokens of a prompt, or of chat messages rendered with the chat template (images OCR'd) as the
    chat route would prompt the model."""
    if (body.prompt is None) == (body.messages is None):
        raise APIError("give exactly one of prompt (text) or messages (chat)", param="prompt")
    if body.messages is not None:
        messages = await run_in_threadpool(to_plain_all, body.messages)
        text = server.template.render(messages, add_generation_prompt=body.add_generation_prompt)
        add_special = bool(body.add_special_tokens)
    else:
        text = body.prompt or ""
        add_special = body.add_special_tokens is not False
    tokens = server.engine.tokenize(text, add_special=add_special)
    strs = [server.engine.token_text(t) for t in tokens] if body.return_token_strs else None
    return TokenizeResponse(tokens=tokens, count=len(tokens), max_model_len=server.engine.n_ctx, token_strs=strs)


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, server: ServerDep) -> DetokenizeResponse:
    return DetokenizeResponse(prompt=server.engine.detokenize(server.tokens_of(body.tokens)))
