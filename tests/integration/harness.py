"""Running a harness image to completion with testcontainers, as a user would with `docker run`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from testcontainers.core.container import DockerContainer

from orchestrator.schema.container import DATA_DIR, RESULTS_DIR


@dataclass(frozen=True)
class Finished:
    """A container that ran to its end."""

    exit_code: int
    logs: str


def run_image(image: str, args: list[str], *, output_dir: Path, data_dir: Path | None = None,
              env: dict[str, str] | None = None, timeout: float = 600) -> Finished:
    """`docker run --network host -u UID:GID -v OUT:/workspace/results [-v DATA:/data:ro] IMAGE ARGS`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    container = (DockerContainer(image).with_command(args)
                 .with_volume_mapping(str(output_dir), RESULTS_DIR, "rw")
                 .with_kwargs(network_mode="host", user=f"{os.getuid()}:{os.getgid()}"))
    if data_dir is not None:
        container = container.with_volume_mapping(str(data_dir), DATA_DIR, "ro")
    for name, value in (env or {}).items():
        container = container.with_env(name, value)
    container.start()
    try:
        status = container.get_wrapped_container().wait(timeout=timeout)
        stdout, stderr = container.get_logs()
        return Finished(int(status["StatusCode"]), (stdout + stderr).decode(errors="replace"))
    finally:
        container.stop()
