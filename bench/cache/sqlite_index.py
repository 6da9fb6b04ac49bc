"""The benchmark's option (b): no key index in memory, an SQLite index on the key in every file instead.

A get() asks each file in turn (``WHERE key = ?``, a B-tree search of the index); a put() is
group-committed per turn of the event loop like the proxy's cache, but every row also goes into the
key index, at a random place. Not used by the proxy.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

from orchestrator.runtime.proxy.types import ProxyResponse

SCHEMA = ("CREATE TABLE IF NOT EXISTS responses (id INTEGER PRIMARY KEY, key BLOB NOT NULL, "
          "status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL)")
INDEX = "CREATE INDEX IF NOT EXISTS responses_key ON responses(key)"


def connect(path: Path) -> sqlite3.Connection:
    """One file, set up like the proxy's, with the key index."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(SCHEMA)
    db.execute(INDEX)
    return db


class SqliteIndexCache:
    """get, put, close and len like ResponseCache's."""

    def __init__(self, directory: Path, *, process: int = 0, processes: int = 1) -> None:
        self.directory = directory
        self._files: dict[Path, sqlite3.Connection] = {}
        for index in range(processes):
            self._open(index)
        self._own = self._open(process)
        self._pending: list[tuple[bytes, int, str, bytes]] = []
        self._listed_at = 0.0

    def _open(self, process: int) -> sqlite3.Connection:
        path = self.directory / ("responses.sqlite" if process == 0 else f"responses.{process}.sqlite")
        if path not in self._files:
            self._files[path] = connect(path)
        return self._files[path]

    def __len__(self) -> int:
        return sum(db.execute("SELECT count(*) FROM responses").fetchone()[0] for db in self._files.values())

    def get(self, key: bytes) -> ProxyResponse | None:
        """The cached answer, if any: each file's key index asked in turn."""
        now = time.monotonic()
        if now - self._listed_at >= 1.0:
            self._listed_at = now
            for path in sorted(self.directory.glob("responses*.sqlite")):
                if path not in self._files:
                    self._files[path] = connect(path)
        for db in self._files.values():
            row = db.execute("SELECT status, content_type, body FROM responses WHERE key = ? LIMIT 1",
                             (key,)).fetchone()
            if row is not None:
                return ProxyResponse(status=int(row[0]), raw=bytes(row[2]), content_type=str(row[1]), cache_hit=True)
        return None

    def put(self, key: bytes, response: ProxyResponse) -> None:
        """Store an answer: committed at the end of this turn of the event loop."""
        self._pending.append((key, response.status, response.content_type, response.raw))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        rows, self._pending = self._pending, []
        try:
            self._own.execute("BEGIN IMMEDIATE")
            self._own.executemany("INSERT INTO responses (key, status, content_type, body) VALUES (?, ?, ?, ?)", rows)
            self._own.execute("COMMIT")
        except sqlite3.Error as err:
            print(f"warning: could not cache {len(rows)} answer(s): {err}", file=sys.stderr)

    def close(self) -> None:
        """Commit what is pending and close the files."""
        if self._pending:
            self._commit()
        for db in self._files.values():
            db.close()
