"""Test double: an image catalog of images built from labels, with no engine behind it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.host.catalog import HarnessImage


@dataclass
class FakeCatalog:
    """Lists ``built`` and finds one of them by name; it holds no image content, so asking it for anything else (an
    image it does not hold, one by id, a save, an id) fails the test."""

    built: list[HarnessImage]

    def images(self) -> list[HarnessImage]:
        """The built images."""
        return list(self.built)

    def image(self, name: str) -> HarnessImage:
        """The built image ``name``."""
        for image in self.built:
            if image.image == name:
                return image
        raise AssertionError(f"the catalog double holds no image {name}: the test asked an engine for it")

    def pinned(self, *, name: str, image_id: str, repo_digest: str | None) -> HarnessImage:
        """Not held: pin images with DockerImages over the engine double (tests/doubles/engine.py)."""
        raise AssertionError(f"the catalog double pins no image by id ({name}, {image_id})")

    def save(self, name: str, path: Path) -> str:
        """Not held: the double has no image content to save."""
        raise AssertionError(f"the catalog double saves no image ({name})")

    def image_id(self, name: str) -> str:
        """Not held: the double's images have no content id."""
        raise AssertionError(f"the catalog double knows no image id ({name})")
