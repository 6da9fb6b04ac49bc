"""Thread-safe, in-memory recording of every request the hub receives."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received, with the status it was answered with.

    ``path`` is the URL path as sent (still percent-encoded), without the query string.
    ``authorized`` says whether an ``Authorization`` header was present; its value is never kept.
    """

    seq: int
    method: str
    path: str
    query: str
    authorized: bool
    status: int


class Recorder:
    """Appends records under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []

    def add(self, *, method: str, path: str, query: str, authorized: bool, status: int) -> RecordedRequest:
        """Record one request; returns the record with its sequence number (0-based)."""
        with self._lock:
            record = RecordedRequest(len(self._records), method, path, query, authorized, status)
            self._records.append(record)
        return record

    def snapshot(self) -> list[RecordedRequest]:
        """A copy of the records so far, in arrival order."""
        with self._lock:
            return list(self._records)
