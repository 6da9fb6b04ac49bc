"""Test double: the few Docker engine calls `evals run --from` makes (images by id, pull by digest)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import docker
import docker.errors


@dataclass
class FakeImage:
    """A local image: its content id and labels."""

    id: str
    labels: dict[str, str]


@dataclass
class FakeImages:
    """``engine.images``: ``get`` finds local images by id; ``pull`` adds what the registry holds."""

    local: dict[str, FakeImage] = field(default_factory=dict)
    registry: dict[str, FakeImage] = field(default_factory=dict)
    pulled: list[str] = field(default_factory=list)

    def get(self, name: str) -> FakeImage:
        """The local image ``name`` (an id), or docker's ImageNotFound."""
        if name not in self.local:
            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return self.local[name]

    def pull(self, reference: str) -> FakeImage:
        """Pull ``REPO@sha256:...`` from the scripted registry, or docker's NotFound."""
        self.pulled.append(reference)
        if reference not in self.registry:
            raise docker.errors.NotFound(f"manifest for {reference} not found")
        image = self.registry[reference]
        self.local[image.id] = image
        return image

    def list(self, filters: dict[str, str]) -> list[FakeImage]:
        """Not among the calls `--from` makes: it pins its image by id and never picks one by task."""
        raise AssertionError(f"--from must not pick an image by task (images listed with {filters})")


@dataclass
class FakeApi:
    """``engine.api``: its image list is not among the calls `--from` makes either."""

    def images(self, filters: dict[str, str]) -> list[dict[str, object]]:
        """Not among the calls `--from` makes: it pins its image by id and never picks one by task."""
        raise AssertionError(f"--from must not pick an image by task (images listed with {filters})")


@dataclass
class FakeEngine:
    """A Docker client with only ``images`` (and ``api``, whose image list fails the test)."""

    images: FakeImages = field(default_factory=FakeImages)
    api: FakeApi = field(default_factory=FakeApi)


def as_client(engine: FakeEngine) -> docker.DockerClient:
    """The double where the SDK's client goes (``DockerImages(as_client(engine))``); it answers only ``images``."""
    return cast("docker.DockerClient", engine)
