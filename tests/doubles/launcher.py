"""Test double: a launcher that records specs and plays back a scripted run (unit tests only)."""

from __future__ import annotations

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
