"""Test doubles: launchers that record specs and play back a scripted run, a timed one, a held one (unit tests only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.host.backends.container import LaunchSpec, Output


@dataclass
class FakeLauncher:
    """Records every spec; ``behaviour`` may write files into the mounted output dir and print."""

    exit_code: int = 0
    behaviour: Callable[[LaunchSpec, Output], None] | None = None
    launched: list[LaunchSpec] = field(default_factory=list)

    def run(self, spec: LaunchSpec, *, output: Output) -> int:
        """Record ``spec``, run the scripted behaviour, return the scripted exit code."""
        self.launched.append(spec)
        if self.behaviour is not None:
            self.behaviour(spec, output)
        return self.exit_code


@dataclass
class TimedLauncher:
    """Each container "runs" ``seconds`` (``behaviour`` first, e.g. writing results.yml) on the calling thread;
    records each run's (task label, start, end) from a monotonic clock, to measure how many ran at once."""

    seconds: float = 0.2
    exit_code: int = 0
    behaviour: Callable[[LaunchSpec, Output], None] | None = None
    runs: list[tuple[str, float, float]] = field(default_factory=list)

    def run(self, spec: LaunchSpec, *, output: Output) -> int:
        """Run the behaviour, sleep, record the interval."""
        start = time.monotonic()
        if self.behaviour is not None:
            self.behaviour(spec, output)
        time.sleep(self.seconds)
        self.runs.append((spec.labels.get("evals.run.task", spec.name), start, time.monotonic()))
        return self.exit_code

    def peak(self, tasks: set[str] | None = None) -> int:
        """The most runs (of ``tasks``, else of all) that overlapped."""
        events = sorted((t, +1 if edge == 0 else -1) for name, *times in self.runs if tasks is None or name in tasks
                        for edge, t in enumerate(times))
        running = most = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):
            running += step
            most = max(most, running)
        return most


@dataclass
class HeldLauncher:
    """Each container runs until ``release`` is set (as a killed container's log stream ends), then exits 137;
    ``started`` counts the runs begun; ``on_start(count)`` runs on the container's thread as each one starts."""

    release: threading.Event = field(default_factory=threading.Event)
    on_start: Callable[[int], None] | None = None
    launched: list[LaunchSpec] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, spec: LaunchSpec, *, output: Output) -> int:
        """Wait for the release (at most 30 s)."""
        with self.lock:
            self.launched.append(spec)
            count = len(self.launched)
        if self.on_start is not None:
            self.on_start(count)
        self.release.wait(timeout=30)
        return 137
