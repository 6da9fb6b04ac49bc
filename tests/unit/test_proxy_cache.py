"""The adapter proxy's response cache: its key index against keys that share a prefix, other writers, restarts."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from orchestrator.runtime.proxy.cache import ResponseCache
from orchestrator.runtime.proxy.types import ProxyResponse


def key(i: int, *, prefix: bytes | None = None) -> bytes:
    """A 32-byte key like request_key's; with `prefix`, its first 8 bytes are that (the index keeps only those)."""
    digest = hashlib.sha256(b"%d" % i).digest()
    return digest if prefix is None else prefix + digest[8:]


def answer(i: int) -> ProxyResponse:
    return ProxyResponse(status=200, raw=b'{"answer": %d}' % i)


def put_all(cache: ResponseCache, answers: dict[bytes, int]) -> None:
    async def main() -> None:
        for k, i in answers.items():
            cache.put(k, answer(i))
        await asyncio.sleep(0)  # committed at the end of the turn

    asyncio.run(main())


def get_all(cache: ResponseCache, keys: list[bytes]) -> list[bytes | None]:
    async def main() -> list[bytes | None]:
        hits = [cache.get(k) for k in keys]
        return [hit.raw if hit is not None else None for hit in hits]

    return asyncio.run(main())


SHARED = b"\x5a" * 8


def test_keys_sharing_their_first_bytes_each_get_their_own_answer(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    put_all(cache, {key(1, prefix=SHARED): 1, key(2, prefix=SHARED): 2, key(3): 3})
    assert get_all(cache, [key(1, prefix=SHARED), key(2, prefix=SHARED), key(3, prefix=SHARED), key(3)]) == [
        b'{"answer": 1}', b'{"answer": 2}', None, b'{"answer": 3}']
    cache.close()


def test_a_restart_loads_the_index_of_every_file_in_bulk(tmp_path: Path) -> None:
    # More rows per file than are indexed one by one, so the files are read sorted and merged, bucket by bucket;
    # 100 keys share their first 8 bytes, half in each file.
    first, second = ResponseCache(tmp_path, processes=2), ResponseCache(tmp_path, process=1, processes=2)
    put_all(first, {key(i): i for i in range(0, 10_000, 2)} | {key(-i, prefix=SHARED): -i for i in range(1, 100, 2)})
    put_all(second, {key(i): i for i in range(1, 10_000, 2)} | {key(-i, prefix=SHARED): -i for i in range(2, 101, 2)})
    keys = [key(i) for i in range(-5, 10_005)] + [key(-i, prefix=SHARED) for i in range(1, 106)]
    expected = [b'{"answer": %d}' % i if 0 <= i < 10_000 else None for i in range(-5, 10_005)] + [
        b'{"answer": %d}' % -i if i <= 100 else None for i in range(1, 106)]
    # The first process indexed its own rows one by one, and reads the second's in bulk at its first miss.
    assert get_all(first, keys) == expected
    assert len(first) == 10_100
    first.close()
    second.close()
    restarted = ResponseCache(tmp_path)
    assert len(restarted) == 10_100
    assert get_all(restarted, keys) == expected
    restarted.close()


def test_rows_of_the_other_processes_are_found_once_committed(tmp_path: Path) -> None:
    mine, other = ResponseCache(tmp_path, processes=2), ResponseCache(tmp_path, process=1, processes=2)

    async def main() -> list[ProxyResponse | None]:
        assert mine.get(key(1)) is None  # reads the files: nothing yet
        other.put(key(1), answer(1))
        await asyncio.sleep(0)  # the other process commits; this one reads the files again at its next miss
        return [mine.get(key(1)), mine.get(key(2))]

    hit, miss = asyncio.run(main())
    assert hit is not None and hit.raw == b'{"answer": 1}' and hit.cache_hit and miss is None
    mine.close()
    other.close()


def test_two_runs_appending_to_the_same_file_index_each_row_once(tmp_path: Path) -> None:
    one, two = ResponseCache(tmp_path), ResponseCache(tmp_path)  # two runs sharing a cache dir, both process 0
    put_all(one, {key(1): 1})
    put_all(two, {key(2): 2})
    put_all(one, {key(3): 3, key(1): 1})  # the same answer stored again, as when two processes were asked at once
    assert get_all(one, [key(1), key(2), key(3)]) == [b'{"answer": 1}', b'{"answer": 2}', b'{"answer": 3}']
    assert len(one) == 4  # rows, each once: 1, 2, 3 and 1 again
    assert get_all(two, [key(3)]) == [b'{"answer": 3}']
    one.close()
    two.close()


def test_a_key_that_is_no_sha256_digest_is_refused(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    with pytest.raises(ValueError, match=r"a cache key is a sha256 digest \(32 bytes\), not 5 bytes"):
        cache.put(b"short", answer(1))
    cache.close()
