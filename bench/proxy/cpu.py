"""CPU accounting from /proc: per process tree, for the whole machine, and what other processes use."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BUSY_PATTERN = "docker build|cmake|cc1"


def cpu_ticks(pid: int) -> int:
    """utime + stime (clock ticks) of ``pid`` and its live descendants, all threads included."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stat = stats.get(current)
        if stat is not None:
            total += int(stat[11]) + int(stat[12])  # utime, stime: fields 14 and 15 of stat
        stack.extend(children.get(current, []))
    return total


def settle(pid: int, *, quiet_for: float = 0.3, timeout: float = 30.0) -> None:
    """Wait until the process has used no CPU for ``quiet_for`` seconds (queued work from a warm-up is done)."""
    deadline = time.monotonic() + timeout
    last = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_for)
        now = cpu_ticks(pid)
        if now == last:
            return
        last = now


def machine_busy_ticks() -> int:
    """CPU ticks the whole machine has spent busy (all cores), from the first line of /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system + irq + softirq + steal


def own_ticks(pids: list[int]) -> float:
    """CPU ticks used by the benchmark itself: its servers, wrk (finished children) and this driver."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    seconds = children.ru_utime + children.ru_stime + me.ru_utime + me.ru_stime
    return sum(cpu_ticks(pid) for pid in pids) + seconds * CLOCK_TICKS


def machine_load(seconds: float = 2.0) -> float:
    """Cores the machine keeps busy over ``seconds`` (run before the benchmark starts anything)."""
    before = machine_busy_ticks()
    time.sleep(seconds)
    return (machine_busy_ticks() - before) / CLOCK_TICKS / seconds


def wait_for_idle(timeout: float, *, threshold: float = 0.2) -> float:
    """Wait up to ``timeout`` s until other processes use less than ``threshold`` cores; the last load seen."""
    deadline = time.monotonic() + timeout
    load = machine_load()
    while load >= threshold and time.monotonic() < deadline:
        print(f"machine busy ({load:.2f} cores used by other processes); waiting for it to go idle", flush=True)
        time.sleep(10)
        load = machine_load()
    return load


def busy_processes() -> list[str]:
    """Image builds or compilers running now (they share the CPU with the benchmark)."""
    result = subprocess.run(["pgrep", "-f", BUSY_PATTERN], capture_output=True, text=True, check=False)
    own = {os.getpid()}
    names: list[str] = []
    for pid in (int(line) for line in result.stdout.split()):
        if pid in own:
            continue
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return sorted(set(names))
