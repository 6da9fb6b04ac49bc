"""A prefetched directory in use: its manifest read and checked, its tasks and cluster images looked up.

``evals prefetch --verify DIR`` checks every file's sha256 against ``manifest.json``; ``evals run --data DIR``
checks sizes, that the directory holds each task, and takes the enroot/apptainer image files it carries.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from orchestrator.schema.errors import EvalsError, InputError
from orchestrator.schema.limits import MANIFEST_LIMITS, read_text
from orchestrator.schema.loading import validate
from orchestrator.schema.manifest import CACHE_SUBDIR, MANIFEST_NAME, FileEntry, PrefetchManifest


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.relative_to(root).as_posix() != MANIFEST_NAME:
                yield path


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


def scan(root: Path) -> tuple[dict[str, FileEntry], dict[str, str]]:
    """Every regular file's size and sha256, and every symlink's target, by path relative to ``root``."""
    files: dict[str, FileEntry] = {}
    links: dict[str, str] = {}
    for path in _walk(root):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            links[rel] = os.readlink(path)
        elif path.is_file():
            files[rel] = FileEntry(size=path.stat().st_size, sha256=_digest(path))
    return files, links


def read_manifest(directory: Path) -> PrefetchManifest:
    """The manifest of a prefetched directory; a missing or invalid one is bad input."""
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory", hint="pass a directory written by `evals prefetch --to`")
    if not path.is_file():
        raise InputError(f"{directory} has no {MANIFEST_NAME}: it was not written by `evals prefetch`",
                         hint="prefetch with `evals prefetch --eval_type TASK --to DIR`")
    text = read_text(path, limits=MANIFEST_LIMITS)  # at most 64 MiB, UTF-8
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nested deeper than the parser goes
        raise InputError(f"{path}: not JSON ({err})", hint="prefetch the directory again") from None
    try:
        return validate(PrefetchManifest, data, source=str(path))
    except EvalsError as err:
        raise InputError(f"{path}: invalid manifest: {err}", hint="prefetch the directory again") from None


def verify(directory: Path, *, full: bool = True) -> PrefetchManifest:
    """Check every file against the manifest (``full``: sha256; else sizes only); the first mismatch is bad input."""
    manifest = read_manifest(directory)
    for rel, entry in manifest.files.items():
        path = directory / rel
        if not path.is_file() or path.is_symlink():
            raise InputError(f"{path} is missing (listed in {MANIFEST_NAME})", hint="prefetch the directory again")
        size = path.stat().st_size
        if size != entry.size:
            raise InputError(f"{path} has {size} bytes, the manifest says {entry.size}",
                             hint="the copy is damaged or was changed: copy or prefetch it again")
        if full and _digest(path) != entry.sha256:
            raise InputError(f"{path}: sha256 does not match the manifest",
                             hint="the copy is damaged or was changed: copy or prefetch it again")
    for rel, link in manifest.links.items():
        path = directory / rel
        if not path.is_symlink() or os.readlink(path) != link or not path.exists():
            raise InputError(f"{path} is not the link to {link} the manifest lists",
                             hint="copy the directory with its symlinks (cp -a, rsync -a, tar)")
    return manifest


def read_prefetched(directory: Path) -> tuple[Path, PrefetchManifest]:
    """The cache of a prefetched directory and its manifest (sizes checked; ``--verify`` checks digests)."""
    manifest = verify(directory, full=False)
    return (directory / CACHE_SUBDIR).resolve(), manifest


def check_holds(directory: Path, manifest: PrefetchManifest, tasks: list[tuple[str, str]]) -> None:
    """For ``evals run --data DIR``: every (harness, task) must be in the directory."""
    have = {(t.harness, t.task) for t in manifest.tasks}
    for harness, task in tasks:
        if (harness, task) not in have:
            listed = ", ".join(f"{t.harness}.{t.task}" for t in manifest.tasks) or "none"
            raise InputError(f"{directory} holds no data for {harness}.{task} (it holds: {listed})",
                             hint=f"prefetch it: evals prefetch --eval_type {task} --to NEW_DIR")


def cluster_images(directory: Path, manifest: PrefetchManifest, runtime: str, images: dict[str, str]) -> dict[str, str]:
    """For a Slurm run from a prefetched directory: harness -> the directory's image file in the cluster
    runtime's format (enroot: .sqsh, apptainer: .sif), for each ``harness -> image name`` it holds."""
    if runtime not in ("enroot", "apptainer"):
        return {}
    held = {(entry.image, entry.format): entry.file for entry in manifest.images}
    return {harness: str((directory / held[(name, runtime)]).resolve())
            for harness, name in images.items() if (name, runtime) in held}

