"""Cache key index benchmark: memory, load time, get() latency and put() throughput at 1,000,000 answers.

Standard library and project code only; run from the repository (bench/README.md explains it):

    PYTHONPATH=$PWD .venv/bin/python bench/cache/index_memory.py [--answers N] [--body-bytes B]

Fills a cache directory under bench/cache/work/ with N answers, in as many files as the proxy has
processes by default here (rows written in bulk with the cache's schema; kept for the next run), then
measures each variant in a fresh child process of its own:

- ``dict``: the cache before (bench/cache/dict_index.py: every full key in a dict);
- ``compact``: the cache now (orchestrator/runtime/proxy/cache.py: 8 key bytes and the row, in arrays);
- ``sqlite-index``: no index in memory, an SQLite index on the key in each file (bench/cache/sqlite_index.py),
  on a copy of the files that gets the index first (timed), deleted afterwards.

Per variant: the index's Python memory (tracemalloc, in a second child), RSS before and after the
load and its peak meanwhile, the load time, get() latency of hits and misses (each call timed;
``--per-turn`` lookups per turn of the event loop, as the proxy's answers arrive together, so the first
miss of a turn also reads what the other files gained), put() throughput (``--puts`` answers,
``--per-turn`` per commit, into a file of their own deleted afterwards) and the bytes written per put.
Last, the bare ``dict`` and ``compact`` indexes (no SQLite) grown to ``--growth`` keys one at a time:
their slowest adds, which show what a resize stalls. Writes bench/cache/RESULTS.md (and RESULTS.json).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]

from dict_index import ResponseCache as DictIndexCache  # noqa: E402
from sqlite_index import INDEX, SqliteIndexCache  # noqa: E402

from orchestrator.runtime.proxy.cache import ResponseCache, _KeyIndex  # noqa: E402
from orchestrator.runtime.proxy.server import default_processes  # noqa: E402
from orchestrator.runtime.proxy.types import ProxyResponse  # noqa: E402

SCHEMA = ("CREATE TABLE IF NOT EXISTS responses (id INTEGER PRIMARY KEY, key BLOB NOT NULL, "
          "status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL)")
VARIANTS = ("dict", "compact", "compact+id-key-index", "sqlite-index")
ID_KEY_INDEX = "CREATE INDEX IF NOT EXISTS responses_id_key ON responses(id, key)"


class Cache(Protocol):
    def get(self, key: bytes) -> ProxyResponse | None: ...
    def put(self, key: bytes, response: ProxyResponse) -> None: ...
    def close(self) -> None: ...
    def __len__(self) -> int: ...


INDEXES = {"compact+id-key-index": ID_KEY_INDEX, "sqlite-index": INDEX}
"""The variants measured on a copy of the files given this SQLite index first."""


def open_cache(variant: str, directory: Path, *, process: int, processes: int) -> Cache:
    kinds: dict[str, Any] = {"dict": DictIndexCache, "compact": ResponseCache, "compact+id-key-index": ResponseCache,
                             "sqlite-index": SqliteIndexCache}
    cache: Cache = kinds[variant](directory, process=process, processes=processes)
    return cache


def key(i: int) -> bytes:
    """The key of the i-th answer in the filled directory (request_key gives sha256 digests too)."""
    return hashlib.sha256(b"answer %d" % i).digest()


def body(i: int, size: int) -> bytes:
    """A chat.completion answer of about `size` bytes, distinct per i."""
    head = (b'{"id":"chatcmpl-%d","object":"chat.completion","created":1764300000,"model":"bench-model",'
            b'"choices":[{"index":0,"message":{"role":"assistant","content":"' % i)
    tail = (b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":412,"completion_tokens":256,'
            b'"total_tokens":668}}')
    words = b"answer %d: " % i + b"the quick brown fox jumps over the lazy dog " * (size // 44 + 1)
    return head + words[: max(0, size - len(head) - len(tail))] + tail


def file_name(process: int) -> str:
    return "responses.sqlite" if process == 0 else f"responses.{process}.sqlite"


def remove_file(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def fill(directory: Path, *, answers: int, files: int, body_bytes: int) -> float:
    """Write `answers` rows over `files` files, in bulk (not through put()): file f holds answers f, f+files, ..."""
    started = time.perf_counter()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for f in range(files):
        db = sqlite3.connect(directory / file_name(f), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(SCHEMA)
        numbers = range(f, answers, files)
        for chunk in range(0, len(numbers), 100_000):
            db.execute("BEGIN")
            db.executemany("INSERT INTO responses VALUES (?, ?, 200, 'application/json', ?)",
                           ((row + 1, key(i), body(i, body_bytes))
                            for row, i in enumerate(numbers[chunk:chunk + 100_000], start=chunk)))
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    return time.perf_counter() - started


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, in bytes."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def written_bytes() -> int:
    """Bytes this process passed to write() (SQLite's WAL frames and checkpoints)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def percentiles(nanoseconds: list[int]) -> dict[str, float]:
    ordered = sorted(nanoseconds)
    return {"median_us": ordered[len(ordered) // 2] / 1e3, "p99_us": ordered[int(len(ordered) * 0.99)] / 1e3,
            "mean_us": statistics.fmean(ordered) / 1e3, "max_us": ordered[-1] / 1e3}


async def timed_gets(cache: Cache, numbers: list[int], *, body_bytes: int, per_turn: int) -> dict[str, Any]:
    """Each get() timed, `per_turn` of them per turn of the event loop; wrong answers counted.

    A number >= 0 is a stored answer's (a hit); a negative one a key never stored (a miss).
    """
    times, wrong = [], 0
    for start in range(0, len(numbers), per_turn):
        for i in numbers[start:start + per_turn]:
            k = key(i) if i >= 0 else hashlib.sha256(b"miss %d" % i).digest()
            began = time.perf_counter_ns()
            hit = cache.get(k)
            times.append(time.perf_counter_ns() - began)
            wrong += (hit.raw if hit is not None else None) != (body(i, body_bytes) if i >= 0 else None)
        await asyncio.sleep(0)
    return {**percentiles(times), "wrong": wrong}


async def timed_puts(cache: Cache, count: int, per_turn: int, body_bytes: int) -> dict[str, Any]:
    """`count` answers put, `per_turn` per turn (so per commit): answers/s, the slowest turn, bytes written."""
    answers = [ProxyResponse(status=200, raw=body(-i, body_bytes)) for i in range(per_turn)]
    keys = [hashlib.sha256(b"new %d" % i).digest() for i in range(count)]
    turns: list[float] = []
    written = written_bytes()
    began = time.perf_counter()
    for start in range(0, count, per_turn):
        turn_began = time.perf_counter()
        for i in range(start, min(count, start + per_turn)):
            cache.put(keys[i], answers[i - start])
        await asyncio.sleep(0)  # the turn ends: its answers are committed (and indexed)
        turns.append(time.perf_counter() - turn_began)
    await asyncio.sleep(0)
    seconds = time.perf_counter() - began
    return {"answers_per_s": count / seconds, "us_per_answer": seconds / count * 1e6,
            "slowest_turn_ms": max(turns) * 1e3, "bytes_written_per_answer": (written_bytes() - written) / count}


def measure(variant: str, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One variant, in this (fresh) process: load, then lookups, then puts into a file of their own."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here on
    before = proc_status()
    began = time.perf_counter()
    cache = open_cache(variant, directory, process=args.files, processes=args.files)
    load_s = time.perf_counter() - began
    loaded = proc_status()
    rows = len(cache)
    chooser = random.Random(7)
    hits = [chooser.randrange(args.answers) for _ in range(args.lookups)]
    get_hits = asyncio.run(timed_gets(cache, hits, body_bytes=args.body_bytes, per_turn=args.per_turn))
    get_misses = asyncio.run(timed_gets(cache, list(range(-1, -args.lookups - 1, -1)), body_bytes=args.body_bytes,
                                        per_turn=args.per_turn))
    before_puts = proc_status()
    puts = asyncio.run(timed_puts(cache, args.puts, args.per_turn, args.body_bytes))
    after_puts = proc_status()
    rows_after_puts = len(cache)
    cache.close()
    return {"variant": variant, "rows": rows, "load_s": load_s, "rss_before": before["VmRSS"],
            "rss_loaded": loaded["VmRSS"], "rss_peak_during_load": loaded["VmHWM"], "get_hits": get_hits,
            "get_misses": get_misses, "puts": puts, "rows_after_puts": rows_after_puts,
            "rss_growth_from_puts": after_puts["VmRSS"] - before_puts["VmRSS"]}


def measure_growth(variant: str, keys: int) -> dict[str, Any]:
    """The index alone (no SQLite), `keys` keys added one at a time: the 3 slowest adds (resizes?), and where.

    ``dict``: the dict of the cache before (it resizes at 2/3 of a power of two); ``compact``: the cache's
    _KeyIndex (its buckets double at 512 x a power of two).
    """
    index: Any = {} if variant == "dict" else _KeyIndex()
    add = index.__setitem__ if variant == "dict" else index.add
    slowest: list[tuple[int, int]] = [(0, 0)] * 3
    for i in range(keys):
        k = key(i)
        began = time.perf_counter_ns()
        add(k, 1 << 40 | i)
        took = time.perf_counter_ns() - began
        if took > slowest[0][0]:
            slowest = sorted([*slowest[1:], (took, i + 1)])
    return {"slowest_adds": [{"ms": took / 1e6, "at_keys": at} for took, at in reversed(slowest)]}


def measure_python_memory(variant: str, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The load again, under tracemalloc: the Python memory the index holds, and its peak while loading."""
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    cache = open_cache(variant, directory, process=args.files, processes=args.files)
    current, peak = tracemalloc.get_traced_memory()
    rows = len(cache)
    cache.close()
    return {"traced": current - baseline, "traced_peak": peak - baseline, "rows": rows}


def child(variant: str, directory: Path, args: argparse.Namespace, *, traced: bool) -> dict[str, Any]:
    """One measuring process; the file it puts into is deleted before and after."""
    own = directory / file_name(args.files)
    remove_file(own)
    if variant in INDEXES:  # the puts pay for the index too
        db = sqlite3.connect(own)
        db.execute(SCHEMA)
        db.execute(INDEXES[variant])
        db.close()
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--dir", str(directory),
            *(["--traced"] if traced else []), "--answers", str(args.answers), "--files", str(args.files),
            "--body-bytes", str(args.body_bytes), "--lookups", str(args.lookups), "--puts", str(args.puts),
            "--per-turn", str(args.per_turn)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    remove_file(own)
    if result.returncode != 0:
        raise SystemExit(f"{variant}: the measuring process failed:\n{result.stderr}")
    measured: dict[str, Any] = json.loads(result.stdout)
    return measured


def scan_seconds(directory: Path, files: int) -> float:
    """SQLite alone reading every row's key (count(key)): the pass over the table any load makes."""
    began = time.perf_counter()
    for f in range(files):
        db = sqlite3.connect(directory / file_name(f))
        db.execute("SELECT count(key) FROM responses").fetchone()
        db.close()
    return time.perf_counter() - began


def with_index(source: Path, target: Path, files: int, index: str) -> dict[str, float]:
    """A copy of the filled files, each given an SQLite index: its build time and size."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    size_before, began, build = 0, 0.0, 0.0
    for f in range(files):
        shutil.copyfile(source / file_name(f), target / file_name(f))
        size_before += (target / file_name(f)).stat().st_size
        began = time.perf_counter()
        db = sqlite3.connect(target / file_name(f), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(index)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        build += time.perf_counter() - began
    size_after = sum((target / file_name(f)).stat().st_size for f in range(files))
    return {"build_s": build, "index_bytes": size_after - size_before}


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (the benchmark itself adds about 1)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def head_commit() -> str:
    """The checked-out commit, read from .git's files (a worktree's .git is a file naming its git dir)."""
    git = REPO / ".git"
    if git.is_file():
        git = Path(git.read_text().removeprefix("gitdir:").strip())
    common = (git / (git / "commondir").read_text().strip()).resolve() if (git / "commondir").exists() else git
    head = (git / "HEAD").read_text().strip()
    if not head.startswith("ref: "):
        return head[:7]
    ref = head.removeprefix("ref: ")
    for directory in (git, common):
        if (directory / ref).exists():
            return (directory / ref).read_text().strip()[:7]
    packed = common / "packed-refs"
    lines = packed.read_text().splitlines() if packed.exists() else []
    return next((line.split()[0][:7] for line in lines if line.endswith(" " + ref)), "?")


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": f"{cpu}, {os.cpu_count()} logical CPUs", "memory": f"{int(memory) / 2**20:.1f} GiB",
            "kernel": platform.release(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "repository": f"HEAD {head_commit()} (uncommitted changes are not recorded)",
            "load average at start": load_average()}


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def best(rounds: list[Any], name: str = "") -> Any:
    """Each figure's best round (the least time or memory, the most answers/s); wrong answers: the most seen."""
    if isinstance(rounds[0], dict):
        return {field: best([r[field] for r in rounds], field) for field in rounds[0]}
    if isinstance(rounds[0], int | float):
        return max(rounds) if name in ("answers_per_s", "wrong") else min(rounds)
    return rounds[0]


def markdown(info: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    n = info["answers"]
    lines = ["# Cache key index benchmark results", "",
             "Written by `bench/cache/index_memory.py` (bench/README.md explains the method). All numbers come",
             f"from one run: each variant measured {info['rounds']} times, interleaved, each time in a fresh process",
             "of its own; each figure is its best round (least time or memory, most answers/s; wrong answers: the",
             "most seen). The Python memory is measured once more, under tracemalloc.", "",
             "| | |", "|---|---|",
             *(f"| {name} | {value} |" for name, value in info["machine"].items()),
             f"| answers | {n:,} in {info['files']} files (the proxy's default processes here), "
             f"bodies of {info['body_bytes']:,} bytes, {mb(info['disk_bytes'])} on disk |",
             f"| filled in | {info['fill_s']:.1f} s (bulk inserts; 0 when reused from an earlier run) |",
             f"| SQLite reading every row's key | {info['scan_s']:.2f} s (`count(key)` over every file) |",
             f"| lookups | {info['lookups']:,} hits and {info['lookups']:,} misses, {info['per_turn']} per turn |",
             f"| puts | {info['puts']:,}, {info['per_turn']} per turn (one commit each) |", "",
             "| | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]

    def row(name: str, cell: Any) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in results.values()) + " |")

    row("index, Python memory (tracemalloc)", lambda r: mb(r["traced"]["traced"]))
    row("per answer", lambda r: f"{r['traced']['traced'] / n:.1f} B")
    row("peak Python memory while loading", lambda r: mb(r["traced"]["traced_peak"]))
    row("RSS growth from the load", lambda r: mb(r["rss_loaded"] - r["rss_before"]))
    row("peak RSS while loading (whole process)", lambda r: mb(r["rss_peak_during_load"]))
    row("load time at start", lambda r: f"{r['load_s']:.2f} s")
    for kind in ("get_hits", "get_misses"):
        label = "get() hit" if kind == "get_hits" else "get() miss"
        row(f"{label}: median / p99", lambda r, k=kind: f"{r[k]['median_us']:.1f} / {r[k]['p99_us']:.1f} µs")
        row(f"{label}: mean / max", lambda r, k=kind: f"{r[k]['mean_us']:.1f} / {r[k]['max_us']:,.0f} µs")
        row(f"{label}: wrong answers", lambda r, k=kind: str(r[k]["wrong"]))
    row("put(): answers/s (with commits)", lambda r: f"{r['puts']['answers_per_s']:,.0f}")
    row("put(): µs per answer", lambda r: f"{r['puts']['us_per_answer']:.1f}")
    row("put(): slowest turn", lambda r: f"{r['puts']['slowest_turn_ms']:.1f} ms")
    row("put(): bytes written per answer", lambda r: f"{r['puts']['bytes_written_per_answer']:,.0f}")
    row("RSS growth from the puts", lambda r: mb(r["rss_growth_from_puts"]))
    lines.append("")
    for variant, grown in info.get("growth", {}).items():
        adds = ", ".join(f"{add['ms']:.1f} ms at {add['at_keys']:,}" for add in grown["slowest_adds"])
        lines.append(f"{variant}, the bare index grown to {info['growth_keys']:,} keys one at a time (no SQLite): "
                     f"the slowest adds took {adds} keys.")
    for variant, built in info["indexes"].items():
        lines.append(f"{variant}: measured on a copy of the files given `{INDEXES[variant]}` first, which took "
                     f"{built['build_s']:.1f} s and {mb(built['index_bytes'])} of disk.")
    if "sqlite-index" in results:
        lines.append("sqlite-index keeps no index in memory: its memory is SQLite's page cache (2 MB per file "
                     "by default).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=default_processes(), help="files (proxy processes) to fill")
    parser.add_argument("--body-bytes", type=int, default=1500)
    parser.add_argument("--lookups", type=int, default=100_000, help="hits, and as many misses")
    parser.add_argument("--puts", type=int, default=100_000)
    parser.add_argument("--per-turn", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="measure every variant this often, keep the best")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--dir", type=Path, default=HERE / "work" / "answers")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--growth-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--growth", type=int, default=1_500_000, help="keys added one by one to the bare index")
    args = parser.parse_args()
    if args.child:
        if args.growth_child:
            print(json.dumps(measure_growth(args.child, args.growth)))
            return
        run = measure_python_memory if args.traced else measure
        print(json.dumps(run(args.child, args.dir, args)))
        return

    marker, wanted = args.dir / "FILLED.json", {"answers": args.answers, "files": args.files,
                                                "body_bytes": args.body_bytes}
    fill_s = 0.0
    if not marker.exists() or json.loads(marker.read_text()) != wanted:
        print(f"filling {args.dir} with {args.answers:,} answers", file=sys.stderr)
        fill_s = fill(args.dir, answers=args.answers, files=args.files, body_bytes=args.body_bytes)
        marker.write_text(json.dumps(wanted))
    info: dict[str, Any] = {**wanted, "machine": machine(), "fill_s": fill_s, "lookups": args.lookups,
                            "puts": args.puts, "per_turn": args.per_turn, "rounds": args.rounds,
                            "growth_keys": args.growth,
                            "scan_s": scan_seconds(args.dir, args.files),
                            "indexes": {}, "disk_bytes": sum(p.stat().st_size for p in args.dir.glob("responses*"))}
    results: dict[str, dict[str, Any]] = {}
    directories = {variant: args.dir.parent / variant if variant in INDEXES else args.dir for variant in args.variants}
    for variant in args.variants:
        if variant in INDEXES:
            print(f"copying the files for {variant}", file=sys.stderr)
            info["indexes"][variant] = with_index(args.dir, directories[variant], args.files, INDEXES[variant])
    rounds: dict[str, list[dict[str, Any]]] = {variant: [] for variant in args.variants}
    for number in range(args.rounds):  # interleaved, so that a change of machine load hits every variant alike
        for variant in args.variants:
            print(f"round {number + 1}: measuring {variant}", file=sys.stderr)
            rounds[variant].append(child(variant, directories[variant], args, traced=False))
    for variant in args.variants:
        results[variant] = {**best(rounds[variant]), "traced": child(variant, directories[variant], args, traced=True)}
        if variant in INDEXES:
            shutil.rmtree(directories[variant])
    for variant in ("dict", "compact"):
        print(f"growing the bare {variant} index to {args.growth:,} keys", file=sys.stderr)
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--growth-child",
                "--growth", str(args.growth)]
        grown = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        info.setdefault("growth", {})[variant] = json.loads(grown)
    info["machine"]["load average at the end"] = load_average()
    (HERE / "RESULTS.json").write_text(json.dumps({"info": info, "results": results, "rounds": rounds}, indent=1)
                                       + "\n")
    report = markdown(info, results)
    (HERE / "RESULTS.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
