"""The caching interceptor: answers keyed on the canonical request, kept in SQLite on disk.

Every answer is committed before it is handed to the harness, so a run restarted after a crash
re-asks nothing already answered. Streaming requests and failed answers are not cached.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from orchestrator.runtime.proxy.types import Handler, ProxyRequest, ProxyResponse


def request_key(request: ProxyRequest) -> str | None:
    """sha256 of path + canonical JSON body; None when the request must not be cached."""
    if request.body is None or request.body.get("stream"):
        return None
    canonical = json.dumps(request.body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{request.path}\n{canonical}".encode()).hexdigest()


class ResponseCache:
    """A SQLite table of answers; safe to share between runs and processes."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / "responses.sqlite", check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, status INTEGER, "
                             "content_type TEXT, body BLOB)")

    def get(self, key: str) -> ProxyResponse | None:
        """The cached answer, if any."""
        with self._lock:
            row = self._db.execute("SELECT status, content_type, body FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return ProxyResponse(status=int(row[0]), raw=bytes(row[2]), content_type=str(row[1]), cache_hit=True)

    def put(self, key: str, response: ProxyResponse) -> None:
        """Store an answer (committed at once)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                             (key, response.status, response.content_type, response.raw))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class Caching:
    """Answer from the cache, or ask further down the chain and remember a good answer."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    async def __call__(self, request: ProxyRequest, call_next: Handler) -> ProxyResponse:
        """Look up, else forward and store."""
        key = request_key(request)
        if key is not None and (hit := self.cache.get(key)) is not None:
            return hit
        response = await call_next(request)
        if key is not None and response.status == 200 and response.json() is not None:
            self.cache.put(key, response)
        return response
