"""The response cache before its key index was made compact (repository 3bebc62), for the benchmark's "before".

Its ResponseCache verbatim, without the interceptor: the key-to-row map is a dict of the full 32-byte
key to one int per answer. Not used by the proxy.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

from orchestrator.runtime.proxy.types import ProxyResponse

_SCHEMA = ("CREATE TABLE IF NOT EXISTS responses (id INTEGER PRIMARY KEY, key BLOB NOT NULL, "
           "status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL)")


_ROW_BITS = 40
"""Where a key's answer is, as one int: file number << 40 | row id (ints are not tracked by the garbage
collector; a dict of a million (file, id) tuples made its full collections take tens of milliseconds)."""


class _File:
    """One ``responses*.sqlite`` of the cache directory."""

    def __init__(self, path: Path, number: int) -> None:
        self.path = path
        self.number = number
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(_SCHEMA)
        self.seen = 0  # the last row id read


class ResponseCache:
    """Answers in SQLite files in one directory; safe to share between runs and processes.

    Each of the proxy's processes appends to its own file (``responses.sqlite`` for the first,
    ``responses.N.sqlite`` for the others), so they never wait for each other's write lock; every
    process reads all of them. The tables are append-only (rows in key order would dirty a random
    page per answer; appended rows share pages), and which row of which file holds which key is kept
    in memory: loaded at start, and brought up to date (one query per file, for the rows added since)
    at most once per turn of the event loop when a key is not known. Writes are group-committed: the
    answers of one turn of the event loop share one transaction, at the end of the turn. An answer
    reaches the harness in the turn it is committed at the end of, so a crash can lose at most the
    answers of one turn (a few milliseconds), which a restarted run then asks again.
    """

    def __init__(self, directory: Path, *, process: int = 0, processes: int = 1) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._files: dict[Path, _File] = {}
        self._numbered: list[_File] = []
        for index in range(processes):  # the proxy's own files from the start; others' when they appear
            self._open(index)
        self._own = self._open(process)
        self._rows: dict[bytes, int] = {}
        self._pending: list[tuple[bytes, int, str, bytes]] = []
        self._scanned_this_turn = False
        self._listed_at = 0.0
        self._scan()

    def _open(self, process: int) -> _File:
        path = self.directory / ("responses.sqlite" if process == 0 else f"responses.{process}.sqlite")
        return self._add(path)

    def _add(self, path: Path) -> _File:
        if path not in self._files:
            self._files[path] = _File(path, len(self._numbered))
            self._numbered.append(self._files[path])
        return self._files[path]

    def __len__(self) -> int:
        return len(self._rows)

    def _scan(self) -> None:
        """Learn the rows added since the last scan, by this process or any other (new files at most once a second)."""
        now = time.monotonic()
        if now - self._listed_at >= 1.0:
            self._listed_at = now
            for path in sorted(self.directory.glob("responses*.sqlite")):
                self._add(path)
        for file in self._numbered:
            base = file.number << _ROW_BITS
            for key, row_id in file.db.execute("SELECT key, id FROM responses WHERE id > ? ORDER BY id", (file.seen,)):
                self._rows[key] = base | row_id
                file.seen = row_id

    def get(self, key: bytes) -> ProxyResponse | None:
        """The cached answer, if any."""
        where = self._rows.get(key)
        if where is None and not self._scanned_this_turn:
            # The proxy's other processes, or other runs sharing the cache, may have answered it meanwhile.
            self._scanned_this_turn = True
            asyncio.get_running_loop().call_soon(self._new_turn)
            self._scan()
            where = self._rows.get(key)
        if where is None:
            return None
        file, row_id = self._numbered[where >> _ROW_BITS], where & ((1 << _ROW_BITS) - 1)
        row = file.db.execute("SELECT status, content_type, body FROM responses WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            return None
        return ProxyResponse(status=int(row[0]), raw=bytes(row[2]), content_type=str(row[1]), cache_hit=True)

    def _new_turn(self) -> None:
        self._scanned_this_turn = False

    def put(self, key: bytes, response: ProxyResponse) -> None:
        """Store an answer: committed at the end of this turn of the event loop, with the others of the turn."""
        self._pending.append((key, response.status, response.content_type, response.raw))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        db = self._own.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                (last,) = db.execute("SELECT coalesce(max(id), 0) FROM responses").fetchone()
                db.executemany("INSERT INTO responses VALUES (?, ?, ?, ?, ?)",
                               [(last + 1 + i, *row) for i, row in enumerate(rows)])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as err:  # the answers were good; only resuming will miss them
            print(f"adapter proxy: warning: could not cache {len(rows)} answer(s): {err}", file=sys.stderr)
            return
        base = self._own.number << _ROW_BITS
        self._rows.update((row[0], base | (last + 1 + i)) for i, row in enumerate(rows))

    def close(self) -> None:
        """Commit what is pending and close the files."""
        if self._pending:
            self._commit()
        for file in self._files.values():
            file.db.close()
