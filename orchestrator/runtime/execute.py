"""Running the rendered command: output streamed live to the console and to logs/harness.log.

The harness runs in its own process group under ``bash -c``; SIGINT and SIGTERM sent to
the runtime are passed on to the whole group, so stopping a container stops the harness.
The value of the API key, if any, is masked in everything echoed or logged.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import BinaryIO

MASK = b"***"


class Redactor:
    """Replaces every occurrence of secrets in a byte stream, also across chunk boundaries."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = [s.encode() for s in secrets if len(s) >= 4]
        self._keep = max((len(s) for s in self._secrets), default=1) - 1
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """Redacted bytes that are safe to emit now."""
        if not self._secrets:
            return chunk
        data = self._redact(self._pending + chunk)
        cut = len(data) - self._keep if self._keep else len(data)
        cut = max(cut, 0)
        self._pending = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        """Whatever is still held back, redacted."""
        data, self._pending = self._redact(self._pending), b""
        return data

    def _redact(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, MASK)
        return data


def run_streaming(command: str, *, log_path: Path, env: Mapping[str, str], secrets: list[str],
                  console: BinaryIO | None = None) -> int:
    """Run ``command`` with bash, tee its output, return its exit code (128+N if killed by signal N)."""
    out = console if console is not None else sys.stdout.buffer
    log_path.parent.mkdir(parents=True, exist_ok=True)
    redactor = Redactor(secrets)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            ["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env), start_new_session=True,
        )
        previous = _forward_signals(proc)
        try:
            stdout = proc.stdout
            assert isinstance(stdout, io.BufferedReader)
            while chunk := stdout.read1(65536):
                _emit(redactor.feed(chunk), out, log)
            _emit(redactor.flush(), out, log)
            code = proc.wait()
        finally:
            _restore_signals(previous)
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
    return 128 - code if code < 0 else code


def _emit(data: bytes, out: BinaryIO, log: BinaryIO) -> None:
    if data:
        out.write(data)
        out.flush()
        log.write(data)
        log.flush()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


Handler = signal.Handlers | int | None | object


def _forward_signals(proc: subprocess.Popen[bytes]) -> dict[int, Handler]:
    def forward(signum: int, _frame: FrameType | None) -> None:
        _signal_group(proc, signum)

    previous: dict[int, Handler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, forward)
    return previous


def _restore_signals(previous: dict[int, Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
