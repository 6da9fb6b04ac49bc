"""The host's data cache and what the container needs to use it: one directory shared by every image and run.

Harnesses download into it (the Hugging Face cache, NLTK data, ...) through the mount at ``/cache``, so nothing
is downloaded twice. Default: ``$EVALS_CACHE_DIR``, else ``$XDG_CACHE_HOME/evals``, else ``~/.cache/evals``
(on a cluster, put it on storage the compute nodes share). The Hub token and proxy URLs travel by name like the
API key.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.host.backends.container import Mount
from orchestrator.schema.container import CACHE_DIR, FORWARDED_ENV, HUB_TOKEN_VAR, PROXY_VARS
from orchestrator.schema.errors import InputError


def is_local(url: str) -> bool:
    """Whether a URL is on this machine (a container reaches it only with host networking)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    loopback: bool = False
    """Whether a Hub, mirror or proxy it forwards is on loopback (then the container needs host networking)."""

    def prepare(self) -> None:
        """Before a container starts: the cache exists and is writable."""
        ensure_writable(self.mount.source)


def data_access(*, cache_dir: Path | None, prefetched_cache: Path | None, offline: bool) -> DataAccess:
    """The cache (or a prefetched cache, offline), and the Hub, mirror and proxy variables set on the host.

    A prefetched cache is mounted read-write: ``datasets`` takes file locks next to the data even offline
    (measured: a read-only mount fails with EROFS on ``*.lock``). Only lock files appear; the data files and
    the manifest do not change, so ``evals prefetch --verify`` still passes after a run."""
    if prefetched_cache is not None:
        mount = Mount(source=prefetched_cache, target=CACHE_DIR)
        offline = True
    else:
        mount = Mount(source=(cache_dir or default_cache_dir()).expanduser().resolve(), target=CACHE_DIR)
    environment = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    secrets = [name for name in (HUB_TOKEN_VAR, *PROXY_VARS) if os.environ.get(name)]
    sources = [environment.get(name, "") for name in ("HF_ENDPOINT", "EVALS_LMUDATA_MIRROR")]
    sources += [os.environ.get(name, "") for name in PROXY_VARS]
    loopback = any(is_local(url) for url in sources if url)
    return DataAccess(mount=mount, environment=environment, secret_envs=secrets, offline=offline, loopback=loopback)
