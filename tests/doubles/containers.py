"""Test double: container control by label that records what it was asked to stop and remove."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class FakeContainers:
    """Stops and removes containers by label; there are none, so each call records its label and names none."""

    stopped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def stop(self, label: str) -> list[str]:
        """Record ``label``."""
        self.stopped.append(label)
        return []

    def remove(self, label: str) -> list[str]:
        """Record ``label``."""
        self.removed.append(label)
        return []


@dataclass
class StoppingContainers(FakeContainers):
    """As :class:`FakeContainers`, and stopping sets ``on_stop`` (a held launcher's release: its containers end)."""

    on_stop: Callable[[], None] = lambda: None

    def stop(self, label: str) -> list[str]:
        """Record ``label`` and end the held containers."""
        self.on_stop()
        return super().stop(label)
