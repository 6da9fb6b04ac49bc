"""Repositories on disk (``ROOT/datasets/<org>/<name>/...``), scanned once into immutable metadata.

A repository's files are served exactly as they lie in its directory. Its commit sha is a hash of
its files' git blob ids, so the same files always give the same sha. Files that the repository's
``.gitattributes`` marks ``filter=lfs`` are LFS files, as on the Hub: their git blob is the LFS
pointer, and their ETag is the content's sha256.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

RepoType = Literal["model", "dataset", "space"]

# The directory under ROOT for each repository type, and the URL prefix of its file downloads.
TYPE_DIRS: Mapping[RepoType, str] = {"model": "models", "dataset": "datasets", "space": "spaces"}


@dataclass(frozen=True)
class LfsInfo:
    """The LFS side of an LFS file: the content's sha256 and size, and the pointer file's size."""

    sha256: str
    size: int
    pointer_size: int


@dataclass(frozen=True)
class RepoFile:
    """One file: its path in the repository (``/``-separated), size, git blob id and location on disk."""

    path: str
    size: int
    blob_id: str
    lfs: LfsInfo | None
    location: Path

    @property
    def etag(self) -> str:
        """What the Hub sends as the file's ETag: the sha256 for LFS files, else the git blob id."""
        return self.lfs.sha256 if self.lfs is not None else self.blob_id


@dataclass(frozen=True)
class RepoFolder:
    """One directory: its path in the repository and a tree id derived from what it holds."""

    path: str
    tree_id: str


@dataclass(frozen=True)
class Repository:
    """A repository as scanned: its type, id (``org/name``), commit sha and files by path."""

    type: RepoType
    id: str
    sha: str
    files: Mapping[str, RepoFile]

    @cached_property
    def folders(self) -> dict[str, RepoFolder]:
        """Every directory that holds a file, by path (the root ``""`` excluded)."""
        paths = {parent for path in self.files for parent in _parents(path)}
        return {path: RepoFolder(path, _tree_id(path, self.files)) for path in sorted(paths)}

    def entries(self, directory: str, *, recursive: bool) -> list[RepoFile | RepoFolder] | None:
        """What ``directory`` holds (its subdirectories first, as the Hub lists them), or None if absent."""
        folders = self.folders
        if directory and directory not in folders:
            return None
        prefix = f"{directory}/" if directory else ""

        def wanted(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        listed: list[RepoFile | RepoFolder] = [folder for path, folder in folders.items() if wanted(path)]
        return listed + [file for path, file in self.files.items() if wanted(path)]

    def lookup(self, path: str) -> RepoFile | RepoFolder | None:
        """The file or directory at ``path``, or None."""
        return self.files.get(path) or self.folders.get(path)


def scan(root: Path) -> dict[tuple[RepoType, str], Repository]:
    """Every repository under ``root``, keyed by (type, ``org/name``)."""
    found: dict[tuple[RepoType, str], Repository] = {}
    for repo_type, type_dir in TYPE_DIRS.items():
        for directory in sorted((root / type_dir).glob("*/*")):
            if directory.is_dir():
                repo_id = f"{directory.parent.name}/{directory.name}"
                found[(repo_type, repo_id)] = scan_repository(directory, repo_type=repo_type, repo_id=repo_id)
    return found


def scan_repository(directory: Path, *, repo_type: RepoType, repo_id: str) -> Repository:
    """One repository directory: hash its files and derive the commit sha from them."""
    attributes = directory / ".gitattributes"
    lfs_patterns = _lfs_patterns(attributes.read_text(encoding="utf-8")) if attributes.is_file() else []
    files: dict[str, RepoFile] = {}
    for location in sorted(directory.rglob("*")):
        relative = location.relative_to(directory)
        if location.is_file() and ".git" not in relative.parts:
            path = relative.as_posix()
            files[path] = _hash_file(path, location, lfs=_is_lfs(path, lfs_patterns))
    listing = "".join(f"{path}\0{file.blob_id}\n" for path, file in files.items())
    sha = hashlib.sha1(f"{repo_type}/{repo_id}\n{listing}".encode()).hexdigest()
    return Repository(type=repo_type, id=repo_id, sha=sha, files=files)


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob with this content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _hash_file(path: str, location: Path, *, lfs: bool) -> RepoFile:
    data = location.read_bytes()
    if not lfs:
        return RepoFile(path=path, size=len(data), blob_id=git_blob_id(data), lfs=None, location=location)
    sha256 = hashlib.sha256(data).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
    info = LfsInfo(sha256=sha256, size=len(data), pointer_size=len(pointer))
    return RepoFile(path=path, size=len(data), blob_id=git_blob_id(pointer), lfs=info, location=location)


def _lfs_patterns(gitattributes: str) -> list[str]:
    patterns = []
    for line in gitattributes.splitlines():
        fields = line.split()
        if len(fields) > 1 and not fields[0].startswith("#") and "filter=lfs" in fields[1:]:
            patterns.append(fields[0])
    return patterns


def _is_lfs(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path if "/" in pattern else name, pattern) for pattern in patterns)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _tree_id(directory: str, files: Mapping[str, RepoFile]) -> str:
    prefix = f"{directory}/"
    listing = "".join(f"{path}\0{file.blob_id}\n" for path, file in files.items() if path.startswith(prefix))
    return hashlib.sha1(f"tree {directory}\n{listing}".encode()).hexdigest()
