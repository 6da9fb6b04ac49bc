"""What `evals` reaches outside its own process, in one place: the seam where tests put doubles.

:func:`default_services` builds the real ones: the local Docker engine's images and containers, Slurm's command
line, a TCP check of the endpoint. None connects before it is used, so importing the CLI or asking for --help
reaches no engine. Tests build the app with doubles instead (``tests/doubles/services.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from orchestrator.host.backends.local.docker import DockerImages, DockerLauncher, DockerServers, LabelledContainers

if TYPE_CHECKING:
    from orchestrator.host.api import ExecutorFor
    from orchestrator.host.backends.container import Launcher
    from orchestrator.host.backends.executor import Executor
    from orchestrator.host.catalog import ImageCatalog


@dataclass(frozen=True, kw_only=True)
class HostServices:
    """The backends and clients the commands use."""

    catalog: ImageCatalog
    """The harness images: listed, found by name, pinned by id, saved, their ids."""
    launcher: Launcher
    """Starts one container (`evals prefetch`'s fetches; a run's containers start through its executor)."""
    executor_for: ExecutorFor
    """The executor of a kind of run (``local``, ``slurm``)."""
    check_endpoint: Callable[[str], None]
    """Refuses an endpoint URL nothing answers at (`evals run`, unless --skip-preflight)."""


def default_services() -> HostServices:
    """The real backends: this machine's Docker engine and Slurm's commands, each connected on first use. The
    executors and the endpoint check are imported when first used (`evals ls` needs neither)."""
    launcher = DockerLauncher()

    def executor_for(kind: str) -> Executor:
        if kind == "slurm":
            from orchestrator.host.backends.slurm.commands import SlurmCli  # noqa: PLC0415
            from orchestrator.host.backends.slurm.executor import SlurmExecutor  # noqa: PLC0415
            return SlurmExecutor(SlurmCli(), LabelledContainers)
        from orchestrator.host.backends.local.executor import LocalExecutor  # noqa: PLC0415
        from orchestrator.host.cli.console import stderr  # noqa: PLC0415
        from orchestrator.host.records.progress_view import view_for  # noqa: PLC0415
        return LocalExecutor(launcher, LabelledContainers(), servers=DockerServers(),
                             progress=lambda: view_for(stderr))

    def check_endpoint(url: str) -> None:
        from orchestrator.host.plan import preflight  # noqa: PLC0415
        preflight(url)

    return HostServices(catalog=DockerImages(), launcher=launcher, executor_for=executor_for,
                        check_endpoint=check_endpoint)


def services_of(ctx: typer.Context) -> HostServices:
    """The services the app was built with (:func:`~orchestrator.host.cli.app.build_app` puts them in the context)."""
    services = ctx.find_object(HostServices)
    if services is None:
        raise RuntimeError("the evals app was built without its services: build it with build_app(services)")
    return services
