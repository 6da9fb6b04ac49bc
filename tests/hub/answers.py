"""What the Hub answers: the JSON of its repository API and its errors (``X-Error-Code`` headers).

``huggingface_hub`` turns an error into an exception by its ``X-Error-Code`` header
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``), so each error here
carries the code and message the Hub sends.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from tests.hub.layout import RepoFile, RepoFolder, Repository

# Every repository reports the same dates: nothing here depends on the clock.
DATE = "2024-01-01T00:00:00.000Z"


class HubError(Exception):
    """An error answer: the status, the Hub's ``X-Error-Code`` (if any) and its message."""

    def __init__(self, status: int, message: str, *, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.commit = commit

    def headers(self) -> dict[str, str]:
        """``X-Error-Code`` and ``X-Error-Message``, as the Hub sends them, and ``X-Repo-Commit`` when the
        repository is known (``huggingface_hub`` then records the missing file under ``.no_exist/<commit>/``,
        which is how an offline run knows an optional file, e.g. a tokenizer's ``config.json``, is absent)."""
        headers = {"X-Error-Message": self.message}
        if self.code is not None:
            headers["X-Error-Code"] = self.code
        if self.commit is not None:
            headers["X-Repo-Commit"] = self.commit
        return headers

    def body(self) -> bytes:
        """``{"error": message}``."""
        return json.dumps({"error": self.message}).encode()


def repo_not_found() -> HubError:
    """An unknown repository (or repository type)."""
    return HubError(404, "Repository not found", code="RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    """A revision that is neither ``main`` nor the repository's commit sha."""
    return HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")


def entry_not_found(commit: str | None = None) -> HubError:
    """A path that is not in the repository (at ``commit``)."""
    return HubError(404, "Entry not found", code="EntryNotFound", commit=commit)


def gated_repo(repo: Repository, *, authenticated: bool) -> HubError:
    """A gated repository's file without a token (401) or with a token that has no access (403)."""
    what = f"{repo.type} {repo.id}"
    if not authenticated:
        message = f"Access to {what} is restricted. You must have access to it and be authenticated to access it."
        return HubError(401, message + " Please log in.", code="GatedRepo")
    page = f"https://huggingface.co/{repo.type}s/{repo.id}"
    message = f"Access to {what} is restricted and you are not in the authorized list. Visit {page} to ask for access."
    return HubError(403, message, code="GatedRepo")


def unknown_route() -> HubError:
    """Any path the stand-in does not serve."""
    return HubError(404, "Sorry, we can't find the page you are looking for.")


def info(repo: Repository, *, gated: bool, blobs: bool) -> dict[str, Any]:
    """``GET /api/<type>s/<id>[/revision/<rev>]``: the repository's metadata and file list."""
    siblings = [_sibling(file, blobs=blobs) for file in repo.files.values()]
    return {
        "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
        "id": repo.id,
        "author": repo.id.split("/")[0],
        "sha": repo.sha,
        "lastModified": DATE,
        "createdAt": DATE,
        "private": False,
        "gated": "auto" if gated else False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "cardData": card_data(repo),
        "siblings": siblings,
        "usedStorage": sum(file.size for file in repo.files.values()),
    }


def entry(item: RepoFile | RepoFolder, *, repo: Repository, expand: bool) -> dict[str, Any]:
    """One item of ``/tree`` and ``/paths-info``: a file (with its LFS part) or a directory."""
    body: dict[str, Any]
    if isinstance(item, RepoFolder):
        body = {"type": "directory", "oid": item.tree_id, "size": 0, "path": item.path}
    else:
        body = {"type": "file", "oid": item.blob_id, "size": item.size, "path": item.path}
        if item.lfs is not None:
            body["lfs"] = {"oid": item.lfs.sha256, "size": item.lfs.size, "pointerSize": item.lfs.pointer_size}
    if expand:
        body["lastCommit"] = {"id": repo.sha, "title": "Upload", "date": DATE}
    return body


def card_data(repo: Repository) -> dict[str, Any] | None:
    """The YAML header of the repository's README.md, or None if it has none."""
    readme = repo.files.get("README.md")
    if readme is None:
        return None
    text = readme.location.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return None
    header = yaml.safe_load(text[4:].split("\n---", 1)[0])
    return header if isinstance(header, dict) else None


def _sibling(file: RepoFile, *, blobs: bool) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": file.path}
    sibling: dict[str, Any] = {"rfilename": file.path, "size": file.size, "blobId": file.blob_id}
    if file.lfs is not None:
        sibling["lfs"] = {"size": file.lfs.size, "sha256": file.lfs.sha256, "pointerSize": file.lfs.pointer_size}
    return sibling
