"""The caching interceptor: answers keyed on the canonical request, kept in SQLite on disk.

Every answer is committed at the end of the event loop's turn in which it arrived (answers arriving
together share one commit), so a run restarted after a crash re-asks nothing answered before the
last few milliseconds. Failed answers are not cached. A streamed answer (``stream: true``) is cached
whole once it has ended complete, and a hit replays it whole, at once (a streamed request and the same
request without ``stream`` have different keys).

Each proxy process keeps an index of every cached answer in memory: 8 bytes of its key and its row's
place, 17.1 bytes per answer, 17.1 MB at 1,000,000 answers (the dict of full keys it replaced: 139 MB).
Loading it at start took 1.8 s at 1,000,000 answers of 1.5 KB (the dict: 1.4 s), most of it SQLite
reading the tables (bench/cache/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
import time
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

from orchestrator.runtime.proxy import jsoncodec
from orchestrator.runtime.proxy.types import AnswerStream, Handler, ProxyRequest, ProxyResponse


def request_key(request: ProxyRequest) -> bytes | None:
    """sha256 of path + canonical JSON body; None when the request must not be cached (not JSON)."""
    if request.body is None:
        return None
    return hashlib.sha256(request.path.encode() + b"\n" + jsoncodec.dumps(request.body, sort_keys=True)).digest()


_SCHEMA = ("CREATE TABLE IF NOT EXISTS responses (id INTEGER PRIMARY KEY, key BLOB NOT NULL, "
           "status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL)")


_ROW_BITS = 40
"""Where a key's answer is, as one int: file number << 40 | row id."""

_PREFIX_BYTES = 8  # a 64-bit number: the arrays' "Q" items, and the buckets' shifts
_BUCKET_ROWS = 512
"""The index doubles its buckets when they hold more than this many keys on average."""

_BULK_ROWS = 4096
"""More new rows than this in one file (and than an eighth of the index) are read sorted by SQLite and
merged bucket by bucket: about 0.2 µs per row indexed, against about 2 µs per row added one by one."""


def _prefix(key: bytes) -> int:
    """The first 8 bytes of a key as a number (keys are sha256 digests, so these are uniform)."""
    return int.from_bytes(key[:_PREFIX_BYTES], "big")


class _KeyIndex:
    """Which rows may hold a key: the first 8 bytes of every key and where its row is, 16 bytes per row.

    The key space is cut into 2**bits buckets by the prefix's top bits; each bucket is two arrays,
    prefixes in order and the rows they point at. Adding a row inserts into one bucket (a move of
    a few kilobytes at most); a lookup is one binary search in one bucket. Doubling the buckets splits
    each in two at one binary search. A prefix may belong to several keys (or the same key answered
    twice): all its rows are candidates, and the caller checks the full key in the row. Arrays hold
    machine words, not objects: nothing for the garbage collector to walk (a dict of a million
    (file, row) tuples made its full collections take tens of milliseconds).
    """

    def __init__(self) -> None:
        self._bits = 0
        self._prefixes = [array("Q")]
        self._wheres = [array("Q")]
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def find(self, key: bytes) -> list[int]:
        """Where the rows whose key starts like this one are (usually none or one)."""
        prefix = _prefix(key)
        bucket = prefix >> (64 - self._bits)
        prefixes = self._prefixes[bucket]
        i = bisect_left(prefixes, prefix)
        found: list[int] = []
        while i < len(prefixes) and prefixes[i] == prefix:
            found.append(self._wheres[bucket][i])
            i += 1
        return found

    def add(self, key: bytes, where: int) -> None:
        """Index one row."""
        if self._len >= _BUCKET_ROWS << self._bits:
            self.grow(self._len + 1)
        prefix = _prefix(key)
        bucket = prefix >> (64 - self._bits)
        i = bisect_right(self._prefixes[bucket], prefix)
        self._prefixes[bucket].insert(i, prefix)
        self._wheres[bucket].insert(i, where)
        self._len += 1

    def merge(self, prefixes: array[int], wheres: array[int]) -> None:
        """Index many rows at once, given in prefix order."""
        self.grow(self._len + len(prefixes))
        shift = 64 - self._bits
        start = 0
        for bucket in range(len(self._prefixes)):
            end = bisect_left(prefixes, (bucket + 1) << shift, start)
            if end == start:
                continue
            new_prefixes, new_wheres = prefixes[start:end], wheres[start:end]
            if self._prefixes[bucket]:  # two sorted runs: the sort finds them and merges in one pass
                both, both_wheres = self._prefixes[bucket] + new_prefixes, self._wheres[bucket] + new_wheres
                order = sorted(range(len(both)), key=both.__getitem__)
                new_prefixes = array("Q", map(both.__getitem__, order))
                new_wheres = array("Q", map(both_wheres.__getitem__, order))
            self._prefixes[bucket], self._wheres[bucket] = new_prefixes, new_wheres
            start = end
        self._len += len(prefixes)

    def grow(self, rows: int) -> None:
        """Double the buckets until `rows` keys would fill them with at most _BUCKET_ROWS on average."""
        while rows > _BUCKET_ROWS << self._bits and self._bits < 32:
            self._bits += 1
            shift = 64 - self._bits
            split_prefixes, split_wheres = [], []
            for bucket, (prefixes, wheres) in enumerate(zip(self._prefixes, self._wheres, strict=True)):
                middle = bisect_left(prefixes, (2 * bucket + 1) << shift)
                split_prefixes += [prefixes[:middle], prefixes[middle:]]
                split_wheres += [wheres[:middle], wheres[middle:]]
            self._prefixes, self._wheres = split_prefixes, split_wheres


def _last_id(db: sqlite3.Connection) -> int:
    (last,) = db.execute("SELECT coalesce(max(id), 0) FROM responses").fetchone()
    return int(last)


class _File:
    """One ``responses*.sqlite`` of the cache directory."""

    def __init__(self, path: Path, number: int) -> None:
        self.path = path
        self.number = number
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(_SCHEMA)
        self.seen = 0  # the last row id indexed


class ResponseCache:
    """Answers in SQLite files in one directory; safe to share between runs and processes.

    Each of the proxy's processes appends to its own file (``responses.sqlite`` for the first,
    ``responses.N.sqlite`` for the others), so they never wait for each other's write lock; every
    process reads all of them. The tables are append-only (rows in key order would dirty a random page
    per answer; appended rows share pages), and which rows may hold which key is kept in memory
    (`_KeyIndex`: 8 bytes of the key and the row's place, about 17 bytes per answer): loaded at start,
    and brought up to date (a query per file for its last row, and one for the rows it gained) at most
    once per turn of the event loop when a key is not known. A hit reads the row and compares its full
    key, so two keys sharing a prefix cannot answer for each other. Writes are group-committed: the
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
        self._index = _KeyIndex()
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
        """The rows indexed (an answer stored twice, by two processes asked the same at once, counts twice)."""
        return len(self._index)

    def _scan(self) -> None:
        """Learn the rows added since the last scan, by this process or any other (new files at most once a second)."""
        now = time.monotonic()
        if now - self._listed_at >= 1.0:
            self._listed_at = now
            for path in sorted(self.directory.glob("responses*.sqlite")):
                self._add(path)
        news = [(file, last) for file in self._numbered if (last := _last_id(file.db)) > file.seen]
        self._index.grow(len(self._index) + sum(last - file.seen for file, last in news))  # at once, not per file
        for file, last in news:
            self._read(file, last)

    def _read(self, file: _File, last: int) -> None:
        """Index the rows of one file after the last read, up to row `last`."""
        base = file.number << _ROW_BITS
        if last - file.seen <= max(_BULK_ROWS, len(self._index) // 8):
            for key, row_id in file.db.execute("SELECT key, id FROM responses WHERE id > ? AND id <= ?",
                                               (file.seen, last)):
                self._index.add(key, base | row_id)
        else:  # at start: SQLite sorts (in C, spilling to a temporary file), Python merges sorted runs
            prefixes, wheres = array("Q"), array("Q")
            rows = file.db.execute(f"SELECT substr(key, 1, {_PREFIX_BYTES}) AS prefix, id FROM responses "
                                   "WHERE id > ? AND id <= ? ORDER BY prefix", (file.seen, last))
            while batch := rows.fetchmany(4096):  # small batches: their objects would stay in the process's memory
                prefixes.frombytes(b"".join([prefix for prefix, _ in batch]))
                wheres.extend([base | row_id for _, row_id in batch])
            if sys.byteorder == "little":  # the prefixes came big-endian
                prefixes.byteswap()
            self._index.merge(prefixes, wheres)
        file.seen = last

    def get(self, key: bytes) -> ProxyResponse | None:
        """The cached answer, if any."""
        found = self._lookup(key)
        if found is None and not self._scanned_this_turn:
            # The proxy's other processes, or other runs sharing the cache, may have answered it meanwhile.
            self._scanned_this_turn = True
            asyncio.get_running_loop().call_soon(self._new_turn)
            self._scan()
            found = self._lookup(key)
        return found

    def _lookup(self, key: bytes) -> ProxyResponse | None:
        for where in self._index.find(key):
            file, row_id = self._numbered[where >> _ROW_BITS], where & ((1 << _ROW_BITS) - 1)
            row = file.db.execute("SELECT key, status, content_type, body FROM responses WHERE id = ?",
                                  (row_id,)).fetchone()
            if row is not None and bytes(row[0]) == key:
                return ProxyResponse(status=int(row[1]), raw=bytes(row[3]), content_type=str(row[2]), cache_hit=True)
        return None

    def _new_turn(self) -> None:
        self._scanned_this_turn = False

    def put(self, key: bytes, response: ProxyResponse) -> None:
        """Store an answer: committed at the end of this turn of the event loop, with the others of the turn."""
        if len(key) != 32:
            raise ValueError(f"a cache key is a sha256 digest (32 bytes), not {len(key)} bytes")
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
                last = _last_id(db)
                db.executemany("INSERT INTO responses VALUES (?, ?, ?, ?, ?)",
                               [(last + 1 + i, *row) for i, row in enumerate(rows)])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as err:  # the answers were good; only resuming will miss them
            print(f"adapter proxy: warning: could not cache {len(rows)} answer(s): {err}", file=sys.stderr)
            return
        if last == self._own.seen:  # nobody else wrote to this file since it was read: index our rows directly
            base = self._own.number << _ROW_BITS
            for i, row in enumerate(rows):
                self._index.add(row[0], base | (last + 1 + i))
            self._own.seen = last + len(rows)
        else:  # another run sharing the cache also writes to this file: read its rows and ours in order
            self._read(self._own, last + len(rows))

    def close(self) -> None:
        """Commit what is pending and close the files."""
        if self._pending:
            self._commit()
        for file in self._files.values():
            file.db.close()


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
        if key is None or response.status != 200:
            return response
        if response.stream is not None:
            content_type = response.content_type

            def store(stream: AnswerStream, error: str | None) -> None:
                if error is None:
                    self.cache.put(key, ProxyResponse(status=200, raw=stream.raw, content_type=content_type))

            response.stream.on_end(store)
        elif response.json() is not None:
            self.cache.put(key, response)
        return response
