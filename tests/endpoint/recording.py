"""Thread-safe recording of every request, in memory and optionally as JSONL."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

Kind = Literal["inference", "tokenizer", "info", "unknown"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the endpoint received it, with the status it answered.

    ``kind`` separates model calls (``inference``: chat and legacy completions) from tokenizer
    calls (``tokenizer``), ``/health`` and ``/v1/models`` (``info``) and unknown paths (``unknown``).
    ``body`` is the parsed JSON body, or None when it was empty or not JSON.
    """

    seq: int
    method: str
    path: str
    kind: Kind
    status: int
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        """A header's value, looked up case-insensitively."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    def to_json(self) -> dict[str, Any]:
        """The JSONL record."""
        return asdict(self)


class Recorder:
    """Appends records under a lock; writes each one as a JSONL line at once if given a file."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._file: IO[str] | None = path.open("a", encoding="utf-8") if path is not None else None

    def add(
        self, *, method: str, path: str, kind: Kind, status: int, headers: dict[str, str], body: Any
    ) -> RecordedRequest:
        """Record one request; returns the record with its sequence number (0-based)."""
        with self._lock:
            record = RecordedRequest(len(self._records), method, path, kind, status, headers, body)
            self._records.append(record)
            if self._file is not None:
                self._file.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
                self._file.flush()
        return record

    def snapshot(self) -> list[RecordedRequest]:
        """A copy of the records so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def close(self) -> None:
        """Close the JSONL file, if any."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
