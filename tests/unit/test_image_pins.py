"""The images' pinned runtime dependencies stay within what the package declares."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "images" / "runtime-constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {raw!r}"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    declared = [Requirement(text) for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                ["dependencies"]]
    for requirement in declared:
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in images/runtime-constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement.specifier}"


def test_images_install_the_runtime_with_the_pins() -> None:
    for image in ("lm-eval", "vlmevalkit"):
        dockerfile = (ROOT / "images" / image / "Dockerfile").read_text()
        assert "pip install -c /src/runtime-constraints.txt /src" in dockerfile, image
