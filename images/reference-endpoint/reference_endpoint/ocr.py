"""Images in chat messages: data: URLs decoded and read by tesseract (Debian's tesseract-ocr, English).

This is a reference pipeline, not a vision model: the model sees the recognised text, nothing else.
Remote URLs are refused, never fetched.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import subprocess

from reference_endpoint.errors import APIError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
OCR_TIMEOUT_SECONDS = 60
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


def decode_data_url(url: str) -> bytes:
    """The image bytes of a `data:image/...;base64,...` URL; anything else is the client's error (400)."""
    if url.startswith(("http://", "https://")):
        raise APIError("image_url: remote images are not fetched by this server; send the image inline as a"
                       " data: URL (data:image/png;base64,...)", param="messages", code="image_url_not_supported")
    header, comma, payload = url.partition(",")
    if not header.startswith("data:") or not comma or not header.endswith(";base64"):
        raise APIError("image_url: expected a base64 data: URL (data:image/png;base64,...)", param="messages",
                       code="invalid_image")
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise APIError(f"image_url: image larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB", param="messages",
                       code="invalid_image")
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise APIError("image_url: the data: URL is not valid base64", param="messages",
                       code="invalid_image") from None
    if not any(raw.startswith(signature) for signature in SIGNATURES):
        raise APIError("image_url: the image is neither PNG nor JPEG", param="messages", code="invalid_image")
    return raw


def recognise(image: bytes) -> str:
    """The text tesseract reads in the image, blank lines squeezed; '' when it finds none."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(["tesseract", "stdin", "stdout", "-l", "eng"], input=image, capture_output=True,
                              timeout=OCR_TIMEOUT_SECONDS, env=env, check=False)
    except FileNotFoundError:
        raise APIError("OCR is unavailable: tesseract is not installed", status=500, kind="server_error") from None
    except subprocess.TimeoutExpired:
        raise APIError(f"image_url: OCR took longer than {OCR_TIMEOUT_SECONDS} s", param="messages",
                       code="invalid_image") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["unknown error"]
        raise APIError(f"image_url: the image could not be read ({reason[0]})", param="messages",
                       code="invalid_image")
    text = done.stdout.decode("utf-8", errors="replace").replace("\x0c", "")
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
