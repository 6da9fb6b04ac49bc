"""The caching interceptor: answers keyed on the canonical request, kept in SQLite on disk.

Every answer is committed before it is handed to the harness (answers arriving together share one
commit), so a run restarted after a crash re-asks nothing already answered. Streaming requests and failed answers are not cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
import threading
from pathlib import Path

from orchestrator.runtime.proxy import jsoncodec
from orchestrator.runtime.proxy.types import Handler, ProxyRequest, ProxyResponse


def request_key(request: ProxyRequest) -> bytes | None:
    """sha256 of path + canonical JSON body; None when the request must not be cached."""
    if request.body is None or request.body.get("stream"):
        return None
    return hashlib.sha256(request.path.encode() + b"\n" + jsoncodec.dumps(request.body, sort_keys=True)).digest()


class ResponseCache:
    """Answers in a SQLite file; safe to share between runs and processes.

    The table is append-only (rows in key order would dirty a random page per answer; appended rows
    share pages), and which row holds which key is kept in memory, loaded at start, so a miss costs
    no query. Writes are group-committed: the answers that arrive in one turn of the event loop share
    one transaction, and each waits for that commit before it is handed on, so what the harness has
    seen is on disk. An answer another process adds while this one runs is seen by the next run.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / "responses.sqlite", check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._lock = threading.Lock()
        self._pending: list[tuple[bytes, int, str, bytes]] = []
        self._committed: asyncio.Future[None] | None = None
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (id INTEGER PRIMARY KEY, key BLOB NOT NULL, "
                             "status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL)")
            self._rows: dict[bytes, int] = dict(self._db.execute("SELECT key, id FROM responses ORDER BY id"))

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: bytes) -> ProxyResponse | None:
        """The cached answer, if any."""
        row_id = self._rows.get(key)
        if row_id is None:
            return None
        with self._lock:
            row = self._db.execute("SELECT status, content_type, body FROM responses WHERE id = ?",
                                   (row_id,)).fetchone()
        if row is None:
            return None
        return ProxyResponse(status=int(row[0]), raw=bytes(row[2]), content_type=str(row[1]), cache_hit=True)

    async def put(self, key: bytes, response: ProxyResponse) -> None:
        """Store an answer; returns once it is committed (with the others of this turn of the loop)."""
        self._pending.append((key, response.status, response.content_type, response.raw))
        if self._committed is None:
            loop = asyncio.get_running_loop()
            self._committed = loop.create_future()
            loop.call_soon(self._commit)
        await asyncio.shield(self._committed)

    def _commit(self) -> None:
        rows, done = self._pending, self._committed
        self._pending, self._committed = [], None
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    (last,) = self._db.execute("SELECT coalesce(max(id), 0) FROM responses").fetchone()
                    self._db.executemany("INSERT INTO responses VALUES (?, ?, ?, ?, ?)",
                                         [(last + 1 + i, *row) for i, row in enumerate(rows)])
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as err:
            if done is not None:
                done.set_exception(err)
            return
        self._rows.update((row[0], last + 1 + i) for i, row in enumerate(rows))
        if done is not None:
            done.set_result(None)

    def close(self) -> None:
        """Commit what is pending and close the database."""
        if self._pending:
            self._commit()
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
            try:
                await self.cache.put(key, response)
            except sqlite3.Error as err:  # the answer is still good; only resuming loses it
                print(f"adapter proxy: warning: could not cache an answer: {err}", file=sys.stderr)
        return response
