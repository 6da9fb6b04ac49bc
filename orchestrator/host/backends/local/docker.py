"""The Docker launcher and the engine's harness images: the only module that imports the docker SDK.

Containers are created labelled, started, their logs streamed, waited on and removed in
``finally`` (Ctrl-C included). A secret is written to the container's stdin, so its value
is in no file, no command line and not in ``docker inspect``. A model server (:class:`DockerServers`) reads no
stdin: the values of the variables it names are in its container's config. :class:`DockerImages` is the
image catalog (:class:`~orchestrator.host.catalog.ImageCatalog`) read from the engine's labels.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import replace
from pathlib import Path

import docker
import docker.errors
import docker.types
from docker.models.containers import Container
from docker.models.images import Image

from orchestrator import __version__
from orchestrator.host.backends.container import LaunchSpec, Output, ServerSpec
from orchestrator.host.catalog import HarnessImage, from_labels, harness_images
from orchestrator.schema.container import (
    HOST_VERSION_VAR,
    IMAGE_DIGEST_VAR,
    IMAGE_REPO_DIGEST_VAR,
    IMAGE_VAR,
    LABEL_HARNESS,
    SECRET_STDIN_VAR,
)
from orchestrator.schema.errors import EvalsError, InputError

ENGINE_HINT = "start one with `make engine` (or `sudo dockerd &`), or set DOCKER_HOST"


class EngineUnavailableError(EvalsError):
    """No Docker engine answered."""

    exit_code = 2


def client() -> docker.DockerClient:
    """A client for the engine in the environment (DOCKER_HOST or the default socket)."""
    try:
        engine = docker.from_env()
        engine.ping()
    except docker.errors.DockerException as err:
        raise EngineUnavailableError(f"no Docker engine reachable ({_short(err)})", hint=ENGINE_HINT) from None
    return engine


def _short(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:160]


def _local_image(engine: docker.DockerClient, image: str) -> Image:
    """A local image; a missing one is bad input naming the make target."""
    try:
        return engine.images.get(image)
    except docker.errors.ImageNotFound:
        raise InputError(f"image {image} is not built",
                         hint="build it with `make images` (or pass --image)") from None


def image_labels(engine: docker.DockerClient, image: str) -> dict[str, str]:
    """Labels of a local image; a missing image is bad input naming the make target."""
    labels: dict[str, str] = _local_image(engine, image).labels or {}
    return labels


def provenance_environment(spec: LaunchSpec, *, image_id: str, repo_digests: list[str]) -> dict[str, str]:
    """What the container cannot know about itself, for results.yml's provenance: the image's name (the one the
    plan recorded, else the one started), its content id, its registry digest if any, the host's version (the one
    that resolved the run, else this one)."""
    environment = {IMAGE_VAR: spec.environment.get(IMAGE_VAR, spec.image), IMAGE_DIGEST_VAR: image_id,
                   HOST_VERSION_VAR: spec.environment.get(HOST_VERSION_VAR, __version__)}
    if repo_digests:
        environment[IMAGE_REPO_DIGEST_VAR] = sorted(repo_digests)[0]
    return environment


def pinned_image(engine: docker.DockerClient, *, name: str, image_id: str, repo_digest: str | None) -> dict[str, str]:
    """Labels of the image with content id ``image_id``: the local one, else pulled by its registry digest.

    Neither is bad input naming the image, its id and how to get it (``evals run --from``).
    """
    try:
        return dict(engine.images.get(image_id).labels or {})
    except docker.errors.ImageNotFound:
        pass
    if repo_digest is not None:
        with contextlib.suppress(docker.errors.DockerException):
            pulled = engine.images.pull(repo_digest)
            if pulled.id == image_id:
                return dict(pulled.labels or {})
    how = f"docker pull {repo_digest}" if repo_digest else f"build {name} again (make images) or docker load it"
    raise InputError(f"image {name} ({image_id}) is not available here", hint=f"{how}, then run --from again")


class _OnEngine:
    """Holds a Docker engine, connected on first use (so --help and dry runs never reach one)."""

    def __init__(self, engine: docker.DockerClient | None = None) -> None:
        self._engine = engine

    @property
    def engine(self) -> docker.DockerClient:
        """The engine, connected on first use."""
        if self._engine is None:
            self._engine = client()
        return self._engine


class DockerLauncher(_OnEngine):
    """Runs evaluation containers on a Docker engine."""

    def run(self, spec: LaunchSpec, *, output: Output) -> int:
        """Create, start, stream, wait, remove."""
        found = _local_image(self.engine, spec.image)
        environment = {**spec.environment, **provenance_environment(spec, image_id=str(found.id),
                                                                    repo_digests=list(found.attrs.get("RepoDigests")
                                                                                      or []))}
        if spec.secret_envs:
            environment[SECRET_STDIN_VAR] = ",".join(spec.secret_envs)
        container: Container = self.engine.containers.create(
            spec.image, command=spec.args, name=spec.name, user=spec.user, labels=spec.labels,
            environment=environment, network_mode="host" if spec.network_host else None,
            volumes={str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in spec.mounts},
            stdin_open=bool(spec.secret_envs), detach=True, init=True,
        )
        try:
            self._start(container, spec)
            for chunk in container.logs(stream=True, follow=True):
                output(chunk)
            status = container.wait()
            return int(status.get("StatusCode", 1))
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)

    def _start(self, container: Container, spec: LaunchSpec) -> None:
        if not spec.secret_envs:
            container.start()
            return
        value = "".join(os.environ.get(name, "") + "\n" for name in spec.secret_envs)
        sock = container.attach_socket(params={"stdin": 1, "stream": 1})
        raw: socket.socket = sock._sock  # type: ignore[union-attr]  # docker-py hands back a SocketIO wrapper
        try:
            container.start()
            raw.sendall(value.encode())
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_WR)
        finally:
            with contextlib.suppress(OSError):
                sock.close()


def labelled_images(engine: docker.DockerClient, label: str) -> list[tuple[str, dict[str, str]]]:
    """(first tag, labels) of every local image carrying ``label``: one request to the engine (the SDK's
    ``images.list`` inspects each image again), the tag ``:latest`` first, an untagged image by its short id."""
    found: list[tuple[str, dict[str, str]]] = []
    for summary in engine.api.images(filters={"label": label}):
        tags = [tag for tag in summary.get("RepoTags") or [] if tag != "<none>:<none>"]
        image_id = str(summary["Id"])
        short_id = image_id[:19] if image_id.startswith("sha256:") else image_id[:12]
        found.append((sorted(tags, key=lambda t: (not t.endswith(":latest"), t))[0] if tags else short_id,
                      dict(summary.get("Labels") or {})))
    return found


class LabelledContainers:
    """Stops or removes the containers carrying a label (``key=value``): `evals cancel` and cleanup."""

    def __init__(self, engine: docker.DockerClient | None = None) -> None:
        self._engine = engine

    def _find(self, label: str) -> list[Container]:
        engine = self._engine or client()
        found: list[Container] = engine.containers.list(all=True, filters={"label": label})
        return found

    def stop(self, label: str) -> list[str]:
        """Kill the running ones (whoever started them removes them); returns their names."""
        stopped: list[str] = []
        for container in self._find(label):
            with contextlib.suppress(docker.errors.DockerException):
                container.kill()
                stopped.append(str(container.name))
        return stopped

    def remove(self, label: str, *, timeout: float = 20.0) -> list[str]:
        """Force-remove them all and wait until they are gone (another remover may be at it); returns their names."""
        removed: list[str] = []
        deadline = time.monotonic() + timeout
        while found := self._find(label):
            for container in found:
                with contextlib.suppress(docker.errors.DockerException):
                    container.remove(force=True)
                    removed.append(str(container.name))
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return removed


def image_id(engine: docker.DockerClient, image: str) -> str:
    """The id (sha256:...) of a local image."""
    image_labels(engine, image)
    found_id = str(engine.images.get(image).id)
    return found_id


def save_image(engine: docker.DockerClient, image: str, path: Path) -> str:
    """``docker save`` one image (with its tag) into ``path``; returns its id."""
    found = engine.images.get(image)
    with path.open("wb") as handle:
        for chunk in found.save(named=image):
            handle.write(chunk)
    return str(found.id)


class DockerImages(_OnEngine):
    """The harness images on a Docker engine: the catalog `evals` reads (connected on first use)."""

    def images(self) -> list[HarnessImage]:
        """Every local image with a harness label, one per harness."""
        return harness_images(labelled_images(self.engine, LABEL_HARNESS))

    def image(self, name: str) -> HarnessImage:
        """The local image ``name``; one that is not built is bad input."""
        return from_labels(name, image_labels(self.engine, name))

    def pinned(self, *, name: str, image_id: str, repo_digest: str | None) -> HarnessImage:
        """The image with content id ``image_id`` (see :func:`pinned_image`), pinned to that id."""
        labels = pinned_image(self.engine, name=name, image_id=image_id, repo_digest=repo_digest)
        return replace(from_labels(name, labels), digest=image_id)

    def save(self, name: str, path: Path) -> str:
        """``docker save`` the image into ``path``; returns its id."""
        return save_image(self.engine, name, path)

    def image_id(self, name: str) -> str:
        """The id (sha256:...) of a local image."""
        return image_id(self.engine, name)


def _device_request(gpus: int | str | list[int]) -> docker.types.DeviceRequest:
    """``deployment.gpus`` as the engine's device request (what ``docker run --gpus`` sends)."""
    if isinstance(gpus, list):
        return docker.types.DeviceRequest(device_ids=[str(g) for g in gpus], capabilities=[["gpu"]])
    return docker.types.DeviceRequest(count=-1 if gpus == "all" else int(gpus), capabilities=[["gpu"]])


class DockerServers(_OnEngine):
    """A run's model server on a Docker engine: a detached container, started, watched, its logs read, removed."""

    def has_gpu_runtime(self) -> bool:
        """Whether the engine can hand GPUs to a container: an ``nvidia`` runtime, or CDI GPU devices."""
        info = self.engine.info()
        devices = [d for d in info.get("DiscoveredDevices") or [] if "gpu" in str(d.get("ID", "")).lower()]
        return "nvidia" in (info.get("Runtimes") or {}) or bool(devices)

    def image_id(self, image: str, *, pull: bool) -> str:
        """The server image's content id; a missing one is pulled (when ``pull``), else bad input."""
        try:
            return str(self.engine.images.get(image).id)
        except docker.errors.ImageNotFound:
            if not pull:
                raise InputError(f"the server image {image} is not on this engine",
                                 hint=f"docker pull {image}") from None
        try:
            return str(self.engine.images.pull(image).id)
        except docker.errors.DockerException as err:
            raise InputError(f"the server image {image} is not on this engine and could not be pulled "
                             f"({_short(err)})", hint=f"docker pull {image} (or docker load it), or set "
                                                       "deployment.image") from None

    def start(self, spec: ServerSpec) -> str:
        """Create and start the server detached on the host network; returns its container id. The named
        variables' values go into the container's config (a server reads no stdin): ``docker inspect`` shows them."""
        environment = {**spec.environment, **{name: os.environ[name] for name in spec.secret_envs
                                              if name in os.environ}}
        container: Container = self.engine.containers.create(
            spec.image, command=spec.args, entrypoint=spec.entrypoint, name=spec.name, labels=spec.labels,
            environment=environment, network_mode="host", detach=True, init=True,
            volumes={source: {"bind": target, "mode": "ro" if ro else "rw"} for source, target, ro in spec.mounts},
            device_requests=[_device_request(spec.gpus)] if spec.gpus is not None else None,
        )
        try:
            container.start()
        except docker.errors.DockerException:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
            raise
        return str(container.id)

    def running(self, container_id: str) -> tuple[bool, int | None]:
        """Whether the server still runs, and its exit code once it ended."""
        try:
            container = self.engine.containers.get(container_id)
        except docker.errors.NotFound:
            return False, None
        state = container.attrs.get("State") or {}
        return bool(state.get("Running")), (None if state.get("Running") else state.get("ExitCode"))

    def logs(self, container_id: str) -> bytes:
        """Everything the server printed so far."""
        with contextlib.suppress(docker.errors.DockerException):
            return bytes(self.engine.containers.get(container_id).logs(stdout=True, stderr=True))
        return b""

    def remove(self, container_id: str) -> None:
        """Stop and remove the server (gone already, or being removed by `evals cancel`, is fine)."""
        try:
            self.engine.containers.get(container_id).remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as err:
            if err.status_code != 409:  # 409: its removal is already in progress
                raise
