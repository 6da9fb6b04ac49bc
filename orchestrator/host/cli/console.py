"""Where the commands write: rich consoles for tables and messages, raw bytes for a container's output."""

from __future__ import annotations

import sys

from rich.console import Console

stdout = Console()
stderr = Console(stderr=True)


def write_output(chunk: bytes) -> None:
    """A container's output, as it arrives, to stdout."""
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
