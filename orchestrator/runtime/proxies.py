"""A run's adapter proxies: one for the model and one for each auxiliary endpoint (a judge, ...), each with its own
chain, files and usage; and what the harness is told (each proxy's origin in place of its endpoint's)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.runtime.proxy.server import Proxy, ProxyThread
from orchestrator.runtime.retries import DEFAULT_TIMEOUT
from orchestrator.schema.auxiliary import MODEL_ROLE, proxied_endpoints
from orchestrator.schema.config import Evaluation
from orchestrator.schema.results import Usage


def placeholder(role: str) -> str:
    """A proxy's origin as ``--dry_run`` shows it (its port is chosen at run time)."""
    return "http://127.0.0.1:PROXY_PORT" if role == MODEL_ROLE else f"http://127.0.0.1:{role.upper()}_PROXY_PORT"


def _on_origin(url: str, origin: str) -> str:
    """``url``'s path and query on ``origin``."""
    parts = urlsplit(url)
    return origin + parts.path + (f"?{parts.query}" if parts.query else "")


def harness_view(evaluation: Evaluation, origins: Mapping[str, str]) -> Evaluation:
    """What the harness is told: each proxied endpoint's URL (the model's, ``config.params.extra.<role>.url``) on
    the origin of its proxy, by role; the rest as resolved. Keys still go by variable name."""
    if not origins:
        return evaluation
    update: dict[str, object] = {}
    extra = dict(evaluation.config.params.extra)
    for role, origin in origins.items():
        if role == MODEL_ROLE:
            endpoint = evaluation.target.api_endpoint
            url = _on_origin(endpoint.url, origin)
            update["target"] = evaluation.target.model_copy(
                update={"api_endpoint": endpoint.model_copy(update={"url": url})})
        else:
            extra[role] = {**extra[role], "url": _on_origin(extra[role]["url"], origin)}
    if extra != evaluation.config.params.extra:
        params = evaluation.config.params.model_copy(update={"extra": extra})
        update["config"] = evaluation.config.model_copy(update={"params": params})
    return evaluation.model_copy(update=update)


def planned_view(evaluation: Evaluation) -> Evaluation:
    """:func:`harness_view` with every proxy's :func:`placeholder` (for ``--dry_run`` and the planned command)."""
    return harness_view(evaluation, {p.role: placeholder(p.role) for p in proxied_endpoints(evaluation)})


def describe_proxies(evaluation: Evaluation) -> str:
    """The ``--dry_run`` lines on the proxies ('' when the adapter is off)."""
    text = ""
    for proxied in proxied_endpoints(evaluation):
        chain = " -> ".join(i.name for i in proxied.adapter_config.interceptors if i.enabled)
        name = "Adapter proxy" if proxied.role == MODEL_ROLE else f"The {proxied.role}'s proxy"
        text += (f"\n{name}: the harness talks to {placeholder(proxied.role)} (a free loopback port chosen at run "
                 f"time), which forwards to {proxied.url} through: {chain}\n")
    return text


@dataclass(frozen=True)
class RunningProxies:
    """The proxies of a run, by role."""

    proxies: dict[str, Proxy]

    def origins(self) -> dict[str, str]:
        """Each proxy's origin, by role (for :func:`harness_view`)."""
        return {role: proxy.origin for role, proxy in self.proxies.items()}

    def usage(self) -> Usage | None:
        """What the run asked of the model (None without its proxy)."""
        model = self.proxies.get(MODEL_ROLE)
        return model.usage() if model else None

    def usage_by_role(self) -> dict[str, Usage]:
        """What the run asked of each auxiliary endpoint, by role."""
        return {role: proxy.usage() for role, proxy in self.proxies.items() if role != MODEL_ROLE}


@contextlib.contextmanager
def running_proxies(evaluation: Evaluation, output_dir: Path) -> Iterator[RunningProxies]:
    """Every proxy of the run for the duration of the harness run (none when the adapter is off).

    Each has its timeout and retries from ``config.params`` unless its chain's endpoint interceptor sets its own.
    """
    params = evaluation.config.params
    with contextlib.ExitStack() as stack:
        running: dict[str, Proxy] = {}
        for proxied in proxied_endpoints(evaluation):
            proxy = Proxy(proxied.url, proxied.adapter_config, output_dir=output_dir,
                          timeout=params.request_timeout or DEFAULT_TIMEOUT, max_retries=params.max_retries or 0,
                          role=None if proxied.role == MODEL_ROLE else proxied.role)
            running[proxied.role] = stack.enter_context(ProxyThread(proxy))
            name = "adapter proxy" if proxied.role == MODEL_ROLE else f"{proxied.role} proxy"
            print(f"{name} on {proxy.origin} -> {proxied.url}{proxy.via}", file=sys.stderr, flush=True)
        yield RunningProxies(running)
