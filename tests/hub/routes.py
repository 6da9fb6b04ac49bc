"""The routes: which URL asks for what, and the answer (a pure function of the request and the repos).

Served, for ``<type>s`` = ``models``, ``datasets`` or ``spaces`` and a repository id ``org/name``:

- ``GET /api/<type>s/<id>`` and ``GET /api/<type>s/<id>/revision/<rev>``: repository info
- ``GET /api/<type>s/<id>/tree/<rev>[/<path>]`` (``recursive``, ``expand``): a directory listing
- ``POST /api/<type>s/<id>/paths-info/<rev>`` (form or JSON ``paths``, ``expand``): those paths' entries
- ``GET|HEAD /[datasets/|spaces/]<id>/resolve/<rev>/<path>``: the file, with ``Range`` support
- ``GET /api/agent-harnesses``: an empty registry (huggingface_hub >= 2 asks for it once a day)
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.hub import answers
from tests.hub.answers import HubError
from tests.hub.layout import TYPE_DIRS, RepoFile, Repository, RepoType

TEXT_SUFFIXES = (".md", ".py", ".csv", ".json", ".jsonl", ".txt", ".yaml", ".yml", ".gitattributes")
API_TYPES: Mapping[str, RepoType] = {directory: repo_type for repo_type, directory in TYPE_DIRS.items()}


@dataclass(frozen=True)
class Settings:
    """The repositories served, which of them are gated (by id), and the token that opens them."""

    repos: Mapping[tuple[RepoType, str], Repository]
    gated: frozenset[str] = frozenset()
    token: str | None = None


@dataclass(frozen=True)
class Request:
    """What the routes look at: method, raw path segments, query, body and two headers."""

    method: str
    path: str
    query: str = ""
    body: bytes = b""
    content_type: str = ""
    authorization: str | None = None
    range: str | None = None


@dataclass(frozen=True)
class Reply:
    """An answer: status, body and headers (``Content-Length`` is added when sending)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def answer(settings: Settings, request: Request) -> Reply:
    """Answer one request; every failure becomes the Hub's error reply."""
    try:
        return _route(settings, request)
    except HubError as error:
        return Reply(error.status, error.body(), {"Content-Type": "application/json", **error.headers()})


def _route(settings: Settings, request: Request) -> Reply:
    segments = request.path.split("/")[1:]
    if request.path == "/api/agent-harnesses" and request.method == "GET":
        return _json({"standardEnvVars": [], "harnesses": {}})  # huggingface_hub's agent detection: none
    if len(segments) >= 3 and segments[0] == "api" and segments[1] in API_TYPES:
        return _api(settings, request, API_TYPES[segments[1]], segments[2:])
    if segments and segments[0] in ("datasets", "spaces") and "resolve" in segments[2:4]:
        return _resolve(settings, request, API_TYPES[segments[0]], segments[1:])
    if "resolve" in segments[1:3]:
        return _resolve(settings, request, "model", segments)
    raise answers.unknown_route()


def _api(settings: Settings, request: Request, repo_type: RepoType, segments: list[str]) -> Reply:
    repo = _find(settings, repo_type, segments[:2])
    action, args = (segments[2], segments[3:]) if len(segments) > 2 else ("revision", ["main"])
    query = parse_qs(request.query)
    if request.method == "GET" and action == "revision" and len(args) == 1:
        _check_revision(repo, args[0])
        blobs = _flag(query, "blobs")
        return _json(answers.info(repo, gated=repo.id in settings.gated, blobs=blobs))
    if request.method == "GET" and action == "tree" and args:
        _check_revision(repo, args[0])
        listed = repo.entries(unquote("/".join(args[1:])).strip("/"), recursive=_flag(query, "recursive"))
        if listed is None:
            raise answers.entry_not_found()
        return _json([answers.entry(item, repo=repo, expand=_flag(query, "expand")) for item in listed])
    if request.method == "POST" and action == "paths-info" and len(args) == 1:
        _check_revision(repo, args[0])
        form = _form(request)
        items = [repo.lookup(path.strip("/")) for path in form.get("paths", [])]
        expand = _flag(form, "expand")
        return _json([answers.entry(item, repo=repo, expand=expand) for item in items if item is not None])
    raise answers.unknown_route()


def _resolve(settings: Settings, request: Request, repo_type: RepoType, segments: list[str]) -> Reply:
    if segments[1] == "resolve":  # a legacy id without an organisation: none is served
        raise answers.repo_not_found()
    repo = _find(settings, repo_type, segments[:2])
    if len(segments) < 5 or request.method not in ("GET", "HEAD"):
        raise answers.unknown_route()
    if repo.id in settings.gated and not _authorized(settings, request):
        raise answers.gated_repo(repo, authenticated=request.authorization is not None)
    _check_revision(repo, segments[3])
    file = repo.files.get(unquote("/".join(segments[4:])))
    if file is None:
        raise answers.entry_not_found(repo.sha)
    return _file_reply(repo, file, request.range)


def _file_reply(repo: Repository, file: RepoFile, range_header: str | None) -> Reply:
    data = file.location.read_bytes()
    text = file.path.endswith(TEXT_SUFFIXES)
    headers = {
        "Content-Type": "text/plain; charset=utf-8" if text else "application/octet-stream",
        "ETag": f'"{file.etag}"',
        "X-Repo-Commit": repo.sha,
        "Accept-Ranges": "bytes",
    }
    if file.lfs is not None:
        headers["X-Linked-Etag"] = f'"{file.lfs.sha256}"'
        headers["X-Linked-Size"] = str(file.lfs.size)
    if range_header is None:
        return Reply(200, data, headers)
    span = _parse_range(range_header, len(data))
    if span is None:
        return Reply(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
    start, end = span
    return Reply(206, data[start : end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})


def _find(settings: Settings, repo_type: RepoType, id_segments: list[str]) -> Repository:
    repo = settings.repos.get((repo_type, "/".join(unquote(part) for part in id_segments)))
    if repo is None or len(id_segments) != 2:
        raise answers.repo_not_found()
    return repo


def _check_revision(repo: Repository, revision: str) -> None:
    if unquote(revision) not in ("main", repo.sha):
        raise answers.revision_not_found(unquote(revision))


def _authorized(settings: Settings, request: Request) -> bool:
    if settings.token is None or request.authorization is None:
        return False
    return hmac.compare_digest(request.authorization.encode(), f"Bearer {settings.token}".encode())


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range as (first, last), or None if unsatisfiable."""
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec or not (first + last).isdigit():
        return None
    if not first:
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end else None


def _form(request: Request) -> dict[str, list[str]]:
    if request.content_type.startswith("application/json"):
        body: Any = json.loads(request.body or b"{}")
        paths = body.get("paths", []) if isinstance(body, dict) else []
        return {"paths": [paths] if isinstance(paths, str) else list(paths), "expand": [str(body.get("expand"))]}
    return parse_qs(request.body.decode("utf-8"))


def _flag(values: Mapping[str, list[str]], name: str) -> bool:
    return any(value.lower() in ("true", "1") for value in values.get(name, []))


def _json(body: Any) -> Reply:
    return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
