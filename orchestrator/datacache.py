"""The host's data cache and what the container needs to use it: one directory shared by every image and run.

Harnesses download into it (the Hugging Face cache, NLTK data, ...) through the mount at ``/cache``, so nothing
is downloaded twice. Default: ``$EVALS_CACHE_DIR``, else ``$XDG_CACHE_HOME/evals``, else ``~/.cache/evals``
(on a cluster, put it on storage the compute nodes share). The Hub token travels by name like the API key.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.launchers import Mount
from orchestrator.schema.container import CACHE_DIR, FORWARDED_ENV, HUB_TOKEN_VAR
from orchestrator.schema.errors import InputError


def default_cache_dir() -> Path:
    """``$EVALS_CACHE_DIR``, else ``$XDG_CACHE_HOME/evals``, else ``~/.cache/evals``."""
    if os.environ.get("EVALS_CACHE_DIR"):
        return Path(os.environ["EVALS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evals"


def ensure_writable(cache: Path) -> None:
    """Create the cache directory if missing; refused (exit 2) when it cannot be written."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache):
            pass
    except OSError as err:
        raise InputError(f"cache directory {str(cache)!r} is not writable: {err.strerror}",
                         hint="pass --cache_dir DIR (or set EVALS_CACHE_DIR) to a directory you can write to") from None


@dataclass(frozen=True)
class DataAccess:
    """How a container reaches data: the cache mount, forwarded variables, the Hub token's name."""

    mount: Mount
    environment: dict[str, str]
    secret_envs: list[str]
    offline: bool

    def prepare(self) -> None:
        """Before a container starts: the cache exists and is writable."""
        ensure_writable(self.mount.source)


def data_access(*, cache_dir: Path | None, prefetched_cache: Path | None, offline: bool) -> DataAccess:
    """The cache (or a prefetched cache, offline) and the Hub variables set on the host.

    A prefetched cache is mounted read-write: ``datasets`` takes file locks next to the data even offline
    (measured: a read-only mount fails with EROFS on ``*.lock``). Only lock files appear; the data files and
    the manifest do not change, so ``evals prefetch --verify`` still passes after a run."""
    if prefetched_cache is not None:
        mount = Mount(source=prefetched_cache, target=CACHE_DIR)
        offline = True
    else:
        mount = Mount(source=(cache_dir or default_cache_dir()).expanduser().resolve(), target=CACHE_DIR)
    environment = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    secrets = [HUB_TOKEN_VAR] if os.environ.get(HUB_TOKEN_VAR) else []
    return DataAccess(mount=mount, environment=environment, secret_envs=secrets, offline=offline)
