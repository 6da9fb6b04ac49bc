"""Test double of the CLI's seam: `evals` over doubles (images from labels, a launcher, a Slurm command line,
container control) and an endpoint check that passes. Unit tests build the app with it; nothing is patched."""

from __future__ import annotations

from orchestrator.host.api import ExecutorFor
from orchestrator.host.backends.container import ContainerControl, Launcher, Servers
from orchestrator.host.backends.executor import Executor
from orchestrator.host.backends.local.executor import LocalExecutor
from orchestrator.host.backends.slurm.commands import SlurmCli
from orchestrator.host.backends.slurm.executor import SlurmExecutor
from orchestrator.host.catalog import HarnessImage, ImageCatalog
from orchestrator.host.cli.services import HostServices
from tests.doubles.catalog import FakeCatalog
from tests.doubles.containers import FakeContainers
from tests.doubles.launcher import FakeLauncher
from tests.doubles.slurm import FakeSlurm


def fake_services(*, images: list[HarnessImage] | None = None, catalog: ImageCatalog | None = None,
                  launcher: Launcher | None = None, slurm: FakeSlurm | None = None,
                  containers: ContainerControl | None = None, cancel_wait: float = 0.5,
                  executor_for: ExecutorFor | None = None, servers: Servers | None = None) -> HostServices:
    """The CLI's services over doubles: ``catalog`` (default: a :class:`FakeCatalog` of ``images``); ``launcher``;
    local runs on ``launcher`` and ``containers``, Slurm runs on ``slurm`` (or ``executor_for`` instead); an endpoint
    check that passes; a run's model server on ``servers``. Every double not given is a fresh one."""
    run_launcher = launcher if launcher is not None else FakeLauncher()
    scheduler = slurm if slurm is not None else FakeSlurm()
    control = containers if containers is not None else FakeContainers()

    def local_or_slurm(kind: str) -> Executor:
        if kind == "slurm":
            return SlurmExecutor(SlurmCli(scheduler), lambda: control)
        return LocalExecutor(run_launcher, control, cancel_wait=cancel_wait, servers=servers)

    return HostServices(catalog=catalog if catalog is not None else FakeCatalog(images or []), launcher=run_launcher,
                        executor_for=executor_for or local_or_slurm, check_endpoint=lambda url: None)
