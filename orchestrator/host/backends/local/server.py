"""A local run's model server (``deployment:``): checked, started, waited for, and removed whatever happens.

Before anything is written, :func:`check_server` refuses what would keep it from starting: a checkpoint path that
does not exist, GPUs on an engine without a GPU runtime, a port already taken on 127.0.0.1, an image that is not
here and cannot be pulled, a variable it names that is not set. :func:`serving` starts it (host network, labelled
``evals.run.id`` and ``evals.run.role=server``, GPUs through the engine, the checkpoint read-only), waits for its
health route (progress every few seconds), and removes it when the tasks end, fail or are interrupted; its log is
kept in the run's record directory (``logs/server.log``). A server that exits or never answers stops the run with
its last log lines (:class:`ServerError`).

Secrets: a server reads no stdin, so the values of the variables it names (``deployment.env``, NIM's
``NGC_API_KEY``) are in its container's configuration (``docker inspect`` shows them to whoever may use the
engine); the record, the dry run and results keep their names only.
"""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from orchestrator.host.backends.container import Output, Servers, ServerSpec
from orchestrator.host.deploy.checks import check_inputs
from orchestrator.host.deploy.commands import ServerCommand, record_deployment, render_server
from orchestrator.host.records import store
from orchestrator.schema.container import RUN_LABEL_PREFIX, SERVER_ROLE_LABEL
from orchestrator.schema.deployment import Deployment, ServedDeployment
from orchestrator.schema.errors import EvalsError, InputError
from orchestrator.schema.record import RunRecord, TaskState

TAIL_LINES = 20


class ServerError(EvalsError):
    """The model server exited or never became healthy: the run stops."""


def check_server(served: ServedDeployment, servers: Servers, *, pull: bool = True) -> None:
    """Bad input that would keep the server from starting, one line each, before anything is written."""
    deployment = served.deployment
    check_inputs(deployment)
    if deployment.gpus is not None and not servers.has_gpu_runtime():
        raise InputError(f"deployment.gpus is {deployment.gpus}, but this Docker engine has no GPU runtime (no "
                         "nvidia runtime, no CDI GPU devices)",
                         hint="install the NVIDIA Container Toolkit, or drop deployment.gpus")
    check_port(deployment.port)
    servers.image_id(deployment.image, pull=pull)


def check_port(port: int) -> None:
    """The server's port must be free on 127.0.0.1 (it listens on the host network)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise InputError(f"port {port} is already taken on this machine ({err.strerror or err})",
                             hint="set deployment.port to a free port, or stop what listens there") from None


def server_spec(run_id: str, deployment: Deployment, command: ServerCommand) -> ServerSpec:
    """The server's container: labelled with the run (so `evals cancel` stops it too) and its role."""
    return ServerSpec(image=command.image, entrypoint=command.entrypoint, args=list(command.args),
                      name=f"evals-{run_id}-server", environment=dict(command.environment),
                      secret_envs=list(command.secret_envs), mounts=list(command.mounts), gpus=deployment.gpus,
                      labels={f"{RUN_LABEL_PREFIX}.id": run_id, SERVER_ROLE_LABEL: "server"})


@dataclass
class HealthWatch:
    """Polls the health route until it answers 200; the container's end or the timeout is a :class:`ServerError`."""

    servers: Servers
    container_id: str
    url: str
    deployment: Deployment
    say: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    every: float = 5.0

    def wait(self) -> None:
        """Return once the route answers 200."""
        health, started = self.deployment.health, self.clock()
        next_report = started
        while True:
            running, code = self.servers.running(self.container_id)
            if not running:
                raise self.failure(f"the {self.deployment.type} server exited (code {code}) before it answered "
                                   f"{health.path}")
            if _answers(self.url, timeout=min(5.0, max(health.interval, 1.0))):
                self.say(f"the {self.deployment.type} server answers at {self.url} "
                         f"({self.clock() - started:.0f} s)")
                return
            elapsed = self.clock() - started
            if elapsed >= health.start_timeout:
                raise self.failure(f"the {self.deployment.type} server did not answer {health.path} within "
                                   f"{health.start_timeout:g} s")
            if self.clock() >= next_report:
                self.say(f"waiting for the {self.deployment.type} server at {self.url}: {elapsed:.0f} s / "
                         f"{health.start_timeout:g} s")
                next_report += self.every
            self.sleep(health.interval)

    def failure(self, message: str) -> ServerError:
        """The error, with the server's last log lines (printed above it in full)."""
        lines = self.servers.logs(self.container_id).decode("utf-8", errors="replace").splitlines()[-TAIL_LINES:]
        for line in lines:
            self.say(f"server | {line}")
        last = " | ".join(line.strip() for line in lines[-3:] if line.strip()) or "(it printed nothing)"
        return ServerError(f"{message}; its last log lines: {last}",
                           hint="see the lines above and the run's logs/server.log")


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""The server is on this machine: never through a proxy the environment names."""


def _answers(url: str, *, timeout: float) -> bool:
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def serving(record_id: str, served: ServedDeployment, servers: Servers, *, output: Output,
            on_digest: Callable[[str], None]) -> Iterator[None]:
    """The server up and healthy for the body; stopped and removed after it (errors and Ctrl-C included)."""
    deployment = served.deployment
    command = render_server(deployment)

    def say(text: str) -> None:
        output(f"evals: {text}\n".encode())

    on_digest(servers.image_id(deployment.image, pull=True))
    say(f"starting the {deployment.type} server ({command.image}) for run {record_id}")
    container_id = servers.start(server_spec(record_id, deployment, command))
    try:
        HealthWatch(servers, container_id, command.base_url() + deployment.health.path, deployment, say).wait()
        yield
    finally:
        _keep_log(record_id, servers.logs(container_id))
        servers.remove(container_id)
        say(f"stopped the {deployment.type} server")


def _keep_log(record_id: str, log: bytes) -> None:
    with contextlib.suppress(OSError):
        path = store.record_dir(record_id) / "logs" / "server.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(log)


def with_server(record: RunRecord, servers: Servers, *, output: Output,
                run: Callable[[], RunRecord]) -> RunRecord:
    """``run()`` (the tasks) with the record's server up around it. A server that fails stops the run: its pending
    tasks fail with the reason (cancelled, when `evals cancel` stopped it), and the error is raised."""
    served = record.deployment
    if served is None:
        return run()

    def on_digest(digest: str) -> None:
        record_deployment(record, served.model_copy(update={"image_digest": digest}))
        store.save(record)

    try:
        with serving(record.id, served, servers, output=output, on_digest=on_digest):
            return run()
    except ServerError as err:
        cancelled = store.cancel_requested(record.id)
        _end_pending(record, "cancelled" if cancelled else "failed",
                     "cancelled with `evals cancel`" if cancelled else str(err))
        if cancelled:
            return record
        raise
    except KeyboardInterrupt:
        _end_pending(record, "interrupted", "evals was interrupted while its model server started")
        raise


def _end_pending(record: RunRecord, state: TaskState, reason: str) -> None:
    for task in record.tasks:
        if task.state == "pending":
            task.state, task.reason, task.finished_at = state, reason, store.now()
    store.save(record)
