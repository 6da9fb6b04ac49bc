"""The catalog: which harness images exist and what tasks they offer, read from image labels.

Images carry their framework.yml in a label, so the host lists tasks and resolves runs with
the runtime's own code without starting a container.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.schema.config import EndpointType
from orchestrator.schema.container import LABEL_FRAMEWORK, LABEL_HARNESS
from orchestrator.schema.errors import ConfigError, InputError, UnknownTaskError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.limits import decode_utf8
from orchestrator.schema.loading import parse_yaml, validate

IMAGE_REPO = "evals/{harness}"
"""A harness's image repository (prefixed by $EVALS_REGISTRY when set); the harness is its images/ folder's name."""


@dataclass(frozen=True)
class HarnessImage:
    """One built harness image and the framework it carries."""

    image: str
    harness: str
    framework: FrameworkDefinition
    framework_sha256: str
    digest: str | None = None
    """The content id (sha256:...) the run is pinned to (`evals run --from`): its container starts from the id, and
    ``image`` is only the name it is recorded under."""


@dataclass(frozen=True)
class TaskEntry:
    """One task of one image, as `evals ls` shows it."""

    harness: str
    task: str
    endpoint_types: list[EndpointType]
    description: str
    image: str


_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)
"""Docker's image reference grammar (distribution/reference): ``[host[:port]/]path[:tag][@digest]``."""
MAX_IMAGE_NAME = 255
"""Longest repository name the grammar allows (tag and digest not counted)."""


def check_image_name(image: str, *, where: str = "--image") -> str:
    """``image`` if it is a valid image reference, checked before any engine is asked about it."""
    match = IMAGE_REFERENCE.fullmatch(image) if len(image) <= 2 * MAX_IMAGE_NAME else None
    if match is None or len(match.group("name")) > MAX_IMAGE_NAME:
        shown = repr(image) if len(image) <= 80 else f"{image[:60]!r}... ({len(image)} characters)"
        raise InputError(f"{where}: {shown} is not an image name",
                         hint="give [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST] in lowercase, e.g. evals/lm-eval:latest")
    return image


def image_for(harness: str, *, tag: str = "latest") -> str:
    """The default image name of a harness: ``evals/<harness>:<tag>``, under ``$EVALS_REGISTRY`` when set."""
    registry = os.environ.get("EVALS_REGISTRY", "").rstrip("/")
    return check_image_name(_default_name(harness, tag=tag, registry=registry),
                            where="$EVALS_REGISTRY" if registry else "--harness")


def _default_name(harness: str, *, tag: str = "latest", registry: str | None = None) -> str:
    registry = os.environ.get("EVALS_REGISTRY", "").rstrip("/") if registry is None else registry
    repo = IMAGE_REPO.format(harness=harness)
    return f"{registry}/{repo}:{tag}" if registry else f"{repo}:{tag}"


def chosen_image(catalog: ImageCatalog, *, harness: str | None, image: str | None) -> HarnessImage:
    """The image ``--image`` names (checked), else the image of ``--harness``: its default name (:func:`image_for`) if
    built, else another built image labelled with that harness. A harness no built image is labelled with is unknown:
    the error lists the harnesses of the built images."""
    if image:
        return catalog.image(check_image_name(image))
    default = image_for(harness or "")
    built = catalog.images()
    for found in built:
        if found.harness == harness:
            return found
    known = sorted({found.harness for found in built})
    close = difflib.get_close_matches(harness or "", known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise InputError(f"unknown harness {harness!r}: no built image is labelled {LABEL_HARNESS}={harness}",
                     hint=f"{hint}built: {', '.join(known) or 'none'}; build {default} with "
                          f"`bash scripts/build-image.sh {harness}` (harnesses: the folders of images/)")


def from_labels(image: str, labels: dict[str, str]) -> HarnessImage:
    """Read the harness and its framework definition from an image's labels."""
    encoded = labels.get(LABEL_FRAMEWORK)
    harness = labels.get(LABEL_HARNESS)
    if not encoded or not harness:
        raise InputError(f"image {image} is not an evaluation image (no {LABEL_HARNESS}/{LABEL_FRAMEWORK} labels)",
                         hint="build it with `make images`")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"label {LABEL_FRAMEWORK} is not base64", where=image) from None
    source = f"{image} ({LABEL_FRAMEWORK})"
    doc = parse_yaml(decode_utf8(raw, source=source), source=source)
    framework = validate(FrameworkDefinition, doc.data, doc=doc, source=doc.source)
    return HarnessImage(image, harness, framework, hashlib.sha256(raw).hexdigest())


def harness_images(found: list[tuple[str, dict[str, str]]]) -> list[HarnessImage]:
    """One image per harness, in harness order, from (name, labels) pairs: its default name (:func:`image_for`, under
    ``$EVALS_REGISTRY`` when set) if it is among them, else the first found (the engine lists the newest first).
    Only the chosen images' framework labels are decoded and validated."""
    chosen: dict[str, tuple[str, dict[str, str]]] = {}
    for name, labels in found:
        harness = labels.get(LABEL_HARNESS)
        if not harness:
            from_labels(name, labels)  # not an evaluation image: says so
            continue
        if harness not in chosen or name == _default_name(harness):
            chosen[harness] = (name, labels)
    return [from_labels(name, labels) for _, (name, labels) in sorted(chosen.items())]


class ImageCatalog(Protocol):
    """Where the harness images are: the local engine's (``DockerImages`` in ``backends/local/docker.py``)."""

    def images(self) -> list[HarnessImage]:
        """Every built harness image, one per harness (:func:`harness_images`)."""
        ...

    def image(self, name: str) -> HarnessImage:
        """The image ``name`` (checked by :func:`image_name` first); one that is not built is bad input."""
        ...

    def pinned(self, *, name: str, image_id: str, repo_digest: str | None) -> HarnessImage:
        """The image with content id ``image_id`` (pulled by ``repo_digest`` when not here), recorded as ``name`` and
        pinned to that id (its ``digest``); neither is bad input saying how to get it."""
        ...

    def save(self, name: str, path: Path) -> str:
        """Write the image (with its tag) into ``path`` as a docker archive; returns its id."""
        ...

    def image_id(self, name: str) -> str:
        """The content id (sha256:...) of a built image."""
        ...


def tasks_of(images: list[HarnessImage]) -> list[TaskEntry]:
    """Every task of every image, in image then file order."""
    entries: list[TaskEntry] = []
    for image in images:
        default_types = (image.framework.defaults.config.supported_endpoint_types
                         if image.framework.defaults.config else None) or []
        for task in image.framework.evaluations:
            entries.append(TaskEntry(image.harness, task.type, task.endpoint_types or list(default_types),
                                     " ".join(task.description.split()), image.image))
    return entries


def pick_image(images: list[HarnessImage], eval_type: str | None) -> HarnessImage:
    """The image that runs ``eval_type`` (``harness.task`` or a task name only one image offers)."""
    if not images:
        raise InputError("no evaluation images are built", hint="build them with `make images`")
    if eval_type is None:
        raise InputError("missing --eval_type", hint="name the task to run; list tasks with `evals ls`")
    prefix, dot, _ = eval_type.partition(".")
    if dot:
        for image in images:
            if prefix in image.framework.prefixes():
                return image
    owners = [image for image in images if eval_type in image.framework.task_names]
    if len(owners) == 1:
        return owners[0]
    if len(owners) > 1:
        names = ", ".join(f"{o.harness}.{eval_type}" for o in owners)
        raise InputError(f"task {eval_type!r} is offered by several harnesses", hint=f"pick one: {names}")
    every = [task for image in images for task in image.framework.task_names]
    close = difflib.get_close_matches(eval_type, every, n=5, cutoff=0.5)
    hint = f"did you mean: {', '.join(close)}? " if close else ""
    raise UnknownTaskError(f"no built image offers task {eval_type!r}", hint=f"{hint}list tasks with `evals ls`")
