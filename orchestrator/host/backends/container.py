"""What every backend starts and stops: one evaluation container, described by a :class:`LaunchSpec`.

A :class:`Launcher` runs one container to completion (the docker one in ``local/``; a test double in
``tests/doubles/``); :class:`ContainerControl` stops and removes containers by label. Only
:mod:`orchestrator.host.backends.local.docker` imports the docker SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

Output = Callable[[bytes], None]


@dataclass(frozen=True, kw_only=True)
class Mount:
    """A bind mount from the host into the container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class LaunchSpec:
    """Everything needed to start one evaluation container. Holds no secret values."""

    image: str
    args: list[str]
    name: str
    user: str | None = None
    network_host: bool = False
    mounts: list[Mount] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    secret_envs: list[str] = field(default_factory=list)
    """Names of the host variables whose values are handed to the container on stdin (never in its config)."""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    """A model server's container: started detached on the host network. Holds no secret values."""

    image: str
    entrypoint: list[str] | None
    args: list[str]
    name: str
    environment: dict[str, str] = field(default_factory=dict)
    secret_envs: list[str] = field(default_factory=list)
    """NAMES of variables whose values (from evals' environment) go into the container's environment."""
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)
    gpus: int | str | list[int] | None = None
    labels: dict[str, str] = field(default_factory=dict)


class Servers(Protocol):
    """Starts, watches and removes a run's model server (the docker one in ``local/``, a double in tests)."""

    def has_gpu_runtime(self) -> bool:
        """Whether the engine can give a container GPUs."""
        ...

    def image_id(self, image: str, *, pull: bool) -> str:
        """The image's content id (pulled first when missing and ``pull``); bad input when it cannot be had."""
        ...

    def start(self, spec: ServerSpec) -> str:
        """Start the server detached; its container id."""
        ...

    def running(self, container_id: str) -> tuple[bool, int | None]:
        """Whether it runs; its exit code once it ended."""
        ...

    def logs(self, container_id: str) -> bytes:
        """What it printed so far."""
        ...

    def remove(self, container_id: str) -> None:
        """Stop and remove it."""
        ...


class Launcher(Protocol):
    """Runs a container to completion, streaming its output; returns its exit code."""

    def run(self, spec: LaunchSpec, *, output: Output) -> int:
        """Start the container, stream output, wait, remove it (also on Ctrl-C)."""
        ...


class ContainerControl(Protocol):
    """Stops and removes containers by label (``key=value``); returns their names."""

    def stop(self, label: str) -> list[str]:
        """Kill the running containers carrying the label."""
        ...

    def remove(self, label: str) -> list[str]:
        """Force-remove every container carrying the label."""
        ...
