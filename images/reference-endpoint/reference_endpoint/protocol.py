"""The wire format: the subset of OpenAI's (and vLLM's tokenizer) API this server speaks, as pydantic models.

Requests ignore fields they do not know (clients send `user`, `presence_penalty`, ...), but a known field
with a wrong type or value is a 400. Unset and null fields take OpenAI's defaults.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_LOGPROBS = 20


class Request(BaseModel):
    """Base of every request body."""

    model_config = ConfigDict(extra="ignore")


class SamplingFields(Request):
    """Fields chat and completions share."""

    model: str | None = Field(None, description="Any name; the server has one model")
    temperature: float | None = Field(None, ge=0, le=2, description="0 is greedy; default 1")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling; default 1")
    stop: str | list[str] | None = Field(None, description="Up to 16 strings that end the completion")
    seed: int | None = Field(None, description="The same seed and request give the same completion")
    n: int | None = Field(None, ge=1, le=1, description="Only one choice per prompt")
    stream: bool | None = Field(None, description="Streaming is not supported")

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


# --- chat ----------------------------------------------------------------------------------------

class ImageURL(Request):
    url: str = Field(description="A data: URL (base64 PNG or JPEG); http(s) URLs are refused")
    detail: str | None = None


class TextPart(Request):
    type: Literal["text"]
    text: str


class ImagePart(Request):
    type: Literal["image_url"]
    image_url: ImageURL | str


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: ChatLogprobs | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


# --- legacy completions ----------------------------------------------------------------------------

Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(SamplingFields):
    prompt: Prompt = Field(description="Text, token ids, or a batch of either")
    max_tokens: int | None = Field(None, ge=0, description="0 only scores the prompt (with echo); default 16")
    echo: bool | None = Field(None, description="Put the prompt (and its logprobs) before the completion")
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="Top alternatives per token")


class CompletionLogprobs(BaseModel):
    """OpenAI's legacy format; the first prompt token has no logprob (None)."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: Literal["stop", "length"]


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


# --- models and tokenizer (vLLM's routes at the server root) ----------------------------------------

class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "evals"
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TokenizeRequest(Request):
    """vLLM's /tokenize: either a prompt or chat messages (rendered with the chat template)."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    return_token_strs: bool = False


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int
    max_model_len: int
    token_strs: list[str] | None = None


class DetokenizeRequest(Request):
    model: str | None = None
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    prompt: str


class TokenizerInfo(BaseModel):
    tokenizer_class: str
    model: str
    bos_token: str | None
    eos_token: str | None
    pad_token: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None
    chat_template: str | None
    model_max_length: int
    vocab_size: int
    add_bos_token: bool


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
