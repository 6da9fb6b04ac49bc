"""Chat messages to one prompt string: image parts become their OCR'd text, then the model's chat template.

The template is the GGUF's own (`tokenizer.chat_template`), rendered the way Hugging Face's
`apply_chat_template` does (sandboxed Jinja, trim_blocks, lstrip_blocks). An image is given to the model as
"Text in the image:\\n<recognised text>" before the message's own text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reference_endpoint.errors import APIError
from reference_endpoint.ocr import decode_data_url, recognise
from reference_endpoint.protocol import ChatMessage, ImagePart, TextPart

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")
"""Used only when a GGUF carries no chat template."""
NO_TEXT = "(no text recognised)"


@dataclass(frozen=True)
class PlainMessage:
    """A message as the template sees it: a role and one string."""

    role: str
    content: str


def image_block(text: str, *, number: int | None) -> str:
    label = "Text in the image" if number is None else f"Text in image {number}"
    return f"{label}:\n{text or NO_TEXT}"


def to_plain(message: ChatMessage) -> PlainMessage:
    """Flatten one message; runs tesseract for each image part (blocking: call it off the event loop)."""
    role = "system" if message.role == "developer" else message.role
    if message.content is None or isinstance(message.content, str):
        return PlainMessage(role, message.content or "")
    texts = [part.text for part in message.content if isinstance(part, TextPart)]
    urls = [part.image_url if isinstance(part.image_url, str) else part.image_url.url
            for part in message.content if isinstance(part, ImagePart)]
    images = [decode_data_url(url) for url in urls]  # every URL checked before any OCR runs
    blocks = [image_block(recognise(image), number=i + 1 if len(images) > 1 else None)
              for i, image in enumerate(images)]
    return PlainMessage(role, "\n\n".join([*blocks, "\n".join(texts)]) if blocks else "\n".join(texts))


def to_plain_all(messages: Sequence[ChatMessage]) -> list[PlainMessage]:
    return [to_plain(message) for message in messages]


class ChatTemplate:
    """A compiled chat template with the model's special tokens."""

    def __init__(self, source: str | None, *, bos_token: str, eos_token: str) -> None:
        self.source = source or CHATML
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.Undefined)
        env.globals["raise_exception"] = _raise
        self._template = env.from_string(self.source)
        self._tokens = {"bos_token": bos_token, "eos_token": eos_token}

    def render(self, messages: Sequence[PlainMessage], *, add_generation_prompt: bool = True) -> str:
        """The prompt text; a template that rejects the conversation is the client's error (400)."""
        plain = [{"role": m.role, "content": m.content} for m in messages]
        try:
            return self._template.render(messages=plain, add_generation_prompt=add_generation_prompt,
                                         **self._tokens)
        except jinja2.TemplateError as err:
            raise APIError(f"messages: the chat template rejected the conversation: {err}",
                           param="messages") from None


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)
