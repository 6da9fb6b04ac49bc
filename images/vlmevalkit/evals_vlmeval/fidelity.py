"""Full-fidelity images: with ``img_size: -1`` the endpoint receives each image's original bytes.

Upstream, ``img_size: -1`` only skips the resize. The image still loses quality twice: the dataset writes
the TSV's base64 image to ``<index>.jpg`` re-encoded as JPEG (Pillow's default quality, 75), and
``OpenAIWrapper.prepare_itlist`` re-encodes that file as JPEG again and labels it ``image/jpeg``.

Here:

- ``decode_base64_to_image_file`` without a target size writes the decoded bytes unchanged (after checking
  that they are an image); with a target size it does what upstream does.
- ``OpenAIWrapper.prepare_itlist`` with ``img_size == -1`` sends the file's bytes unchanged, as a data URL
  with the MIME type of their actual format (PNG, JPEG, WebP, GIF; any other format is converted to PNG,
  losslessly). With a positive ``img_size`` (e.g. ``params.extra.img_size: 512``) upstream's code runs:
  shrink to fit, JPEG.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals_vlmeval.patches import rebind

SENT_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


def apply() -> str:
    """Replace the image writer and the chat client's image encoding."""
    import vlmeval.smp.vlm  # noqa: PLC0415
    from vlmeval.api.gpt import OpenAIWrapper  # noqa: PLC0415

    upstream_writer = vlmeval.smp.vlm.decode_base64_to_image_file
    rebind("decode_base64_to_image_file", upstream_writer, _writer(upstream_writer))
    OpenAIWrapper.prepare_itlist = _itlist(OpenAIWrapper.prepare_itlist)  # type: ignore[method-assign]
    return "images sent as their original bytes when img_size is -1"


def _writer(upstream: Callable[..., None]) -> Callable[..., None]:
    def decode_base64_to_image_file(base64_string: str, image_path: str, target_size: int = -1) -> None:
        if target_size > 0:
            upstream(base64_string, image_path, target_size=target_size)
            return
        data = base64.b64decode(base64_string)
        _image_format(data)  # not an image: fail here, as upstream does
        os.makedirs(os.path.dirname(image_path) or ".", exist_ok=True)
        Path(image_path).write_bytes(data)

    return decode_base64_to_image_file


def _itlist(upstream: Callable[[Any, list[dict[str, Any]]], list[dict[str, Any]]]
            ) -> Callable[[Any, list[dict[str, Any]]], list[dict[str, Any]]]:
    def prepare_itlist(self: Any, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.img_size != -1 or not any(item["type"] == "image" for item in inputs):
            return upstream(self, inputs)
        content: list[dict[str, Any]] = []
        for item in inputs:
            if item["type"] == "text":
                content.append({"type": "text", "text": item["value"]})
            elif item["type"] == "image":
                url = data_url(Path(item["value"]).read_bytes())
                content.append({"type": "image_url", "image_url": {"url": url, "detail": self.img_detail}})
        return content

    return prepare_itlist


def data_url(data: bytes) -> str:
    """``data:<mime>;base64,...`` of the bytes as they are, or converted to PNG if endpoints may not take them."""
    image_format = _image_format(data)
    mime = SENT_AS_IS.get(image_format)
    if mime is None:
        from PIL import Image  # noqa: PLC0415

        buffer = io.BytesIO()
        with Image.open(io.BytesIO(data)) as image:
            image.save(buffer, format="PNG")
        data, mime = buffer.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _image_format(data: bytes) -> str:
    from PIL import Image  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as image:
        return str(image.format)
